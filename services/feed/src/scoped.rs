//! A technician's unfiltered page, read with the least work: the newest keys of each of their
//! customers' threads from the thread index alone (an index-only scan per customer, at most a
//! page each), the page's keys merged from those, and only the page's rows fetched. The general
//! query would fetch every message of every customer in the scope from the table and sort them.
//! Rows the projector made from a status that came before its `queued` event (no direction yet)
//! are not listed; when one is among the newest keys the general query answers instead.

use messaging_domain::AccountId;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::store::{COLUMNS, Cursor, FeedRow, Filter, Order, read};

/// The page when `filter` is a scope and nothing else, newest first; `None`: use the general query.
pub async fn page(
    conn: &mut PgConnection,
    account: &AccountId,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
    order: Order,
) -> sqlx::Result<Option<Vec<FeedRow>>> {
    let Some(customers) = &filter.scope else { return Ok(None) };
    if order != Order::NewestFirst || !filter.is_plain() {
        return Ok(None);
    }
    let wanted = limit + 1;
    let (at, id) = after.map(|c| (Some(c.created_at), Some(c.message_id.clone()))).unwrap_or_default();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT t.message_id FROM UNNEST($2::text[]) AS c(customer_id)
         CROSS JOIN LATERAL (
             SELECT m.created_at, m.message_id FROM feed.messages m
             WHERE m.account_id = $1 AND m.customer_id = c.customer_id
               AND ($4::timestamptz IS NULL OR (m.created_at, m.message_id) < ($4, $5))
             ORDER BY m.created_at DESC, m.message_id DESC LIMIT $3) t
         ORDER BY t.created_at DESC, t.message_id DESC LIMIT $3",
    )
    .bind(account.as_str())
    .bind(customers)
    .bind(wanted)
    .bind(at)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM feed.messages WHERE account_id = $1 AND message_id = ANY($2) AND direction IS NOT NULL
         ORDER BY created_at DESC, message_id DESC"
    )))
    .bind(account.as_str())
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    if keys.len() as i64 == wanted && rows.len() < keys.len() {
        return Ok(None);
    }
    Ok(Some(rows.iter().map(read).collect::<sqlx::Result<_>>()?))
}
