//! The scheduler: every tick it releases deferred requests whose quiet hours are over (re-checked
//! in `release.rs`) and fires due reminders, each re-checked against the job's latest state. Rows are claimed with
//! FOR UPDATE SKIP LOCKED and settled in the transaction that enqueues the request, so any number
//! of ingest replicas fire each reminder once.

use std::time::Duration;

use messaging_domain::MessageType;
use messaging_platform::Shutdown;
use messaging_platform::bus::{Relay, outbox};
use messaging_platform::clock::SharedClock;
use sqlx::{PgConnection, PgPool};

use crate::notify::Notification;
use crate::schedule::{self, DueReminder};
use crate::store;

/// How much one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// Reminders handed to dispatch.
    pub reminders_sent: u64,
    /// Reminders moved to the end of quiet hours.
    pub reminders_postponed: u64,
    /// Reminders dropped because the job changed (cancelled, moved, gone).
    pub reminders_dropped: u64,
    /// Deferred requests handed to dispatch.
    pub deferred_released: u64,
    /// Deferred requests dropped at release (their job was cancelled or moved since).
    pub deferred_dropped: u64,
    /// Deferred requests held again (the account's quiet hours now end later).
    pub deferred_postponed: u64,
}

impl Tick {
    fn busy(&self) -> bool {
        let reminders = self.reminders_sent + self.reminders_postponed + self.reminders_dropped;
        reminders + self.deferred_released + self.deferred_dropped + self.deferred_postponed > 0
    }
}

/// What a due reminder turned out to be.
enum Fate {
    Send,
    Postpone(chrono::DateTime<chrono::Utc>),
    Drop(&'static str),
    /// The job row is being changed right now; look again next tick.
    Wait,
}

/// Fires what the schedule says is due.
#[derive(Clone)]
pub struct Scheduler {
    pool: PgPool,
    relay: Relay,
    clock: SharedClock,
    interval: Duration,
    /// Rows settled per transaction.
    batch: i64,
}

impl Scheduler {
    pub fn new(pool: PgPool, relay: Relay, clock: SharedClock, interval: Duration, batch: i64) -> Self {
        Self { pool, relay, clock, interval, batch: batch.max(1) }
    }

    /// Ticks until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            let busy = match self.tick().await {
                Ok(tick) => {
                    if tick.busy() {
                        tracing::info!(?tick, "scheduler tick");
                    }
                    tick.reminders_sent + tick.deferred_released >= self.batch as u64
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "scheduler tick failed; will retry");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass: release deferred requests, then fire due reminders. Tests call this directly.
    pub async fn tick(&self) -> anyhow::Result<Tick> {
        let now = self.clock.now();
        let mut tick = Tick::default();
        let mut tx = self.pool.begin().await?;
        let held = crate::release::release_due(&mut tx, now, self.batch).await?;
        tick.deferred_released = held.released;
        tick.deferred_dropped = held.dropped;
        tick.deferred_postponed = held.postponed;
        for reminder in schedule::lock_due_reminders(&mut tx, now, self.batch).await? {
            match self.fate(&mut tx, &reminder, now).await? {
                Fate::Send => tick.reminders_sent += 1,
                Fate::Postpone(until) => {
                    schedule::postpone_reminder(&mut tx, &reminder, until).await?;
                    tick.reminders_postponed += 1;
                }
                Fate::Drop(why) => {
                    tracing::info!(account_id = %reminder.account_id, job_id = %reminder.job_id, why, "stale reminder dropped");
                    schedule::delete_reminder(&mut tx, &reminder.account_id, &reminder.job_id).await?;
                    tick.reminders_dropped += 1;
                }
                Fate::Wait => {}
            }
        }
        tx.commit().await?;
        if tick.reminders_sent + tick.deferred_released > 0 {
            self.relay.wake();
        }
        Ok(tick)
    }

    /// Re-checks a due reminder against the latest job, customer and account, and enqueues its
    /// request when it is still right to send now.
    async fn fate(
        &self,
        tx: &mut PgConnection,
        reminder: &DueReminder,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Fate> {
        let Some(job) =
            store::load_job(tx, &reminder.account_id, &reminder.job_id, store::Read::ShareSkipLocked).await?
        else {
            return Ok(Fate::Wait);
        };
        if job.state != "scheduled" {
            return Ok(Fate::Drop("the job is no longer scheduled"));
        }
        if job.starts_at != reminder.starts_at {
            return Ok(Fate::Drop("the job has moved"));
        }
        let Some(account) = store::load_account(tx, &reminder.account_id).await? else {
            return Ok(Fate::Drop("the account is unknown"));
        };
        let release = account.quiet_hours().release_at(now, account.zone());
        if release > now {
            return Ok(Fate::Postpone(release));
        }
        let Some(customer) = store::load_customer(tx, &reminder.account_id, &job.customer_id).await? else {
            return Ok(Fate::Drop("the customer is unknown"));
        };
        let account_id = messaging_domain::AccountId::parse(reminder.account_id.clone())?;
        let notification = Notification {
            request_id: format!("reminder:{}:{}:{}", reminder.account_id, reminder.job_id, job.starts_at.timestamp()),
            event_id: String::new(),
            kind: MessageType::Reminder,
            channels: Vec::new(),
            requested_at: now,
            customer,
            job: Some(job.snapshot),
            invoice: None,
            payment: None,
        };
        outbox::enqueue(tx, crate::SCHEMA, &notification.into_outbox(&account_id, &account)).await?;
        schedule::delete_reminder(tx, &reminder.account_id, &reminder.job_id).await?;
        tracing::info!(account_id = %reminder.account_id, job_id = %reminder.job_id, "reminder sent to dispatch");
        Ok(Fate::Send)
    }
}
