//! The durable schedule in ingest's tables: pending day-before reminders, notification requests
//! waiting out quiet hours, and the on-my-way throttle. Unique keys and conditional upserts,
//! never check-then-insert, so replays and concurrent replicas cannot double anything.

use chrono::{DateTime, Duration, Utc};
use messaging_domain::schedule;
use messaging_platform::bus::{OutboxMessage, trace};
use sqlx::{PgConnection, Row};

use crate::store::{self, StoredAccount, StoredJob};

/// At most one on-my-way per job in this long.
pub const ON_MY_WAY_INTERVAL: Duration = Duration::minutes(5);

/// What the job's reminder became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderPlan {
    /// Pending, due then.
    Due(DateTime<Utc>),
    /// None: the job is not scheduled, or its reminder moment has passed.
    None,
}

/// Makes the job's pending reminder match the job as stored: due the local day before at the
/// account's reminder time while the job is scheduled and that moment is ahead; gone otherwise.
/// `stored` is the job as this transaction just wrote it, when known (else it is read).
pub async fn sync_reminder(
    tx: &mut PgConnection,
    account_id: &str,
    account: &StoredAccount,
    job_id: &str,
    stored: Option<StoredJob>,
    now: DateTime<Utc>,
) -> sqlx::Result<ReminderPlan> {
    let job = match stored {
        Some(job) => Some(job),
        None => store::load_job(tx, account_id, job_id, store::Read::Plain).await?,
    };
    let due = job.filter(|job| job.state == "scheduled").and_then(|job| {
        let due_at = schedule::reminder_for(job.starts_at, account.zone(), account.reminder_time, now)?;
        Some((job.starts_at, due_at, job.customer_id))
    });
    match due {
        Some((starts_at, due_at, customer_id)) => {
            sqlx::query(
                "INSERT INTO ingest.reminders (account_id, job_id, starts_at, due_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, job_id) DO UPDATE SET starts_at = EXCLUDED.starts_at, due_at = EXCLUDED.due_at",
            )
            .bind(account_id)
            .bind(job_id)
            .bind(starts_at)
            .bind(due_at)
            .execute(&mut *tx)
            .await?;
            crate::waiting::reminder_as(tx, account_id, job_id, customer_id, Some(due_at)).await?;
            Ok(ReminderPlan::Due(due_at))
        }
        None => {
            delete_reminder(tx, account_id, job_id).await?;
            Ok(ReminderPlan::None)
        }
    }
}

/// Removes the job's pending reminder (fired, cancelled or moot), telling the feed when there was one.
pub async fn delete_reminder(tx: &mut PgConnection, account_id: &str, job_id: &str) -> sqlx::Result<()> {
    let deleted = sqlx::query("DELETE FROM ingest.reminders WHERE account_id = $1 AND job_id = $2")
        .bind(account_id)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() > 0 {
        crate::waiting::reminder(tx, account_id, job_id).await?;
    }
    Ok(())
}

/// After the account's zone or reminder time changed: every pending reminder moves to the new
/// moment (or now, if the new moment has already passed: the reminder was promised).
pub async fn move_account_reminders(
    tx: &mut PgConnection,
    account_id: &str,
    account: &StoredAccount,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let rows = sqlx::query("SELECT job_id, starts_at FROM ingest.reminders WHERE account_id = $1 FOR UPDATE")
        .bind(account_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut moved = 0;
    for row in rows {
        let job_id: String = row.try_get("job_id")?;
        let starts_at: DateTime<Utc> = row.try_get("starts_at")?;
        let due_at = schedule::reminder_due(starts_at, account.zone(), account.reminder_time).max(now);
        let changed = sqlx::query(
            "UPDATE ingest.reminders SET due_at = $3 WHERE account_id = $1 AND job_id = $2 AND due_at <> $3",
        )
        .bind(account_id)
        .bind(&job_id)
        .bind(due_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            crate::waiting::reminder(tx, account_id, &job_id).await?;
        }
        moved += changed;
    }
    Ok(moved)
}

/// A reminder whose moment has come.
#[derive(Debug, Clone)]
pub struct DueReminder {
    pub account_id: String,
    pub job_id: String,
    pub starts_at: DateTime<Utc>,
}

/// Locks up to `limit` due reminders no other replica holds.
pub async fn lock_due_reminders(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<DueReminder>> {
    let rows = sqlx::query(
        "SELECT account_id, job_id, starts_at FROM ingest.reminders WHERE due_at <= $1
         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(DueReminder {
                account_id: row.try_get("account_id")?,
                job_id: row.try_get("job_id")?,
                starts_at: row.try_get("starts_at")?,
            })
        })
        .collect()
}

pub async fn postpone_reminder(
    tx: &mut PgConnection,
    reminder: &DueReminder,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE ingest.reminders SET due_at = $3 WHERE account_id = $1 AND job_id = $2")
        .bind(&reminder.account_id)
        .bind(&reminder.job_id)
        .bind(until)
        .execute(&mut *tx)
        .await?;
    crate::waiting::reminder(tx, &reminder.account_id, &reminder.job_id).await
}

/// Holds a notification request until `due_at` (the end of quiet hours), with the current trace
/// context. A second deferral of the same request is ignored.
pub async fn defer(
    tx: &mut PgConnection,
    account_id: &str,
    message: &OutboxMessage,
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let headers = serde_json::to_value(trace::current_context_headers()).unwrap_or_default();
    let held = sqlx::query(
        "INSERT INTO ingest.deferred (outbox_id, account_id, due_at, subject, payload, headers)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outbox_id) DO NOTHING",
    )
    .bind(&message.id)
    .bind(account_id)
    .bind(due_at)
    .bind(&message.subject)
    .bind(&message.payload)
    .bind(headers)
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() == 0 {
        return Ok(());
    }
    crate::waiting::held(tx, account_id, &message.id).await
}

/// Records an on-my-way for the job at event time `at`; false when another went out (or will)
/// within [`ON_MY_WAY_INTERVAL`] of it, in either order of arrival.
pub async fn claim_on_my_way(
    tx: &mut PgConnection,
    account_id: &str,
    job_id: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query(
        "INSERT INTO ingest.on_my_way AS o (account_id, job_id, last_sent_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, job_id) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at
         WHERE EXCLUDED.last_sent_at >= o.last_sent_at + $4 OR EXCLUDED.last_sent_at <= o.last_sent_at - $4",
    )
    .bind(account_id)
    .bind(job_id)
    .bind(at)
    .bind(ON_MY_WAY_INTERVAL)
    .execute(tx)
    .await?;
    Ok(claimed.rows_affected() == 1)
}
