//! `messaging.v1.FeedService` over the read model. Every call is scoped by the account of its
//! verified token; ids of another account's rows are simply not found. Errors become
//! `tonic::Status` here and only here, with a clear message and never internals.

use std::sync::Arc;
use std::time::Duration;

use messaging_domain::{AccountId, Channel, Direction, MessageType, Status as MessageStatus};
use messaging_platform::Shutdown;
use messaging_platform::bus::Relay;
use messaging_proto::time::timestamp;
use messaging_proto::v1::feed_service_server::FeedService;
use messaging_proto::v1::{self as api};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use crate::attach::{self, AttachError};
use crate::auth::{account_of, technician_of};
use crate::changes::{self, WatchCursor};
use crate::convert::{self, internal};
use crate::limits::Streams;
use crate::matches::AccountSizes;
use crate::readers::Readers;
use crate::scope::{self, Scope};
use crate::send::{self, Compose, SendError};
use crate::store::{self, Filter, Order, ThreadOf};
use crate::threads;
use crate::watch::Watcher;

/// The gRPC service.
pub struct Feed {
    pub(crate) pool: PgPool,
    pub(crate) relay: Relay,
    pub(crate) signals: broadcast::Sender<String>,
    pub(crate) shutdown: Shutdown,
    /// How long WatchFeed cursors stay resumable.
    pub(crate) retention: Duration,
    /// Account sizes for choosing how a search reads its matches.
    pub(crate) sizes: AccountSizes,
    /// Connections for the page's reads.
    pub(crate) readers: Readers,
    /// Open WatchFeed streams, by account and connection.
    pub(crate) streams: Arc<Streams>,
    /// How long a technician still sees the customer of a job completed or cancelled.
    pub(crate) recent: Duration,
}

#[tonic::async_trait]
impl FeedService for Feed {
    async fn list_messages(
        &self,
        request: Request<api::ListMessagesRequest>,
    ) -> Result<Response<api::ListMessagesResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        let (since, until) = convert::range(r.since, r.until)?;
        let filter = Filter {
            directions: convert::names(&r.directions, "directions", Direction::from_proto, Direction::as_str)?,
            channels: convert::names(&r.channels, "channels", Channel::from_proto, Channel::as_str)?,
            types: convert::names(&r.types, "types", MessageType::from_proto, MessageType::as_str)?,
            statuses: convert::names(&r.statuses, "statuses", MessageStatus::from_proto, MessageStatus::as_str)?,
            since,
            until,
            search: convert::term(&r.query)?,
            thread: None,
            scope: scope.customers(),
        };
        let after = convert::cursor(&r.page_token)?;
        let limit = convert::page_size(r.page_size)?;
        let mut reader = self.readers.get(account.as_str()).await.map_err(internal)?;
        let (rows, next) =
            store::list(reader.conn(), &self.sizes, &account, &filter, after.as_ref(), limit, Order::NewestFirst)
                .await
                .map_err(internal)?;
        reader.done();
        Ok(Response::new(api::ListMessagesResponse {
            messages: rows.iter().map(convert::message).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }

    async fn get_thread(
        &self,
        request: Request<api::GetThreadRequest>,
    ) -> Result<Response<api::GetThreadResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        if r.customer_id.is_empty() {
            return Err(Status::invalid_argument("customer_id is required"));
        }
        let thread = ThreadOf::parse(&r.customer_id);
        if !scope.sees_thread(&thread) {
            let what = if matches!(thread, ThreadOf::Sender(_)) { "thread for" } else { "customer" };
            return Err(Status::not_found(format!("no {what} {}", r.customer_id)));
        }
        let mut reader = self.readers.get(account.as_str()).await.map_err(internal)?;
        let mut reach = Vec::new();
        let customer = match &thread {
            ThreadOf::Customer(id) => match threads::customer(reader.conn(), &account, id).await.map_err(internal)? {
                Some(c) => {
                    reach = send::reach(&self.pool, &account, &c, &[Channel::Sms, Channel::Email])
                        .await
                        .map_err(internal)?;
                    Some(convert::listed(c))
                }
                None => None,
            },
            ThreadOf::Sender(address) => {
                reach = match attach::stranger(&self.pool, &account, address).await.map_err(internal)? {
                    Some(stranger) => {
                        send::reach(&self.pool, &account, &stranger, &[Channel::Sms]).await.map_err(internal)?
                    }
                    None => {
                        vec![(Channel::Sms, Some("unknown_sender: only a number's thread can be texted back".into()))]
                    }
                };
                let why = "unknown_sender: attach this thread to a customer to write by email";
                reach.push((Channel::Email, Some(why.to_owned())));
                let (phone, email) = if address.contains('@') {
                    (String::new(), address.clone())
                } else {
                    (address.clone(), String::new())
                };
                Some(api::Customer { customer_id: String::new(), name: String::new(), phone, email })
            }
        };
        let Some(customer) = customer else {
            reader.done();
            return Err(Status::not_found(format!("no customer {}", r.customer_id)));
        };
        let filter = Filter { thread: Some(thread.clone()), ..Default::default() };
        let order = if r.oldest_first { Order::OldestFirst } else { Order::NewestFirst };
        let after = convert::cursor(&r.page_token)?;
        let limit = convert::page_size(r.page_size)?;
        let (mut rows, next) = store::list(reader.conn(), &self.sizes, &account, &filter, after.as_ref(), limit, order)
            .await
            .map_err(internal)?;
        store::bodies(reader.conn(), &account, &mut rows).await.map_err(internal)?;
        reader.done();
        if rows.is_empty() && after.is_none() && matches!(thread, ThreadOf::Sender(_)) {
            return Err(Status::not_found(format!("no thread for {}", r.customer_id)));
        }
        Ok(Response::new(api::GetThreadResponse {
            customer: Some(customer),
            messages: rows.iter().map(convert::message).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
            reach: reach.into_iter().map(|(channel, refusal)| convert::reach(channel, refusal)).collect(),
        }))
    }

    async fn get_message(
        &self,
        request: Request<api::GetMessageRequest>,
    ) -> Result<Response<api::GetMessageResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let id = request.into_inner().message_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("message_id is required"));
        }
        let mut reader = self.readers.get(account.as_str()).await.map_err(internal)?;
        let found = store::get(reader.conn(), &account, &id).await.map_err(internal)?;
        let Some(row) = found.filter(|row| scope.allows(&row.customer_id)) else {
            reader.done();
            return Err(Status::not_found(format!("no message {id}")));
        };
        let timeline = store::timeline(reader.conn(), &account, &id).await.map_err(internal)?;
        reader.done();
        Ok(Response::new(api::GetMessageResponse {
            message: Some(convert::message(&row)),
            timeline: timeline
                .into_iter()
                .map(|(status, source, detail, at)| api::StatusEvent {
                    status: convert::status(&status),
                    occurred_at: Some(timestamp(at)),
                    source,
                    detail,
                })
                .collect(),
            provider_error_code: row.provider_error_code,
            provider_error_text: row.provider_error_text,
            template_version: row.template_version.map_or(0, |v| v as u32),
            template_fallback: row.template_fallback.unwrap_or_default(),
        }))
    }

    async fn send_message(
        &self,
        request: Request<api::SendMessageRequest>,
    ) -> Result<Response<api::SendMessageResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        let channel = Channel::from_proto(r.channel)
            .ok_or_else(|| Status::invalid_argument("channel must be CHANNEL_SMS or CHANNEL_EMAIL"))?;
        if !scope.allows(&r.customer_id) && !r.customer_id.is_empty() {
            return Err(Status::not_found(SendError::NoCustomer(r.customer_id).to_string()));
        }
        let compose = Compose {
            request_id: r.request_id,
            customer_id: r.customer_id,
            to_sender: false,
            channel,
            text: r.text,
            subject: r.subject,
            resend_of: None,
        };
        let (message_id, status) = self.send(&account, compose).await?;
        Ok(Response::new(api::SendMessageResponse { message_id, status }))
    }

    async fn get_account(
        &self,
        request: Request<api::GetAccountRequest>,
    ) -> Result<Response<api::GetAccountResponse>, Status> {
        let account = account_of(&request)?;
        Ok(Response::new(crate::account::get(&self.pool, &account).await.map_err(internal)?))
    }

    async fn resend_message(
        &self,
        request: Request<api::ResendMessageRequest>,
    ) -> Result<Response<api::ResendMessageResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let compose = crate::resend::compose(&self.pool, &account, &scope, request.into_inner()).await?;
        let (message_id, status) = self.send(&account, compose).await?;
        Ok(Response::new(api::ResendMessageResponse { message_id, status }))
    }

    async fn reply_to_sender(
        &self,
        request: Request<api::ReplyToSenderRequest>,
    ) -> Result<Response<api::ReplyToSenderResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        if !scope.sees_strangers() {
            return Err(Status::not_found(SendError::NoThread(r.sender).to_string()));
        }
        let compose = Compose {
            request_id: r.request_id,
            customer_id: r.sender,
            to_sender: true,
            channel: Channel::Sms,
            text: r.text,
            subject: String::new(),
            resend_of: None,
        };
        let (message_id, status) = self.send(&account, compose).await?;
        Ok(Response::new(api::ReplyToSenderResponse { message_id, status }))
    }

    async fn attach_thread(
        &self,
        request: Request<api::AttachThreadRequest>,
    ) -> Result<Response<api::AttachThreadResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        if !scope.sees_strangers() {
            return Err(Status::not_found(attach::no_thread(&r.sender)));
        }
        match attach::attach(&self.pool, &account, &r.sender, &r.customer_id).await {
            Ok((attached, c)) => Ok(Response::new(api::AttachThreadResponse {
                attached: attached as i64,
                customer: Some(convert::listed(c)),
            })),
            Err(AttachError::Invalid(why)) => Err(Status::invalid_argument(why)),
            Err(AttachError::NotFound(why)) => Err(Status::not_found(why)),
            Err(AttachError::Taken(why)) => Err(Status::failed_precondition(why)),
            Err(AttachError::Database(error)) => Err(internal(error)),
        }
    }

    async fn list_waiting(
        &self,
        request: Request<api::ListWaitingRequest>,
    ) -> Result<Response<api::ListWaitingResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let customer_id = request.into_inner().customer_id;
        let customers = scope.customers();
        let waiting =
            crate::waiting::list(&self.pool, &account, &customer_id, customers.as_deref()).await.map_err(internal)?;
        Ok(Response::new(api::ListWaitingResponse {
            waiting: waiting
                .into_iter()
                .map(|w| api::WaitingMessage {
                    key: w.key,
                    r#type: MessageType::parse(&w.message_type).map(MessageType::to_proto).unwrap_or(0),
                    customer: Some(api::Customer {
                        customer_id: w.customer_id,
                        name: w.name,
                        phone: w.phone,
                        email: w.email,
                    }),
                    job_id: w.job_id,
                    due_at: Some(timestamp(w.due_at)),
                    reason: w.reason,
                })
                .collect(),
        }))
    }

    type WatchFeedStream = tokio_stream::wrappers::ReceiverStream<Result<api::WatchFeedResponse, Status>>;

    async fn watch_feed(
        &self,
        request: Request<api::WatchFeedRequest>,
    ) -> Result<Response<Self::WatchFeedStream>, Status> {
        let account = account_of(&request)?;
        let technician = technician_of(&request);
        let slot = self.streams.open(account.as_str(), request.remote_addr())?;
        let token = request.into_inner().cursor;
        let cursor = if token.is_empty() {
            changes::now(&self.pool).await.map_err(internal)?
        } else {
            let cursor = WatchCursor::decode(&token)
                .ok_or_else(|| Status::invalid_argument("cursor is not one this service issued"))?;
            let oldest = chrono::Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or_default();
            if cursor.at < oldest {
                return Err(Status::failed_precondition("cursor has expired; list the feed again and watch from now"));
            }
            cursor
        };
        let (sender, receiver) = mpsc::channel(64);
        let watcher = Watcher {
            pool: self.pool.clone(),
            account,
            technician: technician.map(|t| (t, self.recent)),
            signals: self.signals.subscribe(),
            shutdown: self.shutdown.clone(),
            _slot: slot,
        };
        tokio::spawn(watcher.run(cursor, sender));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    async fn get_counts(
        &self,
        request: Request<api::GetCountsRequest>,
    ) -> Result<Response<api::GetCountsResponse>, Status> {
        let account = account_of(&request)?;
        let customers = self.scope(&request, &account).await?.customers();
        let r = request.into_inner();
        let (since, until) = convert::range(r.since, r.until)?;
        let (unread_total, threads) =
            threads::unread(&self.pool, &account, customers.as_deref()).await.map_err(internal)?;
        let failed =
            threads::failed(&self.pool, &account, customers.as_deref(), since, until).await.map_err(internal)?;
        Ok(Response::new(api::GetCountsResponse {
            unread_total,
            threads: threads
                .into_iter()
                .map(|(customer_id, sender, unread)| api::ThreadUnread { customer_id, sender, unread })
                .collect(),
            failed,
        }))
    }

    async fn mark_read(
        &self,
        request: Request<api::MarkReadRequest>,
    ) -> Result<Response<api::MarkReadResponse>, Status> {
        let account = account_of(&request)?;
        let scope = self.scope(&request, &account).await?;
        let r = request.into_inner();
        if r.customer_id.is_empty() && r.message_ids.is_empty() {
            return Err(Status::invalid_argument("customer_id or message_ids is required"));
        }
        if r.message_ids.len() > 500 {
            return Err(Status::invalid_argument("at most 500 message_ids at once"));
        }
        let thread = (!r.customer_id.is_empty()).then(|| ThreadOf::parse(&r.customer_id));
        if thread.as_ref().is_some_and(|thread| !scope.sees_thread(thread)) {
            return Ok(Response::new(api::MarkReadResponse { marked: 0 }));
        }
        let customers = scope.customers();
        let marked = threads::mark_read(&self.pool, &account, thread.as_ref(), &r.message_ids, customers.as_deref())
            .await
            .map_err(internal)?;
        Ok(Response::new(api::MarkReadResponse { marked: marked as i64 }))
    }
}

impl Feed {
    /// What the caller may see: the whole account, or a technician's customers as of now.
    async fn scope<T>(&self, request: &Request<T>, account: &AccountId) -> Result<Scope, Status> {
        let Some(technician) = technician_of(request) else { return Ok(Scope::Account) };
        let mut reader = self.readers.get(account.as_str()).await.map_err(internal)?;
        let scope = scope::resolve(reader.conn(), account, Some(&technician), self.recent).await.map_err(internal)?;
        reader.done();
        Ok(scope)
    }

    /// A manual message or a reply to a sender, queued (or found by its request id): (id, status).
    async fn send(&self, account: &AccountId, compose: Compose) -> Result<(String, i32), Status> {
        match send::send(&self.pool, account, compose).await {
            Ok((message_id, status)) => {
                self.relay.wake();
                Ok((message_id, convert::status(&status)))
            }
            Err(SendError::Invalid(why)) => Err(Status::invalid_argument(why)),
            Err(error @ (SendError::NoCustomer(_) | SendError::NoThread(_))) => {
                Err(Status::not_found(error.to_string()))
            }
            Err(SendError::Refused(why)) => Err(Status::failed_precondition(why)),
            Err(error @ SendError::Reused(_)) => Err(Status::already_exists(error.to_string())),
            Err(SendError::Database(error)) => Err(internal(error)),
        }
    }
}
