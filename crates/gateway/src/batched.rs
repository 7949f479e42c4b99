//! The claim and settle statements over many messages at once, for [`crate::group`]: each
//! answers per request exactly what the one-message statement would have, in request order.

use std::collections::HashSet;

use messaging_platform::bus::in_rounds;
use messaging_platform::bus::outbox::Collected;
use sqlx::{AssertSqlSafe, PgPool};

/// A claim to insert.
pub(crate) struct ClaimRow {
    pub message_id: String,
    pub account_id: String,
    pub recipient: String,
    pub sender: String,
    pub body_digest: String,
}

/// Inserts the claims in one statement; true for each request that won its message. A message
/// asked for twice in one batch can be won by its first request only.
pub(crate) async fn claim_all(
    pool: &PgPool,
    schema: &str,
    lease_secs: f64,
    rows: Vec<ClaimRow>,
) -> sqlx::Result<Vec<bool>> {
    let mut seen = HashSet::new();
    let first: Vec<bool> = rows.iter().map(|row| seen.insert(row.message_id.as_str())).collect();
    let candidates: Vec<&ClaimRow> = rows.iter().zip(&first).filter(|(_, first)| **first).map(|(row, _)| row).collect();
    let column = |f: fn(&ClaimRow) -> &str| candidates.iter().map(|row| f(row)).collect::<Vec<&str>>();
    let won: HashSet<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "INSERT INTO {schema}.attempts (message_id, account_id, state, recipient, sender, body_digest, lease_until)
         SELECT message_id, account_id, 'claimed', recipient, sender, body_digest, now() + make_interval(secs => $6)
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS i(message_id, account_id, recipient, sender, body_digest)
         ORDER BY message_id
         ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
    )))
    .bind(column(|row| &row.message_id))
    .bind(column(|row| &row.account_id))
    .bind(column(|row| &row.recipient))
    .bind(column(|row| &row.sender))
    .bind(column(|row| &row.body_digest))
    .bind(lease_secs)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(rows.iter().zip(first).map(|(row, first)| first && won.contains(&row.message_id)).collect())
}

/// A settlement to record, with its `attempt` event: enqueued in the outbox by the same statement
/// when `relayed`, published by the caller once the statement commits otherwise.
pub(crate) struct SettleRow {
    pub message_id: String,
    pub state: &'static str,
    pub provider_id: Option<String>,
    pub reason: Option<String>,
    pub code: Option<String>,
    pub text: Option<String>,
    pub event: Collected,
    pub relayed: bool,
}

/// Records the settlements, one statement per round of distinct messages (one message's
/// settlements in request order); true for each that applied (only a `claimed` or `unknown` row
/// can be settled).
pub(crate) async fn settle_all(pool: &PgPool, schema: &str, rows: &[SettleRow]) -> sqlx::Result<Vec<bool>> {
    let mut applied = vec![false; rows.len()];
    for members in in_rounds((0..rows.len()).collect(), |&i| rows[i].message_id.as_str()) {
        let batch: Vec<&SettleRow> = members.iter().map(|&i| &rows[i]).collect();
        let settled: HashSet<String> = settle_round(pool, schema, &batch).await?.into_iter().collect();
        for i in members {
            applied[i] = settled.contains(&rows[i].message_id);
        }
    }
    Ok(applied)
}

async fn settle_round(pool: &PgPool, schema: &str, rows: &[&SettleRow]) -> sqlx::Result<Vec<String>> {
    let column = |f: fn(&SettleRow) -> Option<&str>| rows.iter().map(|row| f(row)).collect::<Vec<Option<&str>>>();
    sqlx::query_scalar(AssertSqlSafe(format!(
        "WITH input AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::bytea[], $10::jsonb[], $11::bool[])
                  AS i(message_id, state, provider_id, reason, code, text, event_id, subject, payload, headers,
                       relayed)),
         settled AS (
             UPDATE {schema}.attempts a SET state = i.state, provider_id = COALESCE(i.provider_id, a.provider_id),
                 failure_reason = i.reason, error_code = i.code, error_text = i.text, updated_at = now()
             FROM input i
             WHERE a.message_id = i.message_id AND (a.state = 'claimed' OR (a.state = 'unknown' AND i.state <> 'unknown'))
             RETURNING a.message_id),
         queued AS (
             INSERT INTO {schema}.outbox (id, subject, payload, headers)
             SELECT i.event_id, i.subject, i.payload, i.headers FROM input i JOIN settled s USING (message_id)
             WHERE i.relayed
             ON CONFLICT (id) DO NOTHING)
         SELECT message_id FROM settled"
    )))
    .bind(column(|row| Some(&row.message_id)))
    .bind(column(|row| Some(row.state)))
    .bind(column(|row| row.provider_id.as_deref()))
    .bind(column(|row| row.reason.as_deref()))
    .bind(column(|row| row.code.as_deref()))
    .bind(column(|row| row.text.as_deref()))
    .bind(column(|row| Some(&row.event.message().id)))
    .bind(column(|row| Some(&row.event.message().subject)))
    .bind(rows.iter().map(|row| row.event.message().payload.as_slice()).collect::<Vec<&[u8]>>())
    .bind(rows.iter().map(|row| row.event.headers()).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.relayed).collect::<Vec<bool>>())
    .fetch_all(pool)
    .await
}
