//! Applies one job event in one transaction: dedupe on `event_id`, update snapshots, keep the
//! job's reminder in step, and release (or hold through quiet hours) its notification requests.
//! Bad events are dead-lettered with the reason and change nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_domain::MessageType;
use messaging_domain::event::{self, Contact, EventError, EventKind, JobEvent, JobInput};
use messaging_platform::bus::outbox;
use messaging_platform::bus::{self, Delivery, Outcome, Relay, TxHandler};
use messaging_platform::clock::SharedClock;
use sqlx::PgConnection;

use crate::directory;
use crate::notify::{self, Notification};
use crate::schedule;
use crate::store::{self, StoredAccount};

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Invalid(#[from] EventError),
    #[error("account {0} has not been configured by an account.updated event yet")]
    AccountUnknown(String),
    #[error(transparent)]
    Taken(#[from] crate::senders::Taken),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The job-event handler.
pub struct EventHandler {
    relay: Relay,
    clock: SharedClock,
}

impl TxHandler for EventHandler {
    fn committed(&self) {
        self.relay.wake();
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let event = match event::parse_job_event(&delivery.subject, &delivery.payload, self.clock.now()) {
            Ok(event) => event,
            Err(error) => return Outcome::DeadLetter(error.to_string()),
        };
        let mut set_aside = Vec::new();
        match self.apply_noting(tx, &event, &mut set_aside).await {
            Ok(applied) => {
                // The publisher hears of the unusable detail as of any refused input; the rest stands.
                if !set_aside.is_empty()
                    && let Err(error) =
                        bus::dead_letter_partial(tx, crate::SCHEMA, "ingest", delivery, &set_aside.join("; ")).await
                {
                    return Outcome::retry(format!("database: {error}"));
                }
                tracing::info!(event_id = %event.event_id, account_id = %event.account_id, applied, "job event processed");
                Outcome::Ack
            }
            Err(error @ (IngestError::Invalid(_) | IngestError::Taken(_))) => Outcome::DeadLetter(error.to_string()),
            // Its account.updated may be in flight (or waiting out a crashed process's ack
            // deadline): back off, so the retries outlast a redelivery.
            Err(error @ IngestError::AccountUnknown(_)) => {
                Outcome::backoff(delivery.delivered, Duration::from_secs(2), error)
            }
            Err(error) => Outcome::retry(error),
        }
    }
}

/// One event's effects inside its transaction.
struct Apply<'a> {
    tx: &'a mut PgConnection,
    event: &'a JobEvent,
    account: StoredAccount,
    now: DateTime<Utc>,
}

impl EventHandler {
    pub fn new(relay: Relay, clock: SharedClock) -> Self {
        Self { relay, clock }
    }

    /// Applies the event inside `tx`; `Ok(false)` when it had already been applied.
    pub async fn apply(&self, tx: &mut PgConnection, event: &JobEvent) -> Result<bool, IngestError> {
        self.apply_noting(tx, event, &mut Vec::new()).await
    }

    /// As [`EventHandler::apply`], noting in `set_aside` why a customer's phone or email was left
    /// out (unusable): the rest of the event applies without it.
    pub async fn apply_noting(
        &self,
        tx: &mut PgConnection,
        event: &JobEvent,
        set_aside: &mut Vec<String>,
    ) -> Result<bool, IngestError> {
        let account_id = event.account_id.as_str();
        let marked = store::mark_processed(tx, event.event_id.as_str(), &event.account_id, event.kind.name()).await?;
        if !marked.fresh {
            return Ok(false);
        }
        let now = self.clock.now();
        if let EventKind::AccountUpdated(settings) = &event.kind {
            if let Some(taken) = crate::senders::check(tx, &event.account_id, settings).await? {
                return Err(taken.into());
            }
            store::upsert_account(tx, &event.account_id, settings, event.occurred_at).await?;
            if let Some(account) = store::load_account(tx, account_id).await? {
                schedule::move_account_reminders(tx, account_id, &account, now).await?;
            }
            let listing = directory::account(&event.event_id, &event.account_id, settings, event.occurred_at);
            outbox::enqueue(tx, crate::SCHEMA, &listing).await?;
            return Ok(true);
        }
        let account = marked.account.ok_or_else(|| IngestError::AccountUnknown(account_id.to_owned()))?;
        let customer = event.kind.customer().ok_or(EventError::Missing("customer"))?;
        let contact = customer.contact(account.phone_region());
        for (_, why) in [&contact.unusable_phone, &contact.unusable_email].into_iter().flatten() {
            set_aside.push(format!("{why}; the rest of the event was applied"));
        }
        // The directory hears of a customer only when what it lists changed (most events repeat it).
        if store::upsert_customer(tx, &event.account_id, &contact, event.occurred_at).await? {
            let listing = directory::customer(&event.event_id, &event.account_id, &contact, event.occurred_at);
            outbox::enqueue(tx, crate::SCHEMA, &listing).await?;
        }
        let mut apply = Apply { tx, event, account, now };
        apply.effects(&contact).await?;
        Ok(true)
    }
}

impl Apply<'_> {
    async fn effects(&mut self, contact: &Contact) -> Result<(), IngestError> {
        let event = self.event;
        let notification = |kind| Notification::for_event(event, kind, contact);
        match &event.kind {
            EventKind::AccountUpdated(_) | EventKind::CustomerUpdated(_) => {}
            EventKind::JobScheduled(_, job) => {
                let upsert = self.job(contact, job, "scheduled").await?;
                if upsert.applied {
                    let about = Notification {
                        job: Some(notify::job_snapshot(job)),
                        ..notification(MessageType::AppointmentConfirmation)
                    };
                    self.release(about).await?;
                }
            }
            EventKind::JobRescheduled(_, job) => {
                // A new confirmation only if the appointment time changed.
                let upsert = self.job(contact, job, "scheduled").await?;
                if upsert.moved_to(job.starts_at) {
                    let about = Notification {
                        job: Some(notify::job_snapshot(job)),
                        ..notification(MessageType::AppointmentConfirmation)
                    };
                    self.release(about).await?;
                }
            }
            EventKind::JobCancelled(_, job) => {
                self.job(contact, job, "cancelled").await?;
            }
            EventKind::JobEnRoute(_, job) => {
                self.job(contact, job, "en_route").await?;
                self.on_my_way(contact, job).await?;
            }
            EventKind::JobCompleted(_, job, invoice) => {
                self.job(contact, job, "completed").await?;
                let about = Notification {
                    job: Some(notify::job_snapshot(job)),
                    invoice: Some(notify::invoice_snapshot(invoice)),
                    ..notification(MessageType::JobCompleted)
                };
                self.release(about).await?;
            }
            EventKind::InvoiceSent(_, invoice) => {
                let about = Notification {
                    invoice: Some(notify::invoice_snapshot(invoice)),
                    ..notification(MessageType::PaymentLink)
                };
                self.release(about).await?;
            }
            EventKind::PaymentReceived(_, payment) => {
                let about = Notification {
                    payment: Some(notify::payment_snapshot(payment)),
                    ..notification(MessageType::PaymentReceipt)
                };
                self.release(about).await?;
            }
        }
        Ok(())
    }

    /// Upserts the job snapshot and brings its reminder in line with the job as now stored.
    async fn job(&mut self, contact: &Contact, job: &JobInput, state: &str) -> Result<store::JobUpsert, IngestError> {
        let account_id = &self.event.account_id;
        let upsert =
            store::upsert_job(self.tx, account_id, contact.customer_id.as_str(), job, state, self.event.occurred_at)
                .await?;
        let plan = schedule::sync_reminder(
            self.tx,
            account_id.as_str(),
            &self.account,
            job.id.as_str(),
            upsert.stored.clone(),
            self.now,
        )
        .await?;
        tracing::debug!(job_id = %job.id, ?plan, "reminder");
        Ok(upsert)
    }

    /// On my way: unless the job is finished, and at most once per job per five minutes.
    async fn on_my_way(&mut self, contact: &Contact, job: &JobInput) -> Result<(), IngestError> {
        let account_id = self.event.account_id.as_str();
        let stored = store::load_job(self.tx, account_id, job.id.as_str(), store::Read::Plain).await?;
        if let Some(state) =
            stored.as_ref().map(|j| j.state.as_str()).filter(|s| matches!(*s, "completed" | "cancelled"))
        {
            tracing::info!(job_id = %job.id, state, "on-my-way dropped: the job is already {state}");
            return Ok(());
        }
        if !schedule::claim_on_my_way(self.tx, account_id, job.id.as_str(), self.event.occurred_at).await? {
            tracing::info!(job_id = %job.id, "on-my-way dropped: one went out for this job within 5 minutes");
            return Ok(());
        }
        let notification = Notification {
            job: Some(notify::job_snapshot(job)),
            ..Notification::for_event(self.event, MessageType::OnMyWay, contact)
        };
        self.release(notification).await
    }

    /// Hands the request to dispatch now, or holds it until the account's quiet hours end
    /// (on-my-way never waits: the technician is coming now).
    async fn release(&mut self, notification: Notification) -> Result<(), IngestError> {
        let kind = notification.kind;
        let message = notification.into_outbox(&self.event.account_id, &self.account);
        let release = self.account.quiet_hours().release_at(self.now, self.account.zone());
        if kind != MessageType::OnMyWay && release > self.now {
            tracing::info!(event_id = %self.event.event_id, kind = %kind, until = %release, "held until quiet hours end");
            schedule::defer(self.tx, self.event.account_id.as_str(), &message, release).await?;
        } else {
            outbox::enqueue(self.tx, crate::SCHEMA, &message).await?;
        }
        Ok(())
    }
}
