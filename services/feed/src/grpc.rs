//! `messaging.v1.FeedService` over the read model. Errors become `tonic::Status` here and only
//! here, with a clear message and never internals.

use chrono::{DateTime, Utc};
use messaging_domain::{Channel, Direction, MessageType, Status as MessageStatus};
use messaging_proto::time::timestamp;
use messaging_proto::v1::feed_service_server::FeedService;
use messaging_proto::v1::{self as api};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::auth::account_of;
use crate::store::{self, Cursor, FeedRow, Filter};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// The gRPC service.
pub struct Feed {
    pub(crate) pool: PgPool,
}

fn internal(error: sqlx::Error) -> Status {
    tracing::error!(%error, "feed query failed");
    Status::unavailable("the feed is temporarily unavailable; retry")
}

fn page_size(requested: i32) -> Result<i64, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE),
        n if n < 0 => Err(Status::invalid_argument("page_size must not be negative")),
        n => Ok(i64::from(n).min(MAX_PAGE)),
    }
}

fn cursor(token: &str) -> Result<Option<Cursor>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    Cursor::decode(token).map(Some).ok_or_else(|| Status::invalid_argument("page_token is not one this service issued"))
}

fn from_timestamp(field: &str, at: Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    at.map(|t| {
        DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
            .ok_or_else(|| Status::invalid_argument(format!("{field} is out of range")))
    })
    .transpose()
}

fn names<T: Copy>(
    values: &[i32],
    field: &str,
    parse: impl Fn(i32) -> Option<T>,
    name: impl Fn(T) -> &'static str,
) -> Result<Vec<String>, Status> {
    values
        .iter()
        .map(|v| {
            parse(*v)
                .map(|t| name(t).to_owned())
                .ok_or_else(|| Status::invalid_argument(format!("{field} has an unknown value {v}")))
        })
        .collect()
}

/// A search term is a phone number when it is mostly digits.
fn search(query: &str) -> Result<(Option<String>, Option<String>), Status> {
    let query = query.trim();
    if query.is_empty() {
        return Ok((None, None));
    }
    if query.chars().count() > 100 {
        return Err(Status::invalid_argument("query is longer than 100 characters"));
    }
    let digits: String = query.chars().filter(|c| c.is_ascii_digit()).collect();
    let phone_like = query.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if phone_like {
        if digits.len() < 4 {
            return Err(Status::invalid_argument("a phone search needs at least 4 digits"));
        }
        return Ok((None, Some(digits)));
    }
    if query.chars().count() < 2 {
        return Err(Status::invalid_argument("a name search needs at least 2 characters"));
    }
    Ok((Some(query.to_owned()), None))
}

pub(crate) fn to_api(row: &FeedRow) -> api::Message {
    api::Message {
        message_id: row.message_id.clone(),
        direction: Direction::parse(&row.direction).map(Direction::to_proto).unwrap_or(0),
        channel: Channel::parse(&row.channel).map(Channel::to_proto).unwrap_or(0),
        r#type: MessageType::parse(&row.message_type).map(MessageType::to_proto).unwrap_or(0),
        status: MessageStatus::parse(&row.status).map(MessageStatus::to_proto).unwrap_or(0),
        customer: Some(api::Customer {
            customer_id: row.customer_id.clone(),
            name: row.customer_name.clone(),
            phone: row.customer_phone.clone(),
            email: row.customer_email.clone(),
        }),
        preview: row.preview.clone(),
        failure_reason: row.failure_reason.clone(),
        created_at: Some(timestamp(row.created_at)),
        sent_at: row.sent_at.map(timestamp),
        updated_at: Some(timestamp(row.updated_at)),
        subject: row.subject.clone(),
        job_id: row.job_id.clone(),
        delivery_unknown: row.delivery_unknown,
    }
}

#[tonic::async_trait]
impl FeedService for Feed {
    async fn list_messages(
        &self,
        request: Request<api::ListMessagesRequest>,
    ) -> Result<Response<api::ListMessagesResponse>, Status> {
        let account = account_of(&request)?;
        let r = request.into_inner();
        let (name_query, phone_digits) = search(&r.query)?;
        let filter = Filter {
            directions: names(&r.directions, "directions", Direction::from_proto, Direction::as_str)?,
            channels: names(&r.channels, "channels", Channel::from_proto, Channel::as_str)?,
            types: names(&r.types, "types", MessageType::from_proto, MessageType::as_str)?,
            statuses: names(&r.statuses, "statuses", MessageStatus::from_proto, MessageStatus::as_str)?,
            since: from_timestamp("since", r.since)?,
            until: from_timestamp("until", r.until)?,
            name_query,
            phone_digits,
            customer_id: None,
        };
        let after = cursor(&r.page_token)?;
        let (rows, next) = store::list(&self.pool, &account, &filter, after.as_ref(), page_size(r.page_size)?)
            .await
            .map_err(internal)?;
        Ok(Response::new(api::ListMessagesResponse {
            messages: rows.iter().map(to_api).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }

    async fn get_thread(
        &self,
        request: Request<api::GetThreadRequest>,
    ) -> Result<Response<api::GetThreadResponse>, Status> {
        let account = account_of(&request)?;
        let r = request.into_inner();
        if r.customer_id.is_empty() {
            return Err(Status::invalid_argument("customer_id is required"));
        }
        if r.oldest_first {
            return Err(Status::unimplemented("oldest_first is not supported yet"));
        }
        let filter = Filter { customer_id: Some(r.customer_id.clone()), ..Default::default() };
        let after = cursor(&r.page_token)?;
        let (rows, next) = store::list(&self.pool, &account, &filter, after.as_ref(), page_size(r.page_size)?)
            .await
            .map_err(internal)?;
        let Some(first) = rows.first() else {
            return Err(Status::not_found(format!("no thread for customer {}", r.customer_id)));
        };
        let customer = api::Customer {
            customer_id: first.customer_id.clone(),
            name: first.customer_name.clone(),
            phone: first.customer_phone.clone(),
            email: first.customer_email.clone(),
        };
        Ok(Response::new(api::GetThreadResponse {
            customer: Some(customer),
            messages: rows.iter().map(to_api).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }

    async fn get_message(
        &self,
        request: Request<api::GetMessageRequest>,
    ) -> Result<Response<api::GetMessageResponse>, Status> {
        let account = account_of(&request)?;
        let id = request.into_inner().message_id;
        let row = store::get(&self.pool, &account, &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no message {id}")))?;
        let timeline = store::timeline(&self.pool, &account, &id).await.map_err(internal)?;
        Ok(Response::new(api::GetMessageResponse {
            message: Some(to_api(&row)),
            timeline: timeline
                .into_iter()
                .map(|(status, source, detail, at)| api::StatusEvent {
                    status: MessageStatus::parse(&status).map(MessageStatus::to_proto).unwrap_or(0),
                    occurred_at: Some(timestamp(at)),
                    source,
                    detail,
                })
                .collect(),
            provider_error_code: String::new(),
            provider_error_text: String::new(),
        }))
    }

    async fn send_message(
        &self,
        request: Request<api::SendMessageRequest>,
    ) -> Result<Response<api::SendMessageResponse>, Status> {
        account_of(&request)?;
        Err(Status::unimplemented("SendMessage is not available yet"))
    }

    type WatchFeedStream = tokio_stream::wrappers::ReceiverStream<Result<api::WatchFeedResponse, Status>>;

    async fn watch_feed(
        &self,
        request: Request<api::WatchFeedRequest>,
    ) -> Result<Response<Self::WatchFeedStream>, Status> {
        account_of(&request)?;
        Err(Status::unimplemented("WatchFeed is not available yet"))
    }
}
