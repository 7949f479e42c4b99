//! The durable schedule in ingest's tables: pending day-before reminders, notification requests
//! waiting out quiet hours, and the on-my-way throttle. Unique keys and conditional upserts,
//! never check-then-insert, so replays and concurrent replicas cannot double anything.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use messaging_domain::schedule;
use messaging_platform::bus::{OutboxMessage, trace};
use sqlx::{PgConnection, Row};
use tracing::{Instrument, Span};

use crate::store::{JobKey, StoredAccount, StoredJob};

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

/// A job whose reminder is to match the job as stored.
pub struct ReminderSync<'a> {
    pub account_id: &'a str,
    pub account: &'a StoredAccount,
    pub job: &'a StoredJob,
    /// The span of the event that moved it: the feed's notice continues its trace.
    pub span: &'a Span,
}

/// Makes each job's pending reminder (each job at most once) match the job as stored: due the
/// local day before at the account's reminder time while the job is scheduled and that moment is
/// ahead; gone otherwise. Two statements whatever the number of jobs; the feed hears of each.
pub async fn sync_reminders(
    tx: &mut PgConnection,
    jobs: &[ReminderSync<'_>],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<ReminderPlan>> {
    let plans: Vec<ReminderPlan> = jobs
        .iter()
        .map(|sync| {
            let job = sync.job;
            let due = (job.state == "scheduled")
                .then(|| schedule::reminder_for(job.starts_at, sync.account.zone(), sync.account.reminder_time, now))
                .flatten();
            due.map_or(ReminderPlan::None, ReminderPlan::Due)
        })
        .collect();
    let due: Vec<(&ReminderSync, DateTime<Utc>)> = jobs
        .iter()
        .zip(&plans)
        .filter_map(|(sync, plan)| match plan {
            ReminderPlan::Due(at) => Some((sync, *at)),
            ReminderPlan::None => None,
        })
        .collect();
    if !due.is_empty() {
        sqlx::query(
            "INSERT INTO ingest.reminders (account_id, job_id, starts_at, due_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
             ON CONFLICT (account_id, job_id) DO UPDATE SET starts_at = EXCLUDED.starts_at, due_at = EXCLUDED.due_at",
        )
        .bind(due.iter().map(|(s, _)| s.account_id).collect::<Vec<_>>())
        .bind(due.iter().map(|(s, _)| s.job.snapshot.job_id.as_str()).collect::<Vec<_>>())
        .bind(due.iter().map(|(s, _)| s.job.starts_at).collect::<Vec<_>>())
        .bind(due.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    for (sync, due_at) in &due {
        let (job_id, customer_id) = (&sync.job.snapshot.job_id, sync.job.customer_id.clone());
        let notice = crate::waiting::reminder_as(tx, sync.account_id, job_id, customer_id, Some(*due_at));
        notice.instrument(sync.span.clone()).await?;
    }
    let gone: Vec<&ReminderSync> =
        jobs.iter().zip(&plans).filter(|(_, plan)| **plan == ReminderPlan::None).map(|(sync, _)| sync).collect();
    if !gone.is_empty() {
        let deleted: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM ingest.reminders WHERE (account_id, job_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
             RETURNING account_id, job_id",
        )
        .bind(gone.iter().map(|s| s.account_id).collect::<Vec<_>>())
        .bind(gone.iter().map(|s| s.job.snapshot.job_id.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for sync in gone {
            let key = (sync.account_id.to_owned(), sync.job.snapshot.job_id.clone());
            if deleted.contains(&key) {
                let customer_id = sync.job.customer_id.clone();
                let notice = crate::waiting::reminder_as(tx, sync.account_id, &key.1, customer_id, None);
                notice.instrument(sync.span.clone()).await?;
            }
        }
    }
    Ok(plans)
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

/// An on-my-way to record: the job (account, id) and its event time.
pub type OnMyWay<'a> = (&'a str, &'a str, DateTime<Utc>);

/// Records an on-my-way for each job (each at most once) at its event time; returns those
/// claimed: the others had one go out (or going out) within [`ON_MY_WAY_INTERVAL`], in either
/// order of arrival.
pub async fn claim_on_my_way(tx: &mut PgConnection, claims: &[OnMyWay<'_>]) -> sqlx::Result<HashSet<JobKey>> {
    let claimed: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO ingest.on_my_way AS o (account_id, job_id, last_sent_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
         ON CONFLICT (account_id, job_id) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at
         WHERE EXCLUDED.last_sent_at >= o.last_sent_at + $4 OR EXCLUDED.last_sent_at <= o.last_sent_at - $4
         RETURNING account_id, job_id",
    )
    .bind(claims.iter().map(|c| c.0).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.1).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.2).collect::<Vec<_>>())
    .bind(ON_MY_WAY_INTERVAL)
    .fetch_all(tx)
    .await?;
    Ok(claimed.into_iter().collect())
}
