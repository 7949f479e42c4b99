//! Applies a status report: keep the raw report in the timeline (once per dedupe key), move the
//! message's status forward with one conditional upsert, and enqueue `status` for the feed when the
//! status (or its failure details) moved, all in one transaction. Errors once stored are never erased.

use chrono::{DateTime, Utc};
use messaging_domain::{Channel, Status};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::StatusChanged;
use sqlx::{PgConnection, PgPool, Row};

/// One report about a message from a gateway or the provider.
#[derive(Debug, Clone)]
pub struct Report {
    pub message_id: String,
    pub account_id: String,
    pub channel: Option<Channel>,
    pub status: Status,
    pub provider_id: Option<String>,
    pub failure_reason: Option<String>,
    pub error_code: Option<String>,
    pub error_text: Option<String>,
    pub source: &'static str,
    /// The same report seen again has the same key and changes nothing.
    pub dedupe_key: String,
    pub detail: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    /// An event the report implies (an opt-out), published with it the first time it is seen.
    pub implies: Option<OutboxMessage>,
    /// The address the message went to, when the report knows it.
    pub recipient: Option<String>,
    /// An email's opaque one-click unsubscribe token, when the report knows it.
    pub unsubscribe_token: Option<String>,
}

impl Report {
    /// A report that `status` happened now, with nothing else known; callers fill in the rest.
    pub fn new(
        message_id: impl Into<String>,
        account_id: impl Into<String>,
        channel: Channel,
        status: Status,
        source: &'static str,
        dedupe_key: String,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            account_id: account_id.into(),
            channel: Some(channel),
            status,
            provider_id: None,
            failure_reason: None,
            error_code: None,
            error_text: None,
            source,
            dedupe_key,
            detail,
            occurred_at: Utc::now(),
            implies: None,
            recipient: None,
            unsubscribe_token: None,
        }
    }
}

/// What applying a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Duplicate,
    /// Kept in the timeline; the status did not move (a lower or equal rank, or another account's message).
    Recorded,
    Advanced,
}

/// Applies `report` in a transaction of its own.
pub async fn apply(pool: &PgPool, report: &Report) -> sqlx::Result<Applied> {
    let mut tx = pool.begin().await?;
    let applied = apply_in(&mut tx, report).await?;
    if applied != Applied::Duplicate {
        tx.commit().await?;
    }
    Ok(applied)
}

/// Applies `report` inside the caller's transaction: the timeline entry and the status move are one
/// statement, the move made only when the entry is new (advance only to a higher rank, or from
/// unknown to sent; keep the first stored error).
pub async fn apply_in(tx: &mut PgConnection, report: &Report) -> sqlx::Result<Applied> {
    let row = sqlx::query(
        "WITH before AS (
             SELECT status, failure_reason, error_code, error_text FROM delivery_status.messages WHERE message_id = $1),
         logged AS (
             INSERT INTO delivery_status.timeline (message_id, account_id, source, status, dedupe_key, detail, occurred_at)
             VALUES ($1, $2, $12, $5, $13, $14, $15) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id),
         moved AS (
             INSERT INTO delivery_status.messages AS m
                 (message_id, account_id, channel, provider_id, status, status_rank, failure_reason, error_code,
                  error_text, recipient, unsubscribe_token)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM logged
             ON CONFLICT (message_id) DO UPDATE SET
                 recipient = COALESCE(m.recipient, EXCLUDED.recipient),
                 unsubscribe_token = COALESCE(m.unsubscribe_token, EXCLUDED.unsubscribe_token),
                 provider_id = COALESCE(m.provider_id, EXCLUDED.provider_id),
                 channel = COALESCE(m.channel, EXCLUDED.channel),
                 failure_reason = COALESCE(m.failure_reason, EXCLUDED.failure_reason),
                 error_code = COALESCE(m.error_code, EXCLUDED.error_code),
                 error_text = COALESCE(m.error_text, EXCLUDED.error_text),
                 status = CASE WHEN EXCLUDED.status_rank > m.status_rank OR (m.status = 'unknown' AND EXCLUDED.status = 'sent')
                               THEN EXCLUDED.status ELSE m.status END,
                 status_rank = GREATEST(m.status_rank, EXCLUDED.status_rank),
                 updated_at = now()
             WHERE m.account_id = EXCLUDED.account_id
             RETURNING m.status, m.failure_reason, m.error_code, m.error_text, m.provider_id)
         SELECT logged.id AS timeline_id, moved.*,
                (before.status, before.failure_reason, before.error_code, before.error_text)
                    IS DISTINCT FROM (moved.status, moved.failure_reason, moved.error_code, moved.error_text) AS changed
         FROM logged LEFT JOIN moved ON true LEFT JOIN before ON true",
    )
    .bind(&report.message_id)
    .bind(&report.account_id)
    .bind(report.channel.map(|c| c.as_str()))
    .bind(&report.provider_id)
    .bind(report.status.as_str())
    .bind(i16::from(report.status.rank()))
    .bind(&report.failure_reason)
    .bind(&report.error_code)
    .bind(&report.error_text)
    .bind(&report.recipient)
    .bind(&report.unsubscribe_token)
    .bind(report.source)
    .bind(&report.dedupe_key)
    .bind(&report.detail)
    .bind(report.occurred_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Applied::Duplicate);
    };
    if let Some(implied) = &report.implies {
        outbox::enqueue(tx, crate::SCHEMA, implied).await?;
    }
    let timeline_id: i64 = row.try_get("timeline_id")?;
    let Some(status) = row.try_get::<Option<String>, _>("status")? else {
        return Ok(Applied::Recorded);
    };
    // Only a move is news to the feed: a report that repeats the status (the provider's `sent`
    // after the gateway's) is kept in this timeline and published nowhere.
    if status != report.status.as_str() || !row.try_get::<Option<bool>, _>("changed")?.unwrap_or(true) {
        return Ok(Applied::Recorded);
    }
    let at = report.occurred_at;
    let event = StatusChanged {
        message_id: report.message_id.clone(),
        account_id: report.account_id.clone(),
        status: report.status.to_proto(),
        occurred_at: Some(messaging_proto::time::timestamp(at)),
        failure_reason: row.try_get::<Option<String>, _>("failure_reason")?.unwrap_or_default(),
        provider_error_code: row.try_get::<Option<String>, _>("error_code")?.unwrap_or_default(),
        provider_error_text: row.try_get::<Option<String>, _>("error_text")?.unwrap_or_default(),
        provider_id: row.try_get::<Option<String>, _>("provider_id")?.unwrap_or_default(),
        source: report.source.to_owned(),
    };
    let message = OutboxMessage::of(&event, format_args!("{}:{timeline_id}", report.message_id));
    outbox::enqueue(tx, crate::SCHEMA, &message).await?;
    Ok(Applied::Advanced)
}
