//! Between the API's types and the read model's: request fields checked into store filters with
//! INVALID_ARGUMENT for anything malformed, rows into `messaging.v1.Message`, and store errors into
//! a status that names no internals.

use chrono::{DateTime, Utc};
use messaging_domain::search::{self, Term};
use messaging_domain::{Channel, Direction, MessageType, Status as MessageStatus};
use messaging_proto::time::timestamp;
use messaging_proto::v1 as api;
use tonic::Status;

use crate::store::{Cursor, FeedRow};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// A failed query: logged here, UNAVAILABLE (retryable) for the caller. A cancelled statement
/// (the statement timeout) is DEADLINE_EXCEEDED.
pub fn internal(error: sqlx::Error) -> Status {
    if let sqlx::Error::Database(db) = &error
        && db.code().as_deref() == Some("57014")
    {
        tracing::warn!(%error, "feed query cancelled by the statement timeout");
        return Status::deadline_exceeded("the query took too long; narrow the search or the filters");
    }
    tracing::error!(%error, "feed query failed");
    Status::unavailable("the feed is temporarily unavailable; retry")
}

pub fn page_size(requested: i32) -> Result<i64, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE),
        n if n < 0 => Err(Status::invalid_argument("page_size must not be negative")),
        n => Ok(i64::from(n).min(MAX_PAGE)),
    }
}

pub fn cursor(token: &str) -> Result<Option<Cursor>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    Cursor::decode(token).map(Some).ok_or_else(|| Status::invalid_argument("page_token is not one this service issued"))
}

pub fn from_timestamp(field: &str, at: Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    at.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
            .ok_or_else(|| Status::invalid_argument(format!("{field} is out of range")))
    })
    .transpose()
}

/// A time range; either end may be open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `since` and `until` checked together.
pub fn range(since: Option<prost_types::Timestamp>, until: Option<prost_types::Timestamp>) -> Result<Range, Status> {
    let (since, until) = (from_timestamp("since", since)?, from_timestamp("until", until)?);
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(Status::invalid_argument("since is after until"));
    }
    Ok((since, until))
}

/// Enum values as the read model's names; UNSPECIFIED or unknown values are refused.
pub fn names<T: Copy>(
    values: &[i32],
    field: &str,
    parse: impl Fn(i32) -> Option<T>,
    name: impl Fn(T) -> &'static str,
) -> Result<Vec<String>, Status> {
    let mut names: Vec<String> = values
        .iter()
        .map(|v| {
            parse(*v)
                .map(|t| name(t).to_owned())
                .ok_or_else(|| Status::invalid_argument(format!("{field} has an unknown value {v}")))
        })
        .collect::<Result<_, _>>()?;
    names.sort();
    names.dedup();
    Ok(names)
}

pub fn term(query: &str) -> Result<Option<Term>, Status> {
    search::parse(query).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub fn customer(row: &FeedRow) -> api::Customer {
    api::Customer {
        customer_id: row.customer_id.clone(),
        name: row.customer_name.clone(),
        phone: row.customer_phone.clone(),
        email: row.customer_email.clone(),
    }
}

pub fn status(name: &str) -> i32 {
    MessageStatus::parse(name).map(MessageStatus::to_proto).unwrap_or(0)
}

pub fn message(row: &FeedRow) -> api::Message {
    api::Message {
        message_id: row.message_id.clone(),
        direction: Direction::parse(&row.direction).map(Direction::to_proto).unwrap_or(0),
        channel: Channel::parse(&row.channel).map(Channel::to_proto).unwrap_or(0),
        r#type: MessageType::parse(&row.message_type).map(MessageType::to_proto).unwrap_or(0),
        status: status(&row.status),
        customer: Some(customer(row)),
        preview: row.preview.clone(),
        failure_reason: row.failure_reason.clone(),
        created_at: Some(timestamp(row.created_at)),
        sent_at: row.sent_at.map(timestamp),
        updated_at: Some(timestamp(row.updated_at)),
        subject: row.subject.clone(),
        job_id: row.job_id.clone(),
        delivery_unknown: row.delivery_unknown,
        unread: row.unread,
        sender_unverified: row.sender_unverified,
        body: row.body.clone(),
        resent_from: row.resent_from.clone(),
        resent_as: row.resent_as.clone(),
        fallback: row.fallback,
    }
}

/// One channel's reachability from SendMessage's refusal ("reason: words"), if any.
pub fn reach(channel: messaging_domain::Channel, refusal: Option<String>) -> api::ChannelReach {
    let (reason, detail) = match refusal.as_deref().map(|r| r.split_once(": ").unwrap_or((r, r))) {
        Some((reason, detail)) => (reason.to_owned(), detail.to_owned()),
        None => (String::new(), String::new()),
    };
    api::ChannelReach { channel: channel.to_proto(), reachable: refusal.is_none(), reason, detail }
}

/// A customer as the directory lists them, for the API.
pub fn listed(c: crate::threads::CustomerRow) -> api::Customer {
    api::Customer { customer_id: c.customer_id, name: c.name, phone: c.phone, email: c.email }
}
