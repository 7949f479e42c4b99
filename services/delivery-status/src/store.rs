//! Applies a status report: keep the raw report in the timeline (once per dedupe key), move the
//! message's status forward with one conditional upsert, and enqueue `status` for the feed when the
//! status (or its failure details) moved, and `failed` (for dispatch's SMS→email fallback) when it
//! moved to failed, all in one transaction. Errors once stored are never erased.

use chrono::{DateTime, Utc};
use messaging_domain::{Channel, Status};
use messaging_platform::bus::in_rounds;
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::{MessageFailed, StatusChanged};
use sqlx::{PgConnection, PgPool, Row};
use tracing::Instrument as _;

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
    /// The span it came in (a webhook request, a consumed attempt): what it causes continues that trace.
    pub span: tracing::Span,
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
            span: tracing::Span::current(),
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

/// Applies `report` inside the caller's transaction (see [`apply_all`]).
pub async fn apply_in(tx: &mut PgConnection, report: &Report) -> sqlx::Result<Applied> {
    Ok(apply_all(tx, &[report]).await?.pop().unwrap_or(Applied::Duplicate))
}

/// Applies `reports` (in arrival order) inside the caller's transaction, one statement per round
/// of reports about distinct messages: each report's timeline entry, and the status move made
/// only when the entry is new (advance only to a higher rank, or from unknown to sent; keep the
/// first stored error). A report whose key came earlier in `reports` is a duplicate.
pub async fn apply_all(tx: &mut PgConnection, reports: &[&Report]) -> sqlx::Result<Vec<Applied>> {
    let mut results = vec![Applied::Duplicate; reports.len()];
    let mut keys = std::collections::HashSet::new();
    let fresh: Vec<usize> = (0..reports.len()).filter(|&i| keys.insert(reports[i].dedupe_key.as_str())).collect();
    for round in in_rounds(fresh, |&i| reports[i].message_id.as_str()) {
        let batch: Vec<&Report> = round.iter().map(|&i| reports[i]).collect();
        for (slot, applied) in round.into_iter().zip(apply_round(tx, &batch).await?) {
            results[slot] = applied;
        }
    }
    Ok(results)
}

const APPLY: &str = "
    WITH input AS (
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::jsonb[],
                             $15::timestamptz[]) WITH ORDINALITY
             AS i(message_id, account_id, channel, provider_id, status, status_rank, failure_reason, error_code,
                  error_text, recipient, unsubscribe_token, source, dedupe_key, detail, occurred_at, ord)),
    before AS (
        SELECT message_id, status, failure_reason, error_code, error_text FROM delivery_status.messages
        WHERE message_id IN (SELECT message_id FROM input)),
    logged AS (
        INSERT INTO delivery_status.timeline (message_id, account_id, source, status, dedupe_key, detail, occurred_at)
        SELECT message_id, account_id, source, status, dedupe_key, detail, occurred_at FROM input
        ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key),
    moved AS (
        INSERT INTO delivery_status.messages AS m
            (message_id, account_id, channel, provider_id, status, status_rank, failure_reason, error_code,
             error_text, recipient, unsubscribe_token)
        SELECT i.message_id, i.account_id, i.channel, i.provider_id, i.status, i.status_rank, i.failure_reason,
               i.error_code, i.error_text, i.recipient, i.unsubscribe_token
        FROM input i JOIN logged l ON l.dedupe_key = i.dedupe_key ORDER BY i.message_id
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
        RETURNING m.message_id, m.status, m.failure_reason, m.error_code, m.error_text, m.provider_id, m.channel)
    SELECT i.ord, l.id AS timeline_id, moved.status, moved.failure_reason, moved.error_code, moved.error_text,
           moved.provider_id, moved.channel,
           (b.status, b.failure_reason, b.error_code, b.error_text)
               IS DISTINCT FROM (moved.status, moved.failure_reason, moved.error_code, moved.error_text) AS changed
    FROM input i JOIN logged l ON l.dedupe_key = i.dedupe_key
    LEFT JOIN moved ON moved.message_id = i.message_id LEFT JOIN before b ON b.message_id = i.message_id";

/// Applies reports about distinct messages with distinct keys in one statement.
async fn apply_round(tx: &mut PgConnection, reports: &[&Report]) -> sqlx::Result<Vec<Applied>> {
    let column = |f: fn(&Report) -> Option<&str>| reports.iter().map(|r| f(r)).collect::<Vec<Option<&str>>>();
    let rows = sqlx::query(APPLY)
        .bind(column(|r| Some(&r.message_id)))
        .bind(column(|r| Some(&r.account_id)))
        .bind(column(|r| r.channel.map(|c| c.as_str())))
        .bind(column(|r| r.provider_id.as_deref()))
        .bind(column(|r| Some(r.status.as_str())))
        .bind(reports.iter().map(|r| i16::from(r.status.rank())).collect::<Vec<_>>())
        .bind(column(|r| r.failure_reason.as_deref()))
        .bind(column(|r| r.error_code.as_deref()))
        .bind(column(|r| r.error_text.as_deref()))
        .bind(column(|r| r.recipient.as_deref()))
        .bind(column(|r| r.unsubscribe_token.as_deref()))
        .bind(column(|r| Some(r.source)))
        .bind(column(|r| Some(&r.dedupe_key)))
        .bind(reports.iter().map(|r| &r.detail).collect::<Vec<_>>())
        .bind(reports.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let mut results = vec![Applied::Duplicate; reports.len()];
    for row in rows {
        let index = usize::try_from(row.try_get::<i64, _>("ord")? - 1).unwrap_or(usize::MAX);
        let Some(report) = reports.get(index) else { continue };
        results[index] = settled(tx, report, &row).instrument(report.span.clone()).await?;
    }
    Ok(results)
}

/// What a report new to the timeline did, given its statement's row: the opt-out it implies and,
/// when it moved the status, the `status` event for the feed, both enqueued.
async fn settled(tx: &mut PgConnection, report: &Report, row: &sqlx::postgres::PgRow) -> sqlx::Result<Applied> {
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
    if report.status == Status::Failed {
        let channel = row.try_get::<Option<&str>, _>("channel")?.and_then(Channel::parse);
        let failed = MessageFailed {
            message_id: event.message_id,
            account_id: event.account_id,
            channel: channel.map_or(0, Channel::to_proto),
            failure_reason: event.failure_reason,
            provider_error_code: event.provider_error_code,
            occurred_at: event.occurred_at,
        };
        // Once per message and reason: a later report may name the reason the first one lacked.
        let unique = format!("{}:{}", failed.message_id, failed.failure_reason);
        outbox::enqueue(tx, crate::SCHEMA, &OutboxMessage::of(&failed, unique)).await?;
    }
    Ok(Applied::Advanced)
}
