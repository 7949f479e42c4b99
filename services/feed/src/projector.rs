//! Projects message events into the feed's read model: `queued` creates the row, `status` moves it
//! forward (either may arrive first; both are idempotent upserts scoped by account), `received`
//! adds an unread reply, `opt_out` keeps the suppression the manual composer checks, `waiting`
//! what goes out later. A batch is written in rounds that hold at most one event per message, in
//! stream order; each round is one statement per kind over arrays (see `project`).

use messaging_platform::bus::{self, Delivery, Outcome, TxHandler, in_rounds};
use messaging_proto::BusMessage;
use messaging_proto::bus::{
    DeliveryUnknown, MessageQueued, MessageReceived, NotificationWaiting, OptOutChanged, StatusChanged,
};
use sqlx::PgConnection;

use crate::project;

/// The message-event handler.
pub struct Projector;

/// One decoded message event.
enum Event {
    Queued(MessageQueued),
    Status(StatusChanged),
    Received(MessageReceived),
    Unknown(DeliveryUnknown),
    OptOut(OptOutChanged),
    Waiting(NotificationWaiting),
    /// A kind the feed does not project.
    Other,
}

impl Event {
    /// Decodes the event, or the dead letter of one undecodable or not the one its subject names.
    fn decode(delivery: &Delivery) -> Result<Self, Outcome> {
        let mut parts = delivery.subject.split('.');
        let (Some("message"), Some(_), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Outcome::DeadLetter(format!("unexpected subject {}", delivery.subject)));
        };
        Ok(match kind {
            MessageQueued::KIND => Self::Queued(delivery.decode()?),
            StatusChanged::KIND => Self::Status(delivery.decode()?),
            MessageReceived::KIND => Self::Received(delivery.decode()?),
            DeliveryUnknown::KIND => Self::Unknown(delivery.decode()?),
            OptOutChanged::KIND => Self::OptOut(delivery.decode()?),
            NotificationWaiting::KIND => Self::Waiting(delivery.decode()?),
            _ => Self::Other,
        })
    }

    /// What the event writes: one round never holds two events with one key.
    fn key(&self) -> String {
        match self {
            Self::Queued(e) => e.message_id.clone(),
            Self::Status(e) => e.message_id.clone(),
            Self::Received(e) => e.message_id.clone(),
            Self::Unknown(e) => e.message_id.clone(),
            Self::OptOut(e) => format!("opt_out {} {} {}", e.account_id, e.channel, e.address.to_lowercase()),
            Self::Waiting(e) => format!("waiting {} {}", e.account_id, e.key),
            Self::Other => String::new(),
        }
    }
}

impl TxHandler for Projector {
    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        match Event::decode(delivery) {
            Ok(event) => Outcome::of_writes(apply(tx, vec![event]).await),
            Err(dead) => dead,
        }
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        bus::write_all(deliveries, service, Event::decode, move |events| apply(tx, events)).await
    }
}

/// Applies `events` (in stream order) round by round.
async fn apply(tx: &mut PgConnection, events: Vec<Event>) -> sqlx::Result<()> {
    for round in in_rounds(events, Event::key) {
        apply_round(tx, round).await?;
    }
    Ok(())
}

/// Applies events about distinct rows: queued and status events as one statement each, the
/// rarer kinds one by one.
async fn apply_round(tx: &mut PgConnection, events: Vec<Event>) -> sqlx::Result<()> {
    let (mut queued, mut statuses) = (Vec::new(), Vec::new());
    for event in events {
        match event {
            Event::Queued(e) => queued.push(e),
            Event::Status(e) => statuses.push(e),
            Event::Received(e) => project::received(tx, e).await?,
            Event::Unknown(e) => project::delivery_unknown(tx, e).await?,
            Event::OptOut(e) => project::opt_out(tx, e).await?,
            Event::Waiting(e) => crate::waiting::apply(tx, e).await?,
            Event::Other => {}
        }
    }
    if !queued.is_empty() {
        project::queued(tx, &queued).await?;
    }
    if !statuses.is_empty() {
        project::statuses(tx, &statuses).await?;
    }
    Ok(())
}
