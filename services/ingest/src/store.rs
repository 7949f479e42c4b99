//! ingest's tables: processed events and the account, customer and job snapshots. Snapshots only
//! move forward in event time, so a late, older event never overwrites newer state.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use messaging_domain::event::{AccountSettings, Contact, JobInput};
use messaging_domain::schedule::QuietHours;
use messaging_domain::{AccountId, E164};
use messaging_proto::bus;
use messaging_proto::time::timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

/// Records the event id; false when it was already processed.
pub async fn mark_processed(
    tx: &mut PgConnection,
    event_id: &str,
    account: &AccountId,
    kind: &str,
) -> sqlx::Result<Marked> {
    let row = sqlx::query(
        "WITH marked AS (INSERT INTO ingest.processed_events (event_id, account_id, event_type) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM marked) AS fresh, a.name, a.timezone, a.sms_number, a.email_from,
                a.reminder_time, a.quiet_start, a.quiet_end
         FROM (VALUES (1)) AS one (x) LEFT JOIN ingest.accounts a ON a.account_id = $2",
    )
    .bind(event_id)
    .bind(account.as_str())
    .bind(kind)
    .fetch_one(tx)
    .await?;
    let known = row.try_get::<Option<String>, _>("name")?.is_some();
    Ok(Marked { fresh: row.try_get("fresh")?, account: if known { Some(stored_account(&row)?) } else { None } })
}

/// What marking an event processed found, in the same round trip.
pub struct Marked {
    /// False when the event had been processed before.
    pub fresh: bool,
    /// The event's account as stored before the event.
    pub account: Option<StoredAccount>,
}

pub async fn upsert_account(
    tx: &mut PgConnection,
    account: &AccountId,
    s: &AccountSettings,
    as_of: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ingest.accounts AS a (account_id, name, timezone, sms_number, email_from, reminder_time, quiet_start, quiet_end, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
             sms_number = EXCLUDED.sms_number, email_from = EXCLUDED.email_from, reminder_time = EXCLUDED.reminder_time,
             quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, as_of = EXCLUDED.as_of
         WHERE a.as_of <= EXCLUDED.as_of",
    )
    .bind(account.as_str())
    .bind(&s.name)
    .bind(s.timezone.name())
    .bind(s.sms_number.as_str())
    .bind(&s.email_from)
    .bind(s.reminder_time)
    .bind(s.quiet_start)
    .bind(s.quiet_end)
    .bind(as_of)
    .execute(tx)
    .await?;
    Ok(())
}

/// The account snapshot as stored.
#[derive(Debug, Clone)]
pub struct StoredAccount {
    pub name: String,
    pub timezone: String,
    pub sms_number: String,
    pub email_from: String,
    pub reminder_time: NaiveTime,
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
}

impl StoredAccount {
    /// The region customers' phone numbers are read in: the business number's.
    pub fn phone_region(&self) -> messaging_domain::phone::PhoneRegion {
        E164::parse_strict(&self.sms_number).map(|n| n.region()).unwrap_or(messaging_domain::phone::PhoneRegion::US)
    }

    /// The account's IANA zone (validated when stored; UTC if it ever is not).
    pub fn zone(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }

    pub fn quiet_hours(&self) -> QuietHours {
        QuietHours { start: self.quiet_start, end: self.quiet_end }
    }
}

pub async fn load_account(tx: &mut PgConnection, account: &str) -> sqlx::Result<Option<StoredAccount>> {
    let row = sqlx::query(
        "SELECT name, timezone, sms_number, email_from, reminder_time, quiet_start, quiet_end FROM ingest.accounts WHERE account_id = $1",
    )
    .bind(account)
    .fetch_optional(tx)
    .await?;
    row.map(|row| stored_account(&row)).transpose()
}

fn stored_account(row: &PgRow) -> sqlx::Result<StoredAccount> {
    Ok(StoredAccount {
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        sms_number: row.try_get("sms_number")?,
        email_from: row.try_get("email_from")?,
        reminder_time: row.try_get("reminder_time")?,
        quiet_start: row.try_get("quiet_start")?,
        quiet_end: row.try_get("quiet_end")?,
    })
}

/// Stores the customer as of `as_of` unless a newer snapshot is stored; true when that changed
/// what the directory lists for them (a new customer, or new name, number, email or consent).
pub async fn upsert_customer(
    tx: &mut PgConnection,
    account: &AccountId,
    c: &Contact,
    as_of: DateTime<Utc>,
) -> sqlx::Result<bool> {
    // The comparison runs against the row the upsert locked, never a snapshot a concurrent
    // transaction may already have changed.
    let changed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO ingest.customers AS c (account_id, customer_id, name, phone, email, sms_allowed, email_allowed, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
             email = EXCLUDED.email, sms_allowed = EXCLUDED.sms_allowed, email_allowed = EXCLUDED.email_allowed,
             as_of = EXCLUDED.as_of,
             listing_changed = (c.name, c.phone, c.email, c.sms_allowed, c.email_allowed) IS DISTINCT FROM
                 (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email, EXCLUDED.sms_allowed, EXCLUDED.email_allowed)
         WHERE c.as_of <= EXCLUDED.as_of
         RETURNING listing_changed",
    )
    .bind(account.as_str())
    .bind(c.customer_id.as_str())
    .bind(&c.name)
    .bind(c.phone.as_ref().map(|p| p.as_str()))
    .bind(c.email.as_deref())
    .bind(c.preferences.sms)
    .bind(c.preferences.email)
    .bind(as_of)
    .fetch_optional(tx)
    .await?;
    Ok(changed.unwrap_or(false))
}

/// What an upsert of a job did.
#[derive(Debug, Clone)]
pub struct JobUpsert {
    /// The start time before the event, if the job was known.
    pub previous_starts_at: Option<DateTime<Utc>>,
    /// False when the stored snapshot is newer than the event, which then changes nothing.
    pub applied: bool,
    /// The job as the upsert left it, when it applied.
    pub stored: Option<StoredJob>,
}

impl JobUpsert {
    /// The event moved the appointment (or booked it).
    pub fn moved_to(&self, starts_at: DateTime<Utc>) -> bool {
        self.applied && self.previous_starts_at != Some(starts_at)
    }
}

/// Upserts the job unless the stored snapshot is newer.
pub async fn upsert_job(
    tx: &mut PgConnection,
    account: &AccountId,
    customer_id: &str,
    job: &JobInput,
    state: &str,
    as_of: DateTime<Utc>,
) -> sqlx::Result<JobUpsert> {
    let previous: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT starts_at FROM ingest.jobs WHERE account_id = $1 AND job_id = $2 FOR UPDATE")
            .bind(account.as_str())
            .bind(job.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let applied = sqlx::query(
        "INSERT INTO ingest.jobs AS j (account_id, job_id, customer_id, title, starts_at, ends_at, technician_name, address, state, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (account_id, job_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, title = EXCLUDED.title,
             starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, technician_name = EXCLUDED.technician_name,
             address = EXCLUDED.address, as_of = EXCLUDED.as_of,
             -- A finished job stays finished when a tech taps On my way on it by mistake.
             state = CASE WHEN j.state IN ('completed', 'cancelled') AND EXCLUDED.state = 'en_route'
                          THEN j.state ELSE EXCLUDED.state END
         WHERE j.as_of <= EXCLUDED.as_of
         RETURNING job_id, customer_id, title, starts_at, ends_at, technician_name, address, state",
    )
    .bind(account.as_str())
    .bind(job.id.as_str())
    .bind(customer_id)
    .bind(&job.title)
    .bind(job.starts_at)
    .bind(job.ends_at)
    .bind(job.technician.as_ref().map(|t| t.name.as_str()).unwrap_or(""))
    .bind(&job.address)
    .bind(state)
    .bind(as_of)
    .fetch_optional(tx)
    .await?;
    let stored = applied.map(stored_job).transpose()?;
    Ok(JobUpsert { previous_starts_at: previous, applied: stored.is_some(), stored })
}

/// The job as stored.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub customer_id: String,
    pub state: String,
    pub starts_at: DateTime<Utc>,
    pub snapshot: bus::JobSnapshot,
}

const JOB_COLUMNS: &str = "job_id, customer_id, title, starts_at, ends_at, technician_name, address, state";

fn stored_job(row: PgRow) -> sqlx::Result<StoredJob> {
    let starts_at: DateTime<Utc> = row.try_get("starts_at")?;
    let ends_at: DateTime<Utc> = row.try_get("ends_at")?;
    Ok(StoredJob {
        customer_id: row.try_get("customer_id")?,
        state: row.try_get("state")?,
        starts_at,
        snapshot: bus::JobSnapshot {
            job_id: row.try_get("job_id")?,
            title: row.try_get("title")?,
            starts_at: Some(timestamp(starts_at)),
            ends_at: Some(timestamp(ends_at)),
            technician_name: row.try_get("technician_name")?,
            address: row.try_get("address")?,
        },
    })
}

/// How a job is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// As it stands.
    Plain,
    /// Under a share lock, skipping a row being changed right now (reads as `None`: try later).
    ShareSkipLocked,
}

/// The job, or `None` if unknown (or, with [`Read::ShareSkipLocked`], locked by a writer).
pub async fn load_job(
    tx: &mut PgConnection,
    account: &str,
    job_id: &str,
    read: Read,
) -> sqlx::Result<Option<StoredJob>> {
    let lock = if read == Read::ShareSkipLocked { "FOR SHARE SKIP LOCKED" } else { "" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM ingest.jobs WHERE account_id = $1 AND job_id = $2 {lock}"
    )))
    .bind(account)
    .bind(job_id)
    .fetch_optional(tx)
    .await?
    .map(stored_job)
    .transpose()
}

/// The customer as stored, as dispatch needs it.
pub async fn load_customer(
    tx: &mut PgConnection,
    account: &str,
    customer_id: &str,
) -> sqlx::Result<Option<bus::CustomerSnapshot>> {
    let row = sqlx::query(
        "SELECT name, phone, email, sms_allowed, email_allowed FROM ingest.customers WHERE account_id = $1 AND customer_id = $2",
    )
    .bind(account)
    .bind(customer_id)
    .fetch_optional(tx)
    .await?;
    row.map(|row| {
        Ok(bus::CustomerSnapshot {
            customer_id: customer_id.to_owned(),
            name: row.try_get("name")?,
            phone: row.try_get::<Option<String>, _>("phone")?.unwrap_or_default(),
            email: row.try_get::<Option<String>, _>("email")?.unwrap_or_default(),
            sms_allowed: row.try_get("sms_allowed")?,
            email_allowed: row.try_get("email_allowed")?,
        })
    })
    .transpose()
}
