//! What will go out later, as ingest says it (`message.<account>.waiting`): kept per item, newer
//! statements only, and listed soonest first with the customer as the directory names them.

use chrono::{DateTime, Utc};
use messaging_domain::{AccountId, MessageType};
use messaging_proto::bus::NotificationWaiting;
use messaging_proto::time::datetime;
use sqlx::{PgConnection, PgPool, Row};

/// Most items one listing returns.
const MAX_LISTED: i64 = 200;

/// Applies one statement unless a newer one about the same item was applied.
pub async fn apply(tx: &mut PgConnection, event: NotificationWaiting) -> sqlx::Result<()> {
    let kind = MessageType::from_proto(event.r#type).map(|t| t.as_str()).unwrap_or("");
    sqlx::query(
        "INSERT INTO feed.waiting AS w (account_id, key, message_type, customer_id, job_id, due_at, reason, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (account_id, key) DO UPDATE SET message_type = CASE WHEN EXCLUDED.message_type = ''
                 THEN w.message_type ELSE EXCLUDED.message_type END,
             customer_id = CASE WHEN EXCLUDED.customer_id = '' THEN w.customer_id ELSE EXCLUDED.customer_id END,
             job_id = CASE WHEN EXCLUDED.job_id = '' THEN w.job_id ELSE EXCLUDED.job_id END,
             due_at = EXCLUDED.due_at, reason = EXCLUDED.reason, as_of = EXCLUDED.as_of
         WHERE w.as_of <= EXCLUDED.as_of",
    )
    .bind(&event.account_id)
    .bind(&event.key)
    .bind(kind)
    .bind(&event.customer_id)
    .bind(&event.job_id)
    .bind(datetime(event.due_at.as_ref()))
    .bind(&event.reason)
    .bind(datetime(event.as_of.as_ref()).unwrap_or_else(Utc::now))
    .execute(tx)
    .await?;
    Ok(())
}

/// One waiting item with its customer.
pub struct Waiting {
    pub key: String,
    pub message_type: String,
    pub customer_id: String,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub job_id: String,
    pub due_at: DateTime<Utc>,
    pub reason: String,
}

/// The account's waiting items (one customer's, when given), soonest first.
pub async fn list(
    pool: &PgPool,
    account: &AccountId,
    customer_id: &str,
    customers: Option<&[String]>,
) -> sqlx::Result<Vec<Waiting>> {
    let rows = sqlx::query(
        "SELECT w.key, w.message_type, w.customer_id, COALESCE(c.name, '') AS name, COALESCE(c.phone, '') AS phone,
                COALESCE(c.email, '') AS email, w.job_id, w.due_at, w.reason
         FROM feed.waiting w
         LEFT JOIN feed.customers c ON c.account_id = w.account_id AND c.customer_id = w.customer_id
         WHERE w.account_id = $1 AND w.due_at IS NOT NULL AND ($2 = '' OR w.customer_id = $2)
           AND ($4::text[] IS NULL OR w.customer_id = ANY($4))
         ORDER BY w.due_at, w.key LIMIT $3",
    )
    .bind(account.as_str())
    .bind(customer_id)
    .bind(MAX_LISTED)
    .bind(customers)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Waiting {
                key: r.try_get("key")?,
                message_type: r.try_get("message_type")?,
                customer_id: r.try_get("customer_id")?,
                name: r.try_get("name")?,
                phone: r.try_get("phone")?,
                email: r.try_get("email")?,
                job_id: r.try_get("job_id")?,
                due_at: r.try_get("due_at")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
}

/// Forgets items that stopped waiting more than a day ago.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM feed.waiting WHERE due_at IS NULL AND as_of < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
