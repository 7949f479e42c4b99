//! Threads: the customer a thread belongs to, unread replies per thread and in total, marking a
//! thread read, and the failed-message count for a date range.

use chrono::{DateTime, Utc};
use messaging_domain::AccountId;
use sqlx::{PgPool, Row};

use crate::changes;
use crate::store::ThreadOf;

/// Threads listed with unread replies, at most.
const MAX_UNREAD_THREADS: i64 = 500;

/// A customer as the directory lists it.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    pub customer_id: String,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub sms_allowed: bool,
    pub email_allowed: bool,
}

/// The account's customer, or the customer as its latest message names it (a thread can exist
/// before the directory's listing arrives).
pub async fn customer<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: &AccountId,
    customer_id: &str,
) -> sqlx::Result<Option<CustomerRow>> {
    let row = sqlx::query(
        "SELECT customer_id, name, phone, email, sms_allowed, email_allowed FROM feed.customers
         WHERE account_id = $1 AND customer_id = $2
         UNION ALL
         (SELECT customer_id, customer_name, customer_phone, customer_email, true, true FROM feed.messages
          WHERE account_id = $1 AND customer_id = $2 AND direction IS NOT NULL
          ORDER BY created_at DESC, message_id DESC LIMIT 1)
         LIMIT 1",
    )
    .bind(account.as_str())
    .bind(customer_id)
    .fetch_all(executor)
    .await?
    .into_iter()
    .next();
    row.as_ref().map(customer_row).transpose()
}

/// A `CustomerRow` from a row with its six columns.
pub fn customer_row(r: &sqlx::postgres::PgRow) -> sqlx::Result<CustomerRow> {
    Ok(CustomerRow {
        customer_id: r.try_get("customer_id")?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        sms_allowed: r.try_get("sms_allowed")?,
        email_allowed: r.try_get("email_allowed")?,
    })
}

/// Unread replies in one thread: (customer_id, sender for an unknown one, unread).
pub type ThreadUnread = (String, String, i64);

/// Unread replies: the total, and per thread (most recent first); only `customers`' when given
/// (a technician's scope).
pub async fn unread(
    pool: &PgPool,
    account: &AccountId,
    customers: Option<&[String]>,
) -> sqlx::Result<(i64, Vec<ThreadUnread>)> {
    let rows = sqlx::query(
        "SELECT customer_id, CASE WHEN customer_id = '' THEN COALESCE(NULLIF(customer_phone, ''), customer_email) ELSE '' END AS sender,
                count(*) AS unread, max(created_at) AS latest
         FROM feed.messages WHERE account_id = $1 AND unread AND ($2::text[] IS NULL OR customer_id = ANY($2))
         GROUP BY 1, 2 ORDER BY latest DESC",
    )
    .bind(account.as_str())
    .bind(customers)
    .fetch_all(pool)
    .await?;
    let mut total = 0;
    let mut threads = Vec::new();
    for row in &rows {
        let count: i64 = row.try_get("unread")?;
        total += count;
        if (threads.len() as i64) < MAX_UNREAD_THREADS {
            threads.push((row.try_get("customer_id")?, row.try_get("sender")?, count));
        }
    }
    Ok((total, threads))
}

/// Failed messages created in `[since, until)`; only `customers`' when given.
pub async fn failed(
    pool: &PgPool,
    account: &AccountId,
    customers: Option<&[String]>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM feed.messages WHERE account_id = $1 AND status = 'failed'
           AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)
           AND ($4::text[] IS NULL OR customer_id = ANY($4))",
    )
    .bind(account.as_str())
    .bind(since)
    .bind(until)
    .bind(customers)
    .fetch_one(pool)
    .await
}

/// Marks a thread's unread replies read (all of them, or only `message_ids` when given), only
/// `customers`' when given; returns how many changed.
pub async fn mark_read(
    pool: &PgPool,
    account: &AccountId,
    thread: Option<&ThreadOf>,
    message_ids: &[String],
    customers: Option<&[String]>,
) -> sqlx::Result<u64> {
    let (customer, sender) = match thread {
        Some(ThreadOf::Customer(id)) => (Some(id.as_str()), None),
        Some(ThreadOf::Sender(address)) => (None, Some(address.as_str())),
        None => (None, None),
    };
    let mut tx = pool.begin().await?;
    let marked: Vec<String> = sqlx::query_scalar(
        "UPDATE feed.messages SET unread = false
         WHERE account_id = $1 AND unread AND ($2::text IS NULL OR customer_id = $2)
           AND ($4::text IS NULL OR (customer_id = '' AND (customer_phone = $4 OR lower(customer_email) = lower($4))))
           AND (cardinality($3::text[]) = 0 OR message_id = ANY($3))
           AND ($5::text[] IS NULL OR customer_id = ANY($5))
         RETURNING message_id",
    )
    .bind(account.as_str())
    .bind(customer)
    .bind(message_ids)
    .bind(sender)
    .bind(customers)
    .fetch_all(&mut *tx)
    .await?;
    for id in &marked {
        changes::record(&mut tx, account.as_str(), id).await?;
    }
    tx.commit().await?;
    Ok(marked.len() as u64)
}
