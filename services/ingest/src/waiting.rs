//! Tells the feed what will go out later. After every change to a pending reminder or a held
//! request, the item as it now stands (due when, or no longer waiting) goes on
//! `message.<account>.waiting` through the outbox, in the transaction that made the change.

use chrono::{DateTime, Utc};
use messaging_domain::MessageType;
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::{NotificationRequest, NotificationWaiting};
use messaging_proto::time::{now, timestamp};
use prost::Message as _;
use sqlx::{PgConnection, Row};

/// The job's reminder as it now stands.
pub async fn reminder(tx: &mut PgConnection, account_id: &str, job_id: &str) -> sqlx::Result<()> {
    let row = sqlx::query(
        "SELECT j.customer_id, r.due_at FROM ingest.jobs j
         LEFT JOIN ingest.reminders r ON r.account_id = j.account_id AND r.job_id = j.job_id
         WHERE j.account_id = $1 AND j.job_id = $2",
    )
    .bind(account_id)
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (customer_id, due_at) = match row {
        Some(row) => (row.try_get::<String, _>("customer_id")?, row.try_get("due_at")?),
        None => (String::new(), None),
    };
    reminder_as(tx, account_id, job_id, customer_id, due_at).await
}

/// The job's reminder, known to stand as given (its customer, when it is due).
pub async fn reminder_as(
    tx: &mut PgConnection,
    account_id: &str,
    job_id: &str,
    customer_id: String,
    due_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let waiting = NotificationWaiting {
        account_id: account_id.to_owned(),
        key: format!("reminder:{job_id}"),
        r#type: MessageType::Reminder.to_proto(),
        customer_id,
        job_id: job_id.to_owned(),
        due_at: due_at.map(timestamp),
        reason: "reminder".into(),
        as_of: Some(now()),
    };
    announce(tx, &waiting).await
}

/// The held request under `outbox_id` as it now stands.
pub async fn held(tx: &mut PgConnection, account_id: &str, outbox_id: &str) -> sqlx::Result<()> {
    let row = sqlx::query("SELECT due_at, payload FROM ingest.deferred WHERE outbox_id = $1")
        .bind(outbox_id)
        .fetch_optional(&mut *tx)
        .await?;
    let mut waiting = NotificationWaiting {
        account_id: account_id.to_owned(),
        key: format!("held:{outbox_id}"),
        reason: "quiet_hours".into(),
        as_of: Some(now()),
        ..Default::default()
    };
    if let Some(row) = row {
        let payload: Vec<u8> = row.try_get("payload")?;
        // An unreadable request still waits; it shows without its details.
        let request = NotificationRequest::decode(payload.as_slice()).unwrap_or_default();
        waiting.r#type = request.r#type;
        waiting.customer_id = request.customer.map(|c| c.customer_id).unwrap_or_default();
        waiting.job_id = request.job.map(|j| j.job_id).unwrap_or_default();
        waiting.due_at = Some(timestamp(row.try_get("due_at")?));
    }
    announce(tx, &waiting).await
}

async fn announce(tx: &mut PgConnection, waiting: &NotificationWaiting) -> sqlx::Result<()> {
    let message = OutboxMessage::of(waiting, format_args!("{}:{}", waiting.key, uuid::Uuid::now_v7()));
    outbox::enqueue(tx, crate::SCHEMA, &message).await
}
