//! Projects message events into the feed's read model: `queued` creates the row, `status` moves it
//! forward (either may arrive first; both are idempotent upserts scoped by account), `received`
//! adds an unread reply, `opt_out` keeps the suppression the manual composer checks. Each event is
//! one statement: the row, its timeline entry and, when the entry is new, the change-log row and
//! the watchers' notification, in the batch's transaction.

use chrono::{DateTime, Utc};
use messaging_domain::{Channel, Direction, MessageType, Status};
use messaging_platform::bus::{Delivery, Outcome, TxHandler};
use messaging_proto::BusMessage;
use messaging_proto::bus::{
    DeliveryUnknown, MessageQueued, MessageReceived, NotificationWaiting, OptOutChanged, StatusChanged,
};
use sqlx::{AssertSqlSafe, PgConnection};
use std::sync::LazyLock;

use crate::changes;
use crate::store::{beyond_preview, preview};
use crate::waiting::apply as waiting;

/// The failure reason the SMS gateway gives a number that cannot take SMS (Twilio's 21614).
const NOT_SMS_CAPABLE: &str = "not_sms_capable";

/// The message-event handler.
pub struct Projector;

fn time(at: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    messaging_proto::time::datetime(at.as_ref()).unwrap_or_else(Utc::now)
}

impl TxHandler for Projector {
    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let mut parts = delivery.subject.split('.');
        let (Some("message"), Some(_), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
            return Outcome::DeadLetter(format!("unexpected subject {}", delivery.subject));
        };
        // Decodes the event (or dead-letters it: undecodable, or not the one its subject names) and applies it.
        macro_rules! apply {
            ($event:ty, $apply:ident) => {
                match delivery.decode::<$event>() {
                    Ok(event) => $apply(tx, event).await,
                    Err(dead) => return dead,
                }
            };
        }
        let result = match kind {
            MessageQueued::KIND => apply!(MessageQueued, queued),
            StatusChanged::KIND => apply!(StatusChanged, status),
            MessageReceived::KIND => apply!(MessageReceived, received),
            DeliveryUnknown::KIND => apply!(DeliveryUnknown, delivery_unknown),
            OptOutChanged::KIND => apply!(OptOutChanged, opt_out),
            NotificationWaiting::KIND => apply!(NotificationWaiting, waiting),
            _ => return Outcome::Ack,
        };
        match result {
            Ok(()) => Outcome::Ack,
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}

/// A statement made of `ctes` (parameters up to `$first - 1`) and the timeline entry from
/// `$first` on (account, message, status, source, detail, time, key), recorded as a change when new.
fn with_timeline(ctes: &str, first: usize) -> String {
    let p: Vec<String> = (first..first + 7).map(|n| format!("${n}")).collect();
    format!(
        "WITH {ctes}
         logged AS (INSERT INTO feed.timeline (account_id, message_id, status, source, detail, occurred_at, event_key)
                    VALUES ({}) ON CONFLICT (event_key) DO NOTHING RETURNING account_id, message_id),
         {}",
        p.join(", "),
        changes::record_from("logged")
    )
}

static QUEUED: LazyLock<String> = LazyLock::new(|| {
    with_timeline(
        "row AS (INSERT INTO feed.messages AS m (message_id, account_id, customer_id, customer_name, customer_phone,
                     customer_email, direction, channel, message_type, status, status_rank, preview, subject, job_id,
                     created_at, updated_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $11, $12, $13, $13, $14)
                 ON CONFLICT (message_id) DO UPDATE SET
                     customer_id = CASE WHEN EXCLUDED.customer_id = '' THEN m.customer_id ELSE EXCLUDED.customer_id END,
                     customer_name = CASE WHEN EXCLUDED.customer_id = '' THEN m.customer_name ELSE EXCLUDED.customer_name END,
                     customer_phone = EXCLUDED.customer_phone,
                     customer_email = EXCLUDED.customer_email, direction = EXCLUDED.direction,
                     channel = EXCLUDED.channel, message_type = EXCLUDED.message_type, preview = EXCLUDED.preview,
                     subject = EXCLUDED.subject, job_id = EXCLUDED.job_id,
                     body = CASE WHEN EXCLUDED.body = '' THEN m.body ELSE EXCLUDED.body END,
                     created_at = LEAST(m.created_at, EXCLUDED.created_at)
                 WHERE m.account_id = EXCLUDED.account_id),",
        15,
    )
});

async fn queued(tx: &mut PgConnection, event: MessageQueued) -> sqlx::Result<()> {
    let customer = event.customer.unwrap_or_default();
    let at = time(event.queued_at);
    sqlx::query(AssertSqlSafe(QUEUED.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .bind(&customer.customer_id)
        .bind(&customer.name)
        .bind(&customer.phone)
        .bind(&customer.email)
        .bind(Direction::from_proto(event.direction).map(|d| d.as_str()))
        .bind(Channel::from_proto(event.channel).map(|c| c.as_str()))
        .bind(MessageType::from_proto(event.r#type).map(|t| t.as_str()))
        .bind(&event.preview)
        .bind(&event.subject)
        .bind(&event.job_id)
        .bind(at)
        .bind(beyond_preview(&event.body))
        .bind(&event.account_id)
        .bind(&event.message_id)
        .bind(Status::Queued.as_str())
        .bind("dispatch")
        .bind("")
        .bind(at)
        .bind(format!("queued:{}", event.message_id))
        .execute(tx)
        .await?;
    Ok(())
}

static RECEIVED: LazyLock<String> = LazyLock::new(|| {
    with_timeline(
        "link AS (SELECT l.customer_id, COALESCE(c.name, '') AS name FROM feed.sender_links l
                  LEFT JOIN feed.customers c ON c.account_id = l.account_id AND c.customer_id = l.customer_id
                  WHERE $3 = '' AND NOT $12 AND l.account_id = $2
                    AND l.address = CASE WHEN $7 = 'sms' THEN $5 ELSE lower($6) END),
         row AS (INSERT INTO feed.messages (message_id, account_id, customer_id, customer_name, customer_phone,
                     customer_email, direction, channel, message_type, status, status_rank, preview, subject, job_id,
                     created_at, sent_at, updated_at, unread, sender_unverified, body)
                 SELECT $1, $2, COALESCE((SELECT customer_id FROM link), $3), COALESCE((SELECT name FROM link), $4),
                     $5, $6, 'inbound', $7, 'reply', 'received', $8, $9, $10, '', $11, $11, $11, true, $12, $13
                 ON CONFLICT (message_id) DO NOTHING),",
        14,
    )
});

/// An inbound message joins the customer's thread as a reply: the one delivery-status named, else
/// the one the business attached the sender's thread to, else the sender's own thread.
async fn received(tx: &mut PgConnection, event: MessageReceived) -> sqlx::Result<()> {
    let customer = event.customer.unwrap_or_default();
    let at = time(event.received_at);
    sqlx::query(AssertSqlSafe(RECEIVED.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .bind(&customer.customer_id)
        .bind(&customer.name)
        .bind(&customer.phone)
        .bind(&customer.email)
        .bind(Channel::from_proto(event.channel).map(|c| c.as_str()))
        .bind(i16::from(Status::Received.rank()))
        .bind(preview(&event.body))
        .bind(&event.subject)
        .bind(at)
        .bind(event.sender_unverified)
        .bind(beyond_preview(&event.body))
        .bind(&event.account_id)
        .bind(&event.message_id)
        .bind(Status::Received.as_str())
        .bind("provider")
        .bind("")
        .bind(at)
        .bind(format!("received:{}", event.message_id))
        .execute(tx)
        .await?;
    Ok(())
}

static DELIVERY_UNKNOWN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH marked AS (UPDATE feed.messages SET delivery_unknown = true
                         WHERE message_id = $1 AND account_id = $2 AND NOT delivery_unknown
                         RETURNING account_id, message_id),
         {}",
        changes::record_from("marked")
    )
});

/// Marks a sent message whose delivery the provider cannot confirm; shown while it stays `sent`.
async fn delivery_unknown(tx: &mut PgConnection, event: DeliveryUnknown) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(DELIVERY_UNKNOWN.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// The latest opt-out or opt-in by event time, for the manual composer's refusal.
async fn opt_out(tx: &mut PgConnection, event: OptOutChanged) -> sqlx::Result<()> {
    let Some(channel) = Channel::from_proto(event.channel) else { return Ok(()) };
    let address = match channel {
        Channel::Email => event.address.to_lowercase(),
        Channel::Sms => event.address.clone(),
    };
    sqlx::query(
        "INSERT INTO feed.opt_outs AS o (account_id, channel, address, opted_out, occurred_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id, channel, address) DO UPDATE SET opted_out = EXCLUDED.opted_out, occurred_at = EXCLUDED.occurred_at
         WHERE o.occurred_at < EXCLUDED.occurred_at",
    )
    .bind(&event.account_id)
    .bind(channel.as_str())
    .bind(address)
    .bind(event.opted_out)
    .bind(time(event.occurred_at))
    .execute(tx)
    .await?;
    Ok(())
}

static STATUS: LazyLock<String> = LazyLock::new(|| {
    with_timeline(
        "row AS (INSERT INTO feed.messages AS m (message_id, account_id, status, status_rank, failure_reason,
                     created_at, sent_at, updated_at, provider_error_code, provider_error_text)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9)
                 ON CONFLICT (message_id) DO UPDATE SET
                     status = CASE WHEN EXCLUDED.status_rank > m.status_rank
                                        OR (m.status = 'unknown' AND EXCLUDED.status = 'sent')
                                   THEN EXCLUDED.status ELSE m.status END,
                     status_rank = GREATEST(m.status_rank, EXCLUDED.status_rank),
                     failure_reason = CASE WHEN m.failure_reason = '' THEN EXCLUDED.failure_reason ELSE m.failure_reason END,
                     sent_at = COALESCE(LEAST(m.sent_at, EXCLUDED.sent_at), m.sent_at, EXCLUDED.sent_at),
                     updated_at = GREATEST(m.updated_at, EXCLUDED.updated_at),
                     provider_error_code = CASE WHEN m.provider_error_code = '' THEN EXCLUDED.provider_error_code
                                                ELSE m.provider_error_code END,
                     provider_error_text = CASE WHEN m.provider_error_code = '' AND m.provider_error_text = ''
                                                THEN EXCLUDED.provider_error_text ELSE m.provider_error_text END
                 WHERE m.account_id = EXCLUDED.account_id),",
        10,
    )
});

async fn status(tx: &mut PgConnection, event: StatusChanged) -> sqlx::Result<()> {
    let Some(status) = Status::from_proto(event.status) else { return Ok(()) };
    let at = time(event.occurred_at);
    let sent_at = matches!(status, Status::Sent | Status::Delivered | Status::Read | Status::Opened).then_some(at);
    if event.failure_reason == NOT_SMS_CAPABLE {
        // Reads the row as the queued event left it (a statement's CTEs see no change of its own).
        sqlx::query(
            "INSERT INTO feed.landlines (account_id, phone, occurred_at)
             SELECT account_id, customer_phone, $3 FROM feed.messages
             WHERE message_id = $1 AND account_id = $2 AND channel = 'sms' AND customer_phone <> ''
             ON CONFLICT DO NOTHING",
        )
        .bind(&event.message_id)
        .bind(&event.account_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    let detail =
        [event.failure_reason.as_str(), event.provider_error_code.as_str(), event.provider_error_text.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" · ");
    sqlx::query(AssertSqlSafe(STATUS.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .bind(status.as_str())
        .bind(i16::from(status.rank()))
        .bind(&event.failure_reason)
        .bind(at)
        .bind(sent_at)
        .bind(&event.provider_error_code)
        .bind(&event.provider_error_text)
        .bind(&event.account_id)
        .bind(&event.message_id)
        .bind(status.as_str())
        .bind(&event.source)
        .bind(detail)
        .bind(at)
        .bind(format!("status:{}:{}:{}", event.message_id, status.as_str(), event.source))
        .execute(tx)
        .await?;
    Ok(())
}
