//! A search resolved before the page query: the account's customers whose folded name or phone
//! digits contain the term (a trigram GIN index over account and term), and the cheaper way to
//! read their messages newest first.
//!
//! With few matching customers, their threads are read through the thread index and the rows
//! sorted (about `k × messages per customer` rows). With many, the feed is walked newest first and
//! each row checked against the set (about `page × customers / k` rows). The choice compares the
//! two from the account's customer count, cached for ten minutes, and the table-wide number of
//! messages per customer. Postgres cannot make this choice itself: it cannot tell how many
//! messages a customer of a given account has (account and customer are correlated).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use messaging_domain::AccountId;
use messaging_domain::search::Term;
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// How long an account's customer count is trusted.
const SIZE_TTL: Duration = Duration::from_secs(600);
/// Matching customers read at most; with more, the feed is walked against the lookup itself.
const MAX_MATCHES: i64 = 20_000;
/// A row read in feed order costs less than one fetched per thread (neighbouring rows share pages).
const WALK_ROW_COST: f64 = 0.3;

/// The account's customers a search matched, and how to read their messages.
#[derive(Debug, Clone)]
pub struct Matches {
    pub term: Term,
    /// Every matching customer, or `None` when there are more than [`MAX_MATCHES`].
    pub customer_ids: Option<Vec<String>>,
    /// Walk the feed in order filtering by the set, rather than read each customer's thread.
    pub walk: bool,
}

/// Customer counts per account, and messages per customer table-wide, cached.
#[derive(Default)]
pub struct AccountSizes {
    customers: Mutex<HashMap<String, (Instant, f64)>>,
    per_customer: Mutex<Option<(Instant, f64)>>,
}

impl AccountSizes {
    async fn customers(&self, conn: &mut PgConnection, account: &AccountId) -> sqlx::Result<f64> {
        if let Some((at, n)) = self.customers.lock().ok().and_then(|m| m.get(account.as_str()).copied())
            && at.elapsed() < SIZE_TTL
        {
            return Ok(n);
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM feed.customers WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *conn)
            .await?;
        if let Ok(mut cache) = self.customers.lock() {
            cache.insert(account.as_str().to_owned(), (Instant::now(), n as f64));
        }
        Ok(n as f64)
    }

    async fn per_customer(&self, conn: &mut PgConnection) -> sqlx::Result<f64> {
        if let Some((at, m)) = self.per_customer.lock().ok().and_then(|c| *c)
            && at.elapsed() < SIZE_TTL
        {
            return Ok(m);
        }
        let m: f64 = sqlx::query_scalar(
            "SELECT (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'feed.messages'::regclass)::float8
                  / greatest((SELECT reltuples FROM pg_class WHERE oid = 'feed.customers'::regclass), 1)::float8",
        )
        .fetch_one(&mut *conn)
        .await?;
        let m = m.max(1.0);
        if let Ok(mut cache) = self.per_customer.lock() {
            *cache = Some((Instant::now(), m));
        }
        Ok(m)
    }
}

/// The customers' column a term searches, and the text to find in it.
pub fn column(term: &Term) -> (&'static str, &str) {
    match term {
        Term::Name(name) => ("search_name", name),
        Term::Phone(digits) => ("phone_digits", digits),
    }
}

/// The customers lookup (after `prefix`, for EXPLAIN).
pub fn query(prefix: &str, account: &AccountId, term: &Term) -> QueryBuilder<Postgres> {
    let (column, text) = column(term);
    let mut query = QueryBuilder::new(format!("{prefix}SELECT customer_id FROM feed.customers WHERE account_id = "));
    query
        .push_bind(account.as_str().to_owned())
        .push(format!(" AND {column} LIKE "))
        .push_bind(like(text))
        .push(" LIMIT ")
        .push_bind(MAX_MATCHES + 1);
    query
}

/// `%text%` with LIKE's wildcards in `text` escaped.
pub fn like(text: &str) -> String {
    format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// Resolves `term` for `account`, choosing how a page of `limit` rows reads the matches.
pub async fn resolve(
    conn: &mut PgConnection,
    sizes: &AccountSizes,
    account: &AccountId,
    term: &Term,
    limit: i64,
) -> sqlx::Result<Matches> {
    let customer_ids: Vec<String> = query("", account, term).build_query_scalar().fetch_all(&mut *conn).await?;
    if customer_ids.len() as i64 > MAX_MATCHES {
        return Ok(Matches { term: term.clone(), customer_ids: None, walk: true });
    }
    let k = customer_ids.len() as f64;
    let walk = if customer_ids.is_empty() {
        false
    } else {
        let n = sizes.customers(conn, account).await?.max(k);
        let m = sizes.per_customer(conn).await?;
        WALK_ROW_COST * (limit + 1) as f64 * n / k < k * m
    };
    Ok(Matches { term: term.clone(), customer_ids: Some(customer_ids), walk })
}
