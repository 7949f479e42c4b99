//! The job-event consumer: each event applied exactly once (deduped on `event_id`), a batch of job
//! events written set-based ([`crate::jobs`]), an account's settings one event at a time. Bad
//! events are dead-lettered with the reason and change nothing.

use std::time::Duration;

use messaging_domain::event::{self, AccountSettings, EventError, EventKind, JobEvent};
use messaging_platform::bus::outbox;
use messaging_platform::bus::{self, Delivery, Outcome, Relay, TxHandler};
use messaging_platform::clock::SharedClock;
use sqlx::PgConnection;
use tracing::Span;

use crate::directory;
use crate::jobs::{self, Applied, Failed, Item};
use crate::schedule;
use crate::store;

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
        let event = match self.parse(delivery) {
            Ok(event) => event,
            Err(outcome) => return outcome,
        };
        let applied = match &event.kind {
            EventKind::AccountUpdated(settings) => self
                .apply_account(tx, &event, settings)
                .await
                .map(|fresh| vec![Applied { fresh, set_aside: Vec::new() }])
                .map_err(|error| Failed { at: 0, error }),
            _ => jobs::apply(tx, &[Item { event: &event, span: Span::current() }], self.clock.now()).await,
        };
        let spans = [Span::current()];
        outcomes(tx, std::slice::from_ref(delivery), &[event], &spans, applied).await.pop().unwrap_or(Outcome::Ack)
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        let events = match bus::decode_all(deliveries, |delivery| self.parse(delivery)) {
            Ok(events) => events,
            Err(outcomes) => return outcomes,
        };
        // An account's new settings change how its later events apply: such a batch goes in turn.
        if events.iter().any(|event| matches!(event.kind, EventKind::AccountUpdated(_))) {
            return bus::one_by_one(self, tx, deliveries, service).await;
        }
        let spans: Vec<Span> = deliveries.iter().map(|delivery| bus::consume_span(service, delivery)).collect();
        let items: Vec<Item> =
            events.iter().zip(&spans).map(|(event, span)| Item { event, span: span.clone() }).collect();
        let applied = jobs::apply(tx, &items, self.clock.now()).await;
        outcomes(tx, deliveries, &events, &spans, applied).await
    }
}

/// Each event's outcome: acked once applied (the publisher hears of a detail set aside as of any
/// refused input; the rest stands), up to the one that failed.
async fn outcomes(
    tx: &mut PgConnection,
    deliveries: &[Delivery],
    events: &[JobEvent],
    spans: &[Span],
    applied: Result<Vec<Applied>, Failed>,
) -> Vec<Outcome> {
    let applied = match applied {
        Ok(applied) => applied,
        Err(Failed { at, error }) => {
            let mut outcomes = vec![Outcome::Ack; at];
            outcomes.push(refused(&deliveries[at], error));
            return outcomes;
        }
    };
    let mut outcomes = Vec::with_capacity(deliveries.len());
    for (((delivery, event), span), applied) in deliveries.iter().zip(events).zip(spans).zip(applied) {
        if !applied.set_aside.is_empty()
            && let Err(error) =
                bus::dead_letter_partial(tx, crate::SCHEMA, "ingest", delivery, &applied.set_aside.join("; ")).await
        {
            outcomes.push(Outcome::retry(format!("database: {error}")));
            return outcomes;
        }
        span.in_scope(|| {
            tracing::info!(event_id = %event.event_id, account_id = %event.account_id, applied = applied.fresh, "job event processed");
        });
        outcomes.push(Outcome::Ack);
    }
    outcomes
}

/// The outcome of an event that could not be applied.
fn refused(delivery: &Delivery, error: IngestError) -> Outcome {
    match error {
        error @ (IngestError::Invalid(_) | IngestError::Taken(_)) => Outcome::DeadLetter(error.to_string()),
        // Its account.updated may be in flight (or waiting out a crashed process's ack
        // deadline): back off, so the retries outlast a redelivery.
        error @ IngestError::AccountUnknown(_) => Outcome::backoff(delivery.delivered, Duration::from_secs(2), error),
        error => Outcome::retry(error),
    }
}

impl EventHandler {
    pub fn new(relay: Relay, clock: SharedClock) -> Self {
        Self { relay, clock }
    }

    fn parse(&self, delivery: &Delivery) -> Result<JobEvent, Outcome> {
        event::parse_job_event(&delivery.subject, &delivery.payload, self.clock.now())
            .map_err(|error| Outcome::DeadLetter(error.to_string()))
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
        if let EventKind::AccountUpdated(settings) = &event.kind {
            return self.apply_account(tx, event, settings).await;
        }
        let items = [Item { event, span: Span::current() }];
        let applied = jobs::apply(tx, &items, self.clock.now()).await.map_err(|failed| failed.error)?;
        let applied = applied.into_iter().next().ok_or(sqlx::Error::RowNotFound)?;
        set_aside.extend(applied.set_aside);
        Ok(applied.fresh)
    }

    /// Stores the account's settings (unless its number or sender is another account's), moves
    /// its pending reminders to its reminder time and lists it in the directory.
    async fn apply_account(
        &self,
        tx: &mut PgConnection,
        event: &JobEvent,
        settings: &AccountSettings,
    ) -> Result<bool, IngestError> {
        let marked = store::mark_processed(tx, &[event]).await?;
        if !marked.first().is_some_and(|marked| marked.fresh) {
            return Ok(false);
        }
        let account_id = event.account_id.as_str();
        if let Some(taken) = crate::senders::check(tx, &event.account_id, settings).await? {
            return Err(taken.into());
        }
        store::upsert_account(tx, &event.account_id, settings, event.occurred_at).await?;
        if let Some(account) = store::load_account(tx, account_id).await? {
            schedule::move_account_reminders(tx, account_id, &account, self.clock.now()).await?;
        }
        let listing = directory::account(&event.event_id, &event.account_id, settings, event.occurred_at);
        outbox::enqueue(tx, crate::SCHEMA, &listing).await?;
        Ok(true)
    }
}
