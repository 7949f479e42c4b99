//! Read-model queries, every one scoped by the verified account and keyset-paginated on
//! (created_at, message_id) so pages stay stable while new messages arrive.
//!
//! A filter naming several statuses (or types) becomes one index-ordered branch per value, merged
//! by a `UNION ALL` that Postgres reads as a merge: no page ever sorts all matching rows. A search
//! is resolved to the account's matching customers first ([`crate::matches`]), then their messages
//! are read by thread or by walking the feed, whichever reads fewer rows; a phone search also
//! looks at messages from senders no customer owns.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use messaging_domain::AccountId;
use messaging_domain::search::Term;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::matches::{self, AccountSizes, Matches};

/// A position in a listing.
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
    pub search: Option<Term>,
    pub thread: Option<ThreadOf>,
    /// Only these customers' messages (a technician's scope); `None`: the whole account.
    pub scope: Option<Vec<String>>,
}

impl Filter {
    /// Whether it narrows nothing but (perhaps) to a scope.
    pub fn is_plain(&self) -> bool {
        let Filter { directions, channels, types, statuses, since, until, search, thread, scope: _ } = self;
        [directions, channels, types, statuses].iter().all(|v| v.is_empty())
            && since.is_none()
            && until.is_none()
            && search.is_none()
            && thread.is_none()
    }
}

/// Whose thread: a customer's, or that of a sender no customer owns, by number or address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadOf {
    Customer(String),
    Sender(String),
}

impl ThreadOf {
    /// A customer id (never has `+` or `@`), or else a sender's E.164 number or email address.
    pub fn parse(id: &str) -> Self {
        if id.starts_with('+') || id.contains('@') {
            Self::Sender(id.to_owned())
        } else {
            Self::Customer(id.to_owned())
        }
    }
}

/// Which end of the listing comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Self::NewestFirst => " ORDER BY created_at DESC, message_id DESC",
            Self::OldestFirst => " ORDER BY created_at, message_id",
        }
    }

    fn after(self) -> &'static str {
        match self {
            Self::NewestFirst => " AND (created_at, message_id) < (",
            Self::OldestFirst => " AND (created_at, message_id) > (",
        }
    }
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
    pub unread: bool,
    pub sender_unverified: bool,
    pub provider_error_code: String,
    pub provider_error_text: String,
    /// The whole text, once [`bodies`] or [`get`] filled it; empty in a listed page.
    pub body: String,
    /// The account's template version it was worded by and why one could not word it ([`get`] only).
    pub template_version: Option<i32>,
    pub template_fallback: Option<String>,
    /// The failed message this one resends, and this failed one's latest resend ([`bodies`] and [`get`]).
    pub resent_from: String,
    pub resent_as: String,
    /// One of an SMS→email fallback's two messages ([`bodies`] and [`get`]).
    pub fallback: bool,
}

/// Characters of a message's text the feed lists.
pub const PREVIEW_CHARS: usize = 160;

/// The start of a text the feed lists.
pub fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// What `feed.messages.body` keeps: the whole text when the preview is not all of it, else
/// nothing (the preview is the whole text).
pub fn beyond_preview(text: &str) -> &str {
    if text.chars().nth(PREVIEW_CHARS).is_some() { text } else { "" }
}

/// The columns [`read`] expects, unqualified.
pub const COLUMNS: &str =
    "message_id, customer_id, customer_name, customer_phone, customer_email, direction, channel, message_type,
    status, failure_reason, preview, subject, job_id, created_at, sent_at, updated_at,
    delivery_unknown AND status IN ('sent', 'unknown') AS delivery_unknown, unread, sender_unverified,
    provider_error_code, provider_error_text";

pub fn read(row: &PgRow) -> sqlx::Result<FeedRow> {
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
        unread: row.try_get("unread")?,
        sender_unverified: row.try_get("sender_unverified")?,
        provider_error_code: row.try_get("provider_error_code")?,
        provider_error_text: row.try_get("provider_error_text")?,
        body: String::new(),
        template_version: None,
        template_fallback: None,
        resent_from: String::new(),
        resent_as: String::new(),
        fallback: false,
    })
}

/// A message's whole text from its preview and what `feed.messages.body` kept ([`beyond_preview`]).
fn whole_text(preview: &str, stored: String) -> String {
    if stored.is_empty() { preview.to_owned() } else { stored }
}

/// Fills each row's whole text and its resend links: one lookup for the page, by the rows' ids.
pub async fn bodies(conn: &mut PgConnection, account: &AccountId, rows: &mut [FeedRow]) -> sqlx::Result<()> {
    let ids: Vec<&str> = rows.iter().map(|r| r.message_id.as_str()).collect();
    type Links = (String, Option<String>, Option<String>, bool);
    let extra: std::collections::HashMap<String, Links> =
        sqlx::query_as::<_, (String, String, Option<String>, Option<String>, bool)>(
            "SELECT message_id, body, resent_from, resent_as, fallback FROM feed.messages
             WHERE account_id = $1 AND message_id = ANY($2)
               AND (body <> '' OR resent_from IS NOT NULL OR resent_as IS NOT NULL)",
        )
        .bind(account.as_str())
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, body, from, resent_as, fallback)| (id, (body, from, resent_as, fallback)))
        .collect();
    for row in rows {
        let (body, from, resent_as, fallback) = extra.get(&row.message_id).cloned().unwrap_or_default();
        row.body = whole_text(&row.preview, body);
        row.resent_from = from.unwrap_or_default();
        row.resent_as = resent_as.unwrap_or_default();
        row.fallback = fallback;
    }
    Ok(())
}

/// One predicate a branch adds beside the shared filters.
#[derive(Clone)]
enum Narrow<'a> {
    Column(&'static str, &'a str),
    Customers(&'a Matches),
    Strangers(String),
}

/// The branches of a listing: one per value of the multi-valued filter with an index, crossed
/// with the search's sources (the matched customers; for a phone search, unknown senders too).
/// No branch at all: nothing can match.
fn branches<'a>(filter: &'a Filter, matches: Option<&'a Matches>) -> Vec<Vec<Narrow<'a>>> {
    let split = || -> Vec<Option<Narrow<'a>>> {
        if filter.statuses.len() > 1 {
            filter.statuses.iter().map(|s| Some(Narrow::Column("status", s))).collect()
        } else if filter.types.len() > 1 {
            filter.types.iter().map(|t| Some(Narrow::Column("message_type", t))).collect()
        } else {
            vec![None]
        }
    };
    let mut sources: Vec<Option<Narrow<'a>>> = Vec::new();
    match matches {
        None => sources.push(None),
        Some(m) => {
            if m.customer_ids.as_ref().is_none_or(|ids| !ids.is_empty()) {
                sources.push(Some(Narrow::Customers(m)));
            }
            if let Term::Phone(digits) = &m.term {
                sources.push(Some(Narrow::Strangers(matches::like(digits))));
            }
        }
    }
    let mut all = Vec::new();
    for source in sources {
        for value in split() {
            all.push([value, source.clone()].into_iter().flatten().collect());
        }
    }
    all
}

impl Narrow<'_> {
    fn push(&self, query: &mut QueryBuilder<Postgres>, account: &AccountId) {
        match self {
            Narrow::Column(column, value) => {
                query.push(format!(" AND {column} = ")).push_bind(value.to_string());
            }
            Narrow::Customers(m) => {
                // Walking, an expression over customer_id keeps Postgres off the thread index: it
                // reads the feed in order and checks each row against the (hashed) set.
                let column = if m.walk { "(customer_id || '')" } else { "customer_id" };
                query.push(format!(" AND {column} = ANY("));
                match &m.customer_ids {
                    Some(ids) => {
                        query.push_bind(ids.clone());
                    }
                    None => {
                        let (searched, text) = matches::column(&m.term);
                        query
                            .push("ARRAY(SELECT customer_id FROM feed.customers WHERE account_id = ")
                            .push_bind(account.as_str().to_owned())
                            .push(format!(" AND {searched} LIKE "))
                            .push_bind(matches::like(text))
                            .push(")");
                    }
                }
                query.push(")");
            }
            Narrow::Strangers(pattern) => {
                query
                    .push(" AND customer_id = '' AND regexp_replace(customer_phone, '[^0-9]', '', 'g') LIKE ")
                    .push_bind(pattern.clone());
            }
        }
    }
}

/// The shared predicates of every branch.
fn push_common(
    query: &mut QueryBuilder<Postgres>,
    account: &AccountId,
    filter: &Filter,
    after: Option<&Cursor>,
    order: Order,
) {
    query.push(" FROM feed.messages WHERE account_id = ").push_bind(account.as_str().to_owned());
    query.push(" AND direction IS NOT NULL");
    let mut any = |column: &str, values: &[String], split: bool| {
        if split {
            return;
        }
        match values {
            [] => {}
            [one] => {
                query.push(format!(" AND {column} = ")).push_bind(one.clone());
            }
            many => {
                query.push(format!(" AND {column} = ANY(")).push_bind(many.to_vec()).push(")");
            }
        }
    };
    let split_statuses = filter.statuses.len() > 1;
    any("direction", &filter.directions, false);
    any("channel", &filter.channels, false);
    any("status", &filter.statuses, split_statuses);
    any("message_type", &filter.types, !split_statuses && filter.types.len() > 1);
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND created_at < ").push_bind(until);
    }
    match &filter.thread {
        Some(ThreadOf::Customer(customer)) => {
            query.push(" AND customer_id = ").push_bind(customer.clone());
        }
        Some(ThreadOf::Sender(address)) => {
            query
                .push(" AND customer_id = '' AND (customer_phone = ")
                .push_bind(address.clone())
                .push(" OR lower(customer_email) = lower(")
                .push_bind(address.clone())
                .push("))");
        }
        None => {}
    }
    if let Some(customers) = &filter.scope {
        query.push(" AND customer_id = ANY(").push_bind(customers.clone()).push(")");
    }
    if let Some(cursor) = after {
        query
            .push(order.after())
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.message_id.clone())
            .push(")");
    }
}

/// The SQL of one page after `prefix` (empty, or an `EXPLAIN …` to see its plan); `None` when
/// nothing can match. `matches` is the filter's search, resolved.
pub fn page_query(
    prefix: &str,
    account: &AccountId,
    filter: &Filter,
    matches: Option<&Matches>,
    after: Option<&Cursor>,
    limit: i64,
    order: Order,
) -> Option<QueryBuilder<Postgres>> {
    let branches = branches(filter, matches);
    if branches.is_empty() {
        return None;
    }
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(prefix);
    let merged = branches.len() > 1;
    if merged {
        query.push(format!("SELECT {COLUMNS} FROM ("));
    }
    for (i, narrow) in branches.iter().enumerate() {
        if i > 0 {
            query.push(" UNION ALL ");
        }
        query.push(format!("(SELECT {COLUMNS}"));
        push_common(&mut query, account, filter, after, order);
        for n in narrow {
            n.push(&mut query, account);
        }
        query.push(order.sql()).push(" LIMIT ").push_bind(limit + 1).push(")");
    }
    if merged {
        query.push(") AS page").push(order.sql()).push(" LIMIT ").push_bind(limit + 1);
    }
    Some(query)
}

/// One page, plus the cursor of the next page if there is one.
pub async fn list(
    conn: &mut PgConnection,
    sizes: &AccountSizes,
    account: &AccountId,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
    order: Order,
) -> sqlx::Result<(Vec<FeedRow>, Option<Cursor>)> {
    let mut page = match crate::scoped::page(conn, account, filter, after, limit, order).await? {
        Some(page) => page,
        None => {
            let matches = match &filter.search {
                Some(term) => Some(matches::resolve(conn, sizes, account, term, limit).await?),
                None => None,
            };
            let Some(mut query) = page_query("", account, filter, matches.as_ref(), after, limit, order) else {
                return Ok((Vec::new(), None));
            };
            let rows = query.build().fetch_all(&mut *conn).await?;
            rows.iter().map(read).collect::<sqlx::Result<Vec<FeedRow>>>()?
        }
    };
    let next = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last().map(|r| Cursor { created_at: r.created_at, message_id: r.message_id.clone() })
    } else {
        None
    };
    Ok((page, next))
}

/// One message of the account with its whole text, if it exists.
pub async fn get<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: &AccountId,
    message_id: &str,
) -> sqlx::Result<Option<FeedRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, body, template_version, template_fallback, resent_from, resent_as, fallback FROM feed.messages
         WHERE account_id = $1 AND message_id = $2 AND direction IS NOT NULL"
    )))
    .bind(account.as_str())
    .bind(message_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref()
        .map(|row| {
            let mut read = read(row)?;
            read.body = whole_text(&read.preview, row.try_get("body")?);
            read.template_version = row.try_get("template_version")?;
            read.template_fallback = row.try_get("template_fallback")?;
            read.resent_from = row.try_get::<Option<String>, _>("resent_from")?.unwrap_or_default();
            read.resent_as = row.try_get::<Option<String>, _>("resent_as")?.unwrap_or_default();
            read.fallback = row.try_get("fallback")?;
            Ok(read)
        })
        .transpose()
}

/// A message's timeline: (status, source, detail, at), oldest first.
pub async fn timeline<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: &AccountId,
    message_id: &str,
) -> sqlx::Result<Vec<(String, String, String, DateTime<Utc>)>> {
    let rows = sqlx::query(
        "SELECT status, source, detail, occurred_at FROM feed.timeline WHERE account_id = $1 AND message_id = $2 ORDER BY occurred_at, id",
    )
    .bind(account.as_str())
    .bind(message_id)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("source")?, r.try_get("detail")?, r.try_get("occurred_at")?)))
        .collect()
}
