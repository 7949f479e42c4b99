//! Applies job events (every kind but `account.updated`) in a few statements however many there
//! are: dedupe on `event_id` in one, customers in one per round, then jobs in rounds that hold
//! each job once (lock, upsert, reminders, on-my-way claims), and the requests released in the
//! events' order. A batch ends where the same events applied one at a time, in order, end.

use chrono::{DateTime, Utc};
use messaging_domain::MessageType;
use messaging_domain::event::{Contact, EventError, EventKind, JobEvent};
use messaging_platform::bus::{in_rounds, outbox};
use sqlx::PgConnection;
use tracing::{Instrument, Span};

use crate::handler::IngestError;
use crate::notify::{self, Notification};
use crate::schedule::{self, ReminderSync};
use crate::store::{self, CustomerRow, JobRow, StoredAccount, StoredJob};

/// A job event to apply, with the span it was consumed in (its requests continue that trace).
pub struct Item<'a> {
    pub event: &'a JobEvent,
    pub span: Span,
}

/// What applying one event did.
#[derive(Debug)]
pub struct Applied {
    /// False when the event had been applied before.
    pub fresh: bool,
    /// Why a customer's phone or email was left out (the rest of the event applied).
    pub set_aside: Vec<String>,
}

/// Why the events were not applied: the error and the first event it concerns (the first of
/// all for a database error). Nothing is applied: the caller rolls back.
#[derive(Debug)]
pub struct Failed {
    pub at: usize,
    pub error: IngestError,
}

/// A fresh event, with its account as stored and its customer's contact.
struct Live<'a> {
    at: usize,
    item: &'a Item<'a>,
    account: StoredAccount,
    contact: Contact,
}

impl Live<'_> {
    fn event(&self) -> &JobEvent {
        self.item.event
    }

    fn notification(&self, kind: MessageType) -> Notification {
        Notification::for_event(self.event(), kind, &self.contact)
    }
}

/// Applies `items` inside `tx`, one [`Applied`] each.
pub async fn apply(tx: &mut PgConnection, items: &[Item<'_>], now: DateTime<Utc>) -> Result<Vec<Applied>, Failed> {
    let database = |error: sqlx::Error| Failed { at: 0, error: error.into() };
    let events: Vec<&JobEvent> = items.iter().map(|item| item.event).collect();
    let marks = store::mark_processed(tx, &events).await.map_err(database)?;
    let mut live = Vec::new();
    let mut applied = Vec::with_capacity(items.len());
    for (at, (item, mark)) in items.iter().zip(marks).enumerate() {
        if !mark.fresh {
            applied.push(Applied { fresh: false, set_aside: Vec::new() });
            continue;
        }
        let failed = |error: IngestError| Failed { at, error };
        let event = item.event;
        let account = mark.account.ok_or_else(|| failed(IngestError::AccountUnknown(event.account_id.to_string())))?;
        let customer = event.kind.customer().ok_or_else(|| failed(EventError::Missing("customer").into()))?;
        let contact = customer.contact(account.phone_region());
        let set_aside = [&contact.unusable_phone, &contact.unusable_email]
            .into_iter()
            .flatten()
            .map(|(_, why)| format!("{why}; the rest of the event was applied"))
            .collect();
        applied.push(Applied { fresh: true, set_aside });
        live.push(Live { at, item, account, contact });
    }
    write(tx, &live, now).await.map_err(database)?;
    Ok(applied)
}

/// The fresh events' writes.
async fn write(tx: &mut PgConnection, live: &[Live<'_>], now: DateTime<Utc>) -> sqlx::Result<()> {
    customers(tx, live).await?;
    let mut releases: Vec<(&Live, Notification)> = Vec::new();
    let with_job: Vec<&Live> = live.iter().filter(|l| l.event().kind.job().is_some()).collect();
    let job_key = |l: &&Live| (l.event().account_id.clone(), l.event().kind.job().map(|j| j.id.to_string()));
    for round in in_rounds(with_job, job_key) {
        jobs(tx, &round, now, &mut releases).await?;
    }
    for l in live {
        let about = match &l.event().kind {
            EventKind::InvoiceSent(_, invoice) => Notification {
                invoice: Some(notify::invoice_snapshot(invoice)),
                ..l.notification(MessageType::PaymentLink)
            },
            EventKind::PaymentReceived(_, payment) => Notification {
                payment: Some(notify::payment_snapshot(payment)),
                ..l.notification(MessageType::PaymentReceipt)
            },
            _ => continue,
        };
        releases.push((l, about));
    }
    releases.sort_by_key(|(l, _)| l.at);
    for (l, notification) in releases {
        release(tx, l, notification, now).instrument(l.item.span.clone()).await?;
    }
    Ok(())
}

/// Stores each event's customer; the directory hears of a customer only when what it lists
/// changed (most events repeat it).
async fn customers(tx: &mut PgConnection, live: &[Live<'_>]) -> sqlx::Result<()> {
    let rows: Vec<CustomerRow> = live
        .iter()
        .map(|l| CustomerRow { account: &l.event().account_id, contact: &l.contact, as_of: l.event().occurred_at })
        .collect();
    let changed = store::upsert_customers(tx, &rows).await?;
    for (l, _) in live.iter().zip(changed).filter(|(_, changed)| *changed) {
        let event = l.event();
        let listing = crate::directory::customer(&event.event_id, &event.account_id, &l.contact, event.occurred_at);
        outbox::enqueue(tx, crate::SCHEMA, &listing).instrument(l.item.span.clone()).await?;
    }
    Ok(())
}

/// One round of job events (a job once in it): upserts the jobs, brings their reminders in line
/// and notes the requests they cause.
async fn jobs<'l>(
    tx: &mut PgConnection,
    round: &[&'l Live<'l>],
    now: DateTime<Utc>,
    releases: &mut Vec<(&'l Live<'l>, Notification)>,
) -> sqlx::Result<()> {
    let rows: Vec<JobRow> = round
        .iter()
        .filter_map(|l| {
            let job = l.event().kind.job()?;
            let state = match l.event().kind {
                EventKind::JobCancelled(..) => "cancelled",
                EventKind::JobEnRoute(..) => "en_route",
                EventKind::JobCompleted(..) => "completed",
                _ => "scheduled",
            };
            let (account, customer_id) = (&l.event().account_id, l.contact.customer_id.as_str());
            Some(JobRow { account, customer_id, job, state, as_of: l.event().occurred_at })
        })
        .collect();
    let before = store::lock_jobs(tx, &rows).await?;
    let changed = store::upsert_jobs(tx, &rows).await?;
    let key = |row: &JobRow| (row.account.to_string(), row.job.id.to_string());
    // A job no technician is named on, before or now, scopes no one: it goes unlisted.
    let names = |job: &StoredJob| !job.snapshot.technician_id.is_empty() || !job.snapshot.helper_ids.is_empty();
    for (l, row) in round.iter().zip(&rows) {
        let Some(job) = changed.get(&key(row)) else { continue };
        if names(job) || before.get(&key(row)).is_some_and(names) {
            let listing = crate::directory::job(&l.event().event_id, row.account, job, row.as_of);
            outbox::enqueue(tx, crate::SCHEMA, &listing).instrument(l.item.span.clone()).await?;
        }
    }
    // Each job as it now stands: as the upsert left it, or as it was when the event was older.
    let stands: Vec<Option<&StoredJob>> =
        rows.iter().map(|row| changed.get(&key(row)).or_else(|| before.get(&key(row)))).collect();
    let syncs: Vec<ReminderSync> = round
        .iter()
        .zip(&stands)
        .filter_map(|(l, job)| {
            let (account_id, span) = (l.event().account_id.as_str(), &l.item.span);
            Some(ReminderSync { account_id, account: &l.account, job: (*job)?, span })
        })
        .collect();
    let plans = schedule::sync_reminders(tx, &syncs, now).await?;
    for (sync, plan) in syncs.iter().zip(plans) {
        tracing::debug!(job_id = %sync.job.snapshot.job_id, ?plan, "reminder");
    }
    let mut on_my_way = Vec::new();
    for ((l, row), stands) in round.iter().zip(&rows).zip(&stands) {
        let applied = changed.contains_key(&key(row));
        let job = Some(notify::job_snapshot(row.job));
        let about = match &l.event().kind {
            EventKind::JobScheduled(..) if applied => {
                Notification { job, ..l.notification(MessageType::AppointmentConfirmation) }
            }
            // A new confirmation only if the appointment time changed.
            EventKind::JobRescheduled(..)
                if applied && before.get(&key(row)).map(|j| j.starts_at) != Some(row.job.starts_at) =>
            {
                Notification { job, ..l.notification(MessageType::AppointmentConfirmation) }
            }
            EventKind::JobCompleted(_, _, invoice) => Notification {
                job,
                invoice: Some(notify::invoice_snapshot(invoice)),
                ..l.notification(MessageType::JobCompleted)
            },
            EventKind::JobEnRoute(..) => {
                // On my way: unless the job is finished, and at most once per job per five minutes.
                match stands.map(|j| j.state.as_str()).filter(|s| matches!(*s, "completed" | "cancelled")) {
                    Some(state) => {
                        tracing::info!(job_id = %row.job.id, state, "on-my-way dropped: the job is already {state}")
                    }
                    None => on_my_way.push((*l, row)),
                }
                continue;
            }
            _ => continue,
        };
        releases.push((*l, about));
    }
    if on_my_way.is_empty() {
        return Ok(());
    }
    let claims: Vec<schedule::OnMyWay> =
        on_my_way.iter().map(|(l, row)| (row.account.as_str(), row.job.id.as_str(), l.event().occurred_at)).collect();
    let claimed = schedule::claim_on_my_way(tx, &claims).await?;
    for (l, row) in on_my_way {
        if !claimed.contains(&key(row)) {
            tracing::info!(job_id = %row.job.id, "on-my-way dropped: one went out for this job within 5 minutes");
            continue;
        }
        let job = Some(notify::job_snapshot(row.job));
        releases.push((l, Notification { job, ..l.notification(MessageType::OnMyWay) }));
    }
    Ok(())
}

/// Hands the request to dispatch now, or holds it until the account's quiet hours end
/// (on-my-way never waits: the technician is coming now).
async fn release(
    tx: &mut PgConnection,
    l: &Live<'_>,
    notification: Notification,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = l.event();
    let kind = notification.kind;
    let message = notification.into_outbox(&event.account_id, &l.account);
    let release = l.account.quiet_hours().release_at(now, l.account.zone());
    if kind != MessageType::OnMyWay && release > now {
        tracing::info!(event_id = %event.event_id, kind = %kind, until = %release, "held until quiet hours end");
        schedule::defer(tx, event.account_id.as_str(), &message, release).await
    } else {
        outbox::enqueue(tx, crate::SCHEMA, &message).await
    }
}
