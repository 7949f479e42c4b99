//! Applies one job event in one transaction: dedupe on `event_id`, update snapshots, enqueue
//! notification requests. Bad events are dead-lettered with the reason and change nothing.

use std::time::Duration;

use messaging_domain::event::{self, EventError, EventKind, JobEvent};
use messaging_domain::{Channel, MessageType};
use messaging_platform::bus::outbox;
use messaging_platform::bus::{Delivery, Handler, Outcome, Relay};
use sqlx::PgPool;

use crate::notify::{self, Subject};
use crate::store;

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Invalid(#[from] EventError),
    #[error("account {0} has not been configured by an account.updated event yet")]
    AccountUnknown(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The job-event handler.
pub struct EventHandler {
    pool: PgPool,
    relay: Relay,
}

impl Handler for EventHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match event::parse_job_event(&delivery.subject, &delivery.payload) {
            Ok(event) => event,
            Err(error) => return Outcome::DeadLetter(error.to_string()),
        };
        match self.apply(&event).await {
            Ok(applied) => {
                tracing::info!(event_id = %event.event_id, account_id = %event.account_id, applied, "job event processed");
                Outcome::Ack
            }
            Err(IngestError::Invalid(error)) => Outcome::DeadLetter(error.to_string()),
            Err(error @ IngestError::AccountUnknown(_)) => {
                Outcome::Retry { delay: Duration::from_secs(2), reason: error.to_string() }
            }
            Err(error) => Outcome::retry(error),
        }
    }
}

impl EventHandler {
    pub fn new(pool: PgPool, relay: Relay) -> Self {
        Self { pool, relay }
    }

    /// Applies the event; `Ok(false)` when it had already been applied.
    pub async fn apply(&self, event: &JobEvent) -> Result<bool, IngestError> {
        let mut tx = self.pool.begin().await?;
        let kind_name = kind_name(&event.kind);
        if !store::mark_processed(&mut tx, event.event_id.as_str(), &event.account_id, kind_name).await? {
            return Ok(false);
        }
        let account_id = &event.account_id;
        let mut requests = Vec::new();
        if let EventKind::AccountUpdated(settings) = &event.kind {
            store::upsert_account(&mut tx, account_id, settings, event.occurred_at).await?;
        } else {
            let account = store::load_account(&mut tx, account_id)
                .await?
                .ok_or_else(|| IngestError::AccountUnknown(account_id.to_string()))?;
            let customer = event.kind.customer().ok_or(EventError::Missing("customer"))?;
            let contact = customer.contact(account.phone_region())?;
            store::upsert_customer(&mut tx, account_id, &contact, event.occurred_at).await?;
            let both = &[][..];
            let sms_only = &[Channel::Sms][..];
            let customer_id = contact.customer_id.as_str();
            match &event.kind {
                EventKind::AccountUpdated(_) | EventKind::CustomerUpdated(_) => {}
                EventKind::JobScheduled(_, job) => {
                    store::upsert_job(&mut tx, account_id, customer_id, job, "scheduled", event.occurred_at).await?;
                    let about = Subject { job: Some(job), ..Default::default() };
                    requests.push(notify::request(
                        event,
                        MessageType::AppointmentConfirmation,
                        both,
                        &account,
                        &contact,
                        about,
                    ));
                }
                EventKind::JobRescheduled(_, job) => {
                    let previous =
                        store::upsert_job(&mut tx, account_id, customer_id, job, "scheduled", event.occurred_at)
                            .await?;
                    if previous != Some(job.starts_at) {
                        let about = Subject { job: Some(job), ..Default::default() };
                        requests.push(notify::request(
                            event,
                            MessageType::AppointmentConfirmation,
                            both,
                            &account,
                            &contact,
                            about,
                        ));
                    }
                }
                EventKind::JobCancelled(_, job) => {
                    store::upsert_job(&mut tx, account_id, customer_id, job, "cancelled", event.occurred_at).await?;
                }
                EventKind::JobEnRoute(_, job) => {
                    store::upsert_job(&mut tx, account_id, customer_id, job, "en_route", event.occurred_at).await?;
                    let about = Subject { job: Some(job), ..Default::default() };
                    requests.push(notify::request(event, MessageType::OnMyWay, sms_only, &account, &contact, about));
                }
                EventKind::JobCompleted(_, job, invoice) => {
                    store::upsert_job(&mut tx, account_id, customer_id, job, "completed", event.occurred_at).await?;
                    let about = Subject { job: Some(job), invoice: Some(invoice), ..Default::default() };
                    requests.push(notify::request(event, MessageType::JobCompleted, both, &account, &contact, about));
                }
                EventKind::InvoiceSent(_, invoice) => {
                    let about = Subject { invoice: Some(invoice), ..Default::default() };
                    requests.push(notify::request(event, MessageType::PaymentLink, both, &account, &contact, about));
                }
                EventKind::PaymentReceived(_, payment) => {
                    let about = Subject { payment: Some(payment), ..Default::default() };
                    requests.push(notify::request(event, MessageType::PaymentReceipt, both, &account, &contact, about));
                }
            }
        }
        for request in &requests {
            outbox::enqueue(&mut tx, crate::SCHEMA, request).await?;
        }
        tx.commit().await?;
        if !requests.is_empty() {
            self.relay.wake();
        }
        Ok(true)
    }
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::AccountUpdated(_) => "account.updated",
        EventKind::CustomerUpdated(_) => "customer.updated",
        EventKind::JobScheduled(..) => "job.scheduled",
        EventKind::JobRescheduled(..) => "job.rescheduled",
        EventKind::JobCancelled(..) => "job.cancelled",
        EventKind::JobEnRoute(..) => "job.en_route",
        EventKind::JobCompleted(..) => "job.completed",
        EventKind::InvoiceSent(..) => "invoice.sent",
        EventKind::PaymentReceived(..) => "payment.received",
    }
}
