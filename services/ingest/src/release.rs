//! Requests held through quiet hours, re-checked when their time comes: a confirmation whose job
//! was cancelled, done or moved since is dropped (a move requested its own confirmation), one whose
//! account's quiet hours now run later waits again, and what is released carries the customer and
//! account as they are now (a preference turned off, a new number). Opt-outs are dispatch's to
//! apply, when it creates the message after the release.

use chrono::{DateTime, Utc};
use messaging_domain::MessageType;
use messaging_proto::bus::NotificationRequest;
use messaging_proto::time::datetime;
use prost::Message as _;
use sqlx::{PgConnection, Row};

use crate::notify;
use crate::store::{self, Read};

/// What one pass did with the due requests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub released: u64,
    pub dropped: u64,
    pub postponed: u64,
}

/// What becomes of one held request.
enum Fate {
    Release(Vec<u8>),
    Drop(&'static str),
    Postpone(DateTime<Utc>),
}

/// Re-checks and releases up to `limit` held requests whose time has come, each exactly once
/// (locked, and moved to the outbox under its own id).
pub async fn release_due(tx: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> sqlx::Result<Released> {
    let rows = sqlx::query(
        "SELECT outbox_id, account_id, subject, payload, headers FROM ingest.deferred WHERE due_at <= $1
         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut done = Released::default();
    for row in rows {
        let outbox_id: String = row.try_get("outbox_id")?;
        let account_id: String = row.try_get("account_id")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        match fate(tx, &account_id, &payload, now).await? {
            Fate::Postpone(until) => {
                sqlx::query("UPDATE ingest.deferred SET due_at = $2 WHERE outbox_id = $1")
                    .bind(&outbox_id)
                    .bind(until)
                    .execute(&mut *tx)
                    .await?;
                crate::waiting::held(tx, &account_id, &outbox_id).await?;
                done.postponed += 1;
                continue;
            }
            Fate::Drop(why) => {
                tracing::info!(%account_id, %outbox_id, why, "held request dropped at release");
                done.dropped += 1;
            }
            Fate::Release(payload) => {
                sqlx::query(
                    "INSERT INTO ingest.outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&outbox_id)
                .bind(row.try_get::<String, _>("subject")?)
                .bind(payload)
                .bind(row.try_get::<serde_json::Value, _>("headers")?)
                .execute(&mut *tx)
                .await?;
                done.released += 1;
            }
        }
        sqlx::query("DELETE FROM ingest.deferred WHERE outbox_id = $1").bind(&outbox_id).execute(&mut *tx).await?;
        crate::waiting::held(tx, &account_id, &outbox_id).await?;
    }
    Ok(done)
}

async fn fate(tx: &mut PgConnection, account_id: &str, payload: &[u8], now: DateTime<Utc>) -> sqlx::Result<Fate> {
    let Ok(mut request) = NotificationRequest::decode(payload) else {
        // Never dropped: dispatch refuses what it cannot read, with the reason, where an operator sees it.
        tracing::warn!(account_id, "a held request cannot be read; released as it was held");
        return Ok(Fate::Release(payload.to_vec()));
    };
    let Some(account) = store::load_account(tx, account_id).await? else {
        return Ok(Fate::Drop("the account is unknown"));
    };
    let release = account.quiet_hours().release_at(now, account.zone());
    if release > now {
        return Ok(Fate::Postpone(release));
    }
    let confirms_a_time = MessageType::from_proto(request.r#type) == Some(MessageType::AppointmentConfirmation);
    if let Some(held) = request.job.as_ref().filter(|_| confirms_a_time) {
        match store::load_job(tx, account_id, &held.job_id, Read::Plain).await? {
            // A technician on the way does not void the appointment; a cancelled or finished job does.
            Some(job) if matches!(job.state.as_str(), "cancelled" | "completed") => {
                return Ok(Fate::Drop("the job was cancelled or is done"));
            }
            Some(job) if Some(job.starts_at) != datetime(held.starts_at.as_ref()) => {
                return Ok(Fate::Drop("the job has moved"));
            }
            _ => {}
        }
    }
    let customer_id = request.customer.as_ref().map(|c| c.customer_id.clone()).unwrap_or_default();
    if let Some(customer) = store::load_customer(tx, account_id, &customer_id).await? {
        request.customer = Some(customer);
    }
    if let Ok(id) = messaging_domain::AccountId::parse(account_id.to_owned()) {
        request.account = Some(notify::account_snapshot(&id, &account));
    }
    Ok(Fate::Release(request.encode_to_vec()))
}
