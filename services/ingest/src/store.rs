//! ingest's tables: processed events and the account, customer and job snapshots. Snapshots only
//! move forward in event time, so a late, older event never overwrites newer state.

use std::collections::HashMap;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use messaging_domain::event::{AccountSettings, Contact, JobEvent, JobInput};
use messaging_domain::schedule::QuietHours;
use messaging_domain::{AccountId, E164};
use messaging_platform::bus::in_rounds;
use messaging_proto::bus;
use messaging_proto::time::timestamp;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

/// Records each event id; an event already processed (earlier, or earlier in `events`) is not
/// fresh. One statement, which also reads each event's account as stored before the events.
pub async fn mark_processed(tx: &mut PgConnection, events: &[&JobEvent]) -> sqlx::Result<Vec<Marked>> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let unique: Vec<&JobEvent> = events
        .iter()
        .enumerate()
        .filter(|(n, e)| *first.entry(e.event_id.as_str()).or_insert(*n) == *n)
        .map(|(_, e)| *e)
        .collect();
    let rows = sqlx::query(
        "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS i (event_id, account_id, event_type, n)),
              marked AS (INSERT INTO ingest.processed_events (event_id, account_id, event_type)
                         SELECT event_id, account_id, event_type FROM input ORDER BY n
                         ON CONFLICT DO NOTHING RETURNING event_id)
         SELECT EXISTS (SELECT 1 FROM marked m WHERE m.event_id = i.event_id) AS fresh, a.name, a.timezone,
                a.sms_number, a.email_from, a.reminder_time, a.quiet_start, a.quiet_end, a.sms_registration,
                a.sms_registration_reason, a.email_fallback
         FROM input i LEFT JOIN ingest.accounts a ON a.account_id = i.account_id ORDER BY i.n",
    )
    .bind(unique.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>())
    .bind(unique.iter().map(|e| e.account_id.as_str()).collect::<Vec<_>>())
    .bind(unique.iter().map(|e| e.kind.name()).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    let mut marked = rows.iter().map(|row| {
        let known = row.try_get::<Option<String>, _>("name")?.is_some();
        Ok(Marked { fresh: row.try_get("fresh")?, account: if known { Some(stored_account(row)?) } else { None } })
    });
    events
        .iter()
        .enumerate()
        .map(|(n, e)| match first[e.event_id.as_str()] == n {
            true => marked.next().unwrap_or(Err(sqlx::Error::RowNotFound)),
            false => Ok(Marked { fresh: false, account: None }),
        })
        .collect()
}

/// What marking an event processed found, in the same round trip.
pub struct Marked {
    /// False when the event had been processed before.
    pub fresh: bool,
    /// The event's account as stored before the events.
    pub account: Option<StoredAccount>,
}

pub async fn upsert_account(
    tx: &mut PgConnection,
    account: &AccountId,
    s: &AccountSettings,
    as_of: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ingest.accounts AS a (account_id, name, timezone, sms_number, email_from, reminder_time, quiet_start,
             quiet_end, as_of, sms_registration, sms_registration_reason, email_fallback)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
             sms_number = EXCLUDED.sms_number, email_from = EXCLUDED.email_from, reminder_time = EXCLUDED.reminder_time,
             quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, as_of = EXCLUDED.as_of,
             sms_registration = EXCLUDED.sms_registration, sms_registration_reason = EXCLUDED.sms_registration_reason,
             email_fallback = EXCLUDED.email_fallback
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
    .bind(s.sms_registration.as_ref().map(|r| r.state.as_str()))
    .bind(s.sms_registration.as_ref().map(|r| r.reason.as_str()))
    .bind(s.email_fallback)
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
    /// The registration as last reported (`None`: never reported) and why it was rejected.
    pub sms_registration: Option<String>,
    pub sms_registration_reason: String,
    /// Whether an automatic SMS that fails permanently goes by email instead.
    pub email_fallback: bool,
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
        "SELECT name, timezone, sms_number, email_from, reminder_time, quiet_start, quiet_end, sms_registration,
                sms_registration_reason, email_fallback
         FROM ingest.accounts WHERE account_id = $1",
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
        sms_registration: row.try_get("sms_registration")?,
        sms_registration_reason: row.try_get::<Option<String>, _>("sms_registration_reason")?.unwrap_or_default(),
        email_fallback: row.try_get("email_fallback")?,
    })
}

/// A customer as an event describes them.
pub struct CustomerRow<'a> {
    pub account: &'a AccountId,
    pub contact: &'a Contact,
    pub as_of: DateTime<Utc>,
}

/// Stores each customer as of its `as_of` unless a newer snapshot is stored, one statement per
/// round (a customer once in each); true for each that changed what the directory lists for them
/// (a new customer, or new name, number, email or consent).
pub async fn upsert_customers(tx: &mut PgConnection, customers: &[CustomerRow<'_>]) -> sqlx::Result<Vec<bool>> {
    let mut changed = vec![false; customers.len()];
    let indexed: Vec<usize> = (0..customers.len()).collect();
    let key = |n: &usize| (customers[*n].account.as_str(), customers[*n].contact.customer_id.as_str());
    for round in in_rounds(indexed, key) {
        let rows = round.iter().map(|n| &customers[*n]);
        // The comparison runs against the row the upsert locked, never a snapshot a concurrent
        // transaction may already have changed.
        let returned: Vec<(String, String, bool)> = sqlx::query_as(
            "INSERT INTO ingest.customers AS c (account_id, customer_id, name, phone, email, sms_allowed, email_allowed, as_of)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[], $8::timestamptz[])
             ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
                 email = EXCLUDED.email, sms_allowed = EXCLUDED.sms_allowed, email_allowed = EXCLUDED.email_allowed,
                 as_of = EXCLUDED.as_of,
                 listing_changed = (c.name, c.phone, c.email, c.sms_allowed, c.email_allowed) IS DISTINCT FROM
                     (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email, EXCLUDED.sms_allowed, EXCLUDED.email_allowed)
             WHERE c.as_of <= EXCLUDED.as_of
             RETURNING account_id, customer_id, listing_changed",
        )
        .bind(rows.clone().map(|c| c.account.as_str()).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.customer_id.as_str()).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.name.as_str()).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.phone.as_ref().map(|p| p.as_str())).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.email.as_deref()).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.preferences.sms).collect::<Vec<_>>())
        .bind(rows.clone().map(|c| c.contact.preferences.email).collect::<Vec<_>>())
        .bind(rows.map(|c| c.as_of).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let returned: HashMap<(String, String), bool> = returned.into_iter().map(|(a, c, l)| ((a, c), l)).collect();
        for n in round {
            let (account, customer) = key(&n);
            changed[n] = returned.get(&(account.to_owned(), customer.to_owned())).copied().unwrap_or(false);
        }
    }
    Ok(changed)
}

/// A job as an event describes it, in the state the event puts it in.
pub struct JobRow<'a> {
    pub account: &'a AccountId,
    pub customer_id: &'a str,
    pub job: &'a JobInput,
    pub state: &'a str,
    pub as_of: DateTime<Utc>,
}

/// A job's key: its account and id.
pub type JobKey = (String, String);

/// Locks the jobs (those stored) and returns them as they stand.
pub async fn lock_jobs(tx: &mut PgConnection, jobs: &[JobRow<'_>]) -> sqlx::Result<HashMap<JobKey, StoredJob>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT account_id, {JOB_COLUMNS} FROM ingest.jobs
         WHERE (account_id, job_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) FOR UPDATE"
    )))
    .bind(jobs.iter().map(|j| j.account.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.id.as_str()).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    rows.into_iter().map(keyed_job).collect()
}

/// Upserts each job unless its stored snapshot is newer (each job at most once); returns the
/// jobs it changed, as it left them.
pub async fn upsert_jobs(tx: &mut PgConnection, jobs: &[JobRow<'_>]) -> sqlx::Result<HashMap<JobKey, StoredJob>> {
    let rows = sqlx::query(
        "INSERT INTO ingest.jobs AS j (account_id, job_id, customer_id, title, starts_at, ends_at, technician_name, address, state,
                                       as_of, technician_id, helper_ids)
         SELECT account_id, job_id, customer_id, title, starts_at, ends_at, technician_name, address, state, as_of,
                technician_id, COALESCE(string_to_array(NULLIF(helpers, ''), ','), '{}')
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                     $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[])
              AS i (account_id, job_id, customer_id, title, starts_at, ends_at, technician_name, address, state, as_of,
                    technician_id, helpers)
         ON CONFLICT (account_id, job_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, title = EXCLUDED.title,
             starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, technician_name = EXCLUDED.technician_name,
             address = EXCLUDED.address, as_of = EXCLUDED.as_of, technician_id = EXCLUDED.technician_id,
             helper_ids = EXCLUDED.helper_ids,
             -- A finished job stays finished when a tech taps On my way on it by mistake.
             state = CASE WHEN j.state IN ('completed', 'cancelled') AND EXCLUDED.state = 'en_route'
                          THEN j.state ELSE EXCLUDED.state END
         WHERE j.as_of <= EXCLUDED.as_of
         RETURNING account_id, job_id, customer_id, title, starts_at, ends_at, technician_name, address, state,
                   technician_id, helper_ids",
    )
    .bind(jobs.iter().map(|j| j.account.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.id.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.customer_id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.title.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.starts_at).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.ends_at).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.technician.as_ref().map(|t| t.name.as_str()).unwrap_or("")).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.address.as_str()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.state).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.as_of).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.technician_ids().0.map(|t| t.as_str())).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.job.technician_ids().1.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    rows.into_iter().map(keyed_job).collect()
}

fn keyed_job(row: PgRow) -> sqlx::Result<(JobKey, StoredJob)> {
    let account: String = row.try_get("account_id")?;
    let job = stored_job(row)?;
    Ok(((account, job.snapshot.job_id.clone()), job))
}

/// The job as stored.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub customer_id: String,
    pub state: String,
    pub starts_at: DateTime<Utc>,
    pub snapshot: bus::JobSnapshot,
}

const JOB_COLUMNS: &str =
    "job_id, customer_id, title, starts_at, ends_at, technician_name, address, state, technician_id, helper_ids";

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
            technician_id: row.try_get::<Option<String>, _>("technician_id")?.unwrap_or_default(),
            helper_ids: row.try_get("helper_ids")?,
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
