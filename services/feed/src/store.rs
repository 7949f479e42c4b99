//! Read-model queries: every one scoped by the verified account, newest first, keyset-paginated on
//! (created_at, message_id) so pages stay stable while new messages arrive.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use messaging_domain::AccountId;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

/// A position in a newest-first listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub message_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_at.timestamp_micros(), self.message_id))
    }

    pub fn decode(token: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (micros, id) = raw.split_once('|')?;
        Some(Self { created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?, message_id: id.to_owned() })
    }
}

/// Filters for a listing; empty vectors mean "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub directions: Vec<String>,
    pub channels: Vec<String>,
    pub types: Vec<String>,
    pub statuses: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub name_query: Option<String>,
    pub phone_digits: Option<String>,
    pub customer_id: Option<String>,
}

/// A feed row.
#[derive(Debug, Clone)]
pub struct FeedRow {
    pub message_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub customer_phone: String,
    pub customer_email: String,
    pub direction: String,
    pub channel: String,
    pub message_type: String,
    pub status: String,
    pub failure_reason: String,
    pub preview: String,
    pub subject: String,
    pub job_id: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub delivery_unknown: bool,
}

const COLUMNS: &str =
    "message_id, customer_id, customer_name, customer_phone, customer_email, direction, channel, message_type,
    status, failure_reason, preview, subject, job_id, created_at, sent_at, updated_at,
    delivery_unknown AND status IN ('sent', 'unknown') AS delivery_unknown";

fn read(row: &PgRow) -> sqlx::Result<FeedRow> {
    Ok(FeedRow {
        message_id: row.try_get("message_id")?,
        customer_id: row.try_get("customer_id")?,
        customer_name: row.try_get("customer_name")?,
        customer_phone: row.try_get("customer_phone")?,
        customer_email: row.try_get("customer_email")?,
        direction: row.try_get::<Option<String>, _>("direction")?.unwrap_or_default(),
        channel: row.try_get::<Option<String>, _>("channel")?.unwrap_or_default(),
        message_type: row.try_get::<Option<String>, _>("message_type")?.unwrap_or_default(),
        status: row.try_get("status")?,
        failure_reason: row.try_get("failure_reason")?,
        preview: row.try_get("preview")?,
        subject: row.try_get("subject")?,
        job_id: row.try_get("job_id")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        updated_at: row.try_get("updated_at")?,
        delivery_unknown: row.try_get("delivery_unknown")?,
    })
}

/// One page, newest first, plus the cursor of the next page if there is one.
pub async fn list(
    pool: &PgPool,
    account: &AccountId,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<(Vec<FeedRow>, Option<Cursor>)> {
    let mut query: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM feed.messages WHERE account_id = "));
    query.push_bind(account.as_str()).push(" AND direction IS NOT NULL");
    let any = |query: &mut QueryBuilder<Postgres>, column: &str, values: &[String]| {
        if !values.is_empty() {
            query.push(format!(" AND {column} = ANY(")).push_bind(values.to_vec()).push(")");
        }
    };
    any(&mut query, "direction", &filter.directions);
    any(&mut query, "channel", &filter.channels);
    any(&mut query, "message_type", &filter.types);
    any(&mut query, "status", &filter.statuses);
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND created_at < ").push_bind(until);
    }
    if let Some(customer) = &filter.customer_id {
        query.push(" AND customer_id = ").push_bind(customer.clone());
    }
    match (&filter.name_query, &filter.phone_digits) {
        (Some(name), Some(digits)) => {
            query.push(" AND (customer_name ILIKE ").push_bind(format!("%{}%", escape_like(name)));
            query.push(" OR customer_phone LIKE ").push_bind(format!("%{digits}%")).push(")");
        }
        (Some(name), None) => {
            query.push(" AND customer_name ILIKE ").push_bind(format!("%{}%", escape_like(name)));
        }
        (None, Some(digits)) => {
            query.push(" AND customer_phone LIKE ").push_bind(format!("%{digits}%"));
        }
        (None, None) => {}
    }
    if let Some(cursor) = after {
        query
            .push(" AND (created_at, message_id) < (")
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.message_id.clone())
            .push(")");
    }
    query.push(" ORDER BY created_at DESC, message_id DESC LIMIT ").push_bind(limit + 1);
    let rows = query.build().fetch_all(pool).await?;
    let mut page: Vec<FeedRow> = rows.iter().map(read).collect::<sqlx::Result<_>>()?;
    let next = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last().map(|r| Cursor { created_at: r.created_at, message_id: r.message_id.clone() })
    } else {
        None
    };
    Ok((page, next))
}

/// One message of the account, if it exists.
pub async fn get(pool: &PgPool, account: &AccountId, message_id: &str) -> sqlx::Result<Option<FeedRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM feed.messages WHERE account_id = $1 AND message_id = $2"
    )))
    .bind(account.as_str())
    .bind(message_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(read).transpose()
}

/// A message's timeline: (status, source, detail, at), oldest first.
pub async fn timeline(
    pool: &PgPool,
    account: &AccountId,
    message_id: &str,
) -> sqlx::Result<Vec<(String, String, String, DateTime<Utc>)>> {
    let rows = sqlx::query(
        "SELECT status, source, detail, occurred_at FROM feed.timeline WHERE account_id = $1 AND message_id = $2 ORDER BY occurred_at, id",
    )
    .bind(account.as_str())
    .bind(message_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("source")?, r.try_get("detail")?, r.try_get("occurred_at")?)))
        .collect()
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
