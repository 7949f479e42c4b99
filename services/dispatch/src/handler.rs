//! Handles one notification request: channels, rendering, one message per (request, channel).

use messaging_domain::{Channel, Direction, MessageId, MessageType};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_platform::bus::{Delivery, Handler, Outcome, Relay};
use messaging_proto::bus::{MessageQueued, NotificationRequest, SendCommand};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};

use crate::render::{self, RenderError};

/// Why a request was not dispatched.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The notification-request handler.
pub struct Dispatcher {
    pool: PgPool,
    relay: Relay,
    on_my_way_validity_secs: u32,
}

impl Handler for Dispatcher {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let request = match NotificationRequest::decode(delivery.payload.as_ref()) {
            Ok(request) => request,
            Err(error) => return Outcome::DeadLetter(format!("undecodable notification request: {error}")),
        };
        let Some(kind) = MessageType::from_proto(request.r#type) else {
            return Outcome::DeadLetter(format!("unknown message type {}", request.r#type));
        };
        let account_id = request.account.as_ref().map(|a| a.account_id.as_str()).unwrap_or("");
        if delivery.subject != format!("notify.{account_id}") {
            return Outcome::DeadLetter(format!("subject {} does not match account {account_id:?}", delivery.subject));
        }
        match self.dispatch(&request, kind).await {
            Ok(created) => {
                tracing::info!(account_id, request_id = %request.request_id, created, "notification dispatched");
                Outcome::Ack
            }
            Err(DispatchError::Render(error)) => Outcome::DeadLetter(error.to_string()),
            Err(error) => Outcome::retry(error),
        }
    }
}

impl Dispatcher {
    pub fn new(pool: PgPool, relay: Relay, on_my_way_validity_secs: u32) -> Self {
        Self { pool, relay, on_my_way_validity_secs }
    }

    /// Creates the request's messages; returns how many were new.
    pub async fn dispatch(&self, request: &NotificationRequest, kind: MessageType) -> Result<usize, DispatchError> {
        let channels = eligible_channels(request);
        if channels.is_empty() {
            let job_id = request.job.as_ref().map(|j| j.job_id.as_str()).unwrap_or("");
            tracing::warn!(request_id = %request.request_id, job_id, kind = %kind, "customer has no usable channel; nothing sent");
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut created = 0;
        for channel in channels {
            if self.create_message(&mut tx, request, kind, channel).await? {
                created += 1;
            }
        }
        tx.commit().await?;
        if created > 0 {
            self.relay.wake();
        }
        Ok(created)
    }

    async fn create_message(
        &self,
        tx: &mut PgConnection,
        request: &NotificationRequest,
        kind: MessageType,
        channel: Channel,
    ) -> Result<bool, DispatchError> {
        let account = request.account.clone().unwrap_or_default();
        let customer = request.customer.clone().unwrap_or_default();
        let (recipient, sender, subject, body, html) = match channel {
            Channel::Sms => (
                customer.phone.clone(),
                account.sms_number.clone(),
                String::new(),
                render::sms(request, kind)?,
                String::new(),
            ),
            Channel::Email => {
                let rendered = render::email(request, kind)?;
                (customer.email.clone(), account.email_from.clone(), rendered.subject, rendered.text, rendered.html)
            }
        };
        let message_id = MessageId::from_u128(uuid::Uuid::now_v7().as_u128());
        let idempotency_key = format!("{}:{}", request.request_id, channel.as_str());
        let inserted = sqlx::query(
            "INSERT INTO dispatch.messages (message_id, account_id, idempotency_key, customer_id, channel, message_type,
                 recipient, sender, subject, body, html_body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(message_id.as_str())
        .bind(&account.account_id)
        .bind(&idempotency_key)
        .bind(&customer.customer_id)
        .bind(channel.as_str())
        .bind(kind.as_str())
        .bind(&recipient)
        .bind(&sender)
        .bind(&subject)
        .bind(&body)
        .bind(&html)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        let command = SendCommand {
            message_id: message_id.to_string(),
            account_id: account.account_id.clone(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            to: recipient,
            from: sender,
            body: body.clone(),
            subject: subject.clone(),
            html_body: html,
            from_name: account.name.clone(),
            validity_seconds: if kind == MessageType::OnMyWay { self.on_my_way_validity_secs } else { 0 },
        };
        let queued = MessageQueued {
            message_id: message_id.to_string(),
            account_id: account.account_id.clone(),
            direction: Direction::Outbound.to_proto(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            customer: Some(customer),
            job_id: request.job.as_ref().map(|j| j.job_id.clone()).unwrap_or_default(),
            preview: body.chars().take(160).collect(),
            subject,
            queued_at: Some(messaging_proto::time::now()),
        };
        let send = OutboxMessage {
            id: format!("send:{message_id}"),
            subject: format!("send.{}.{}", channel.as_str(), account.account_id),
            payload: command.encode_to_vec(),
        };
        let event = OutboxMessage {
            id: format!("queued:{message_id}"),
            subject: format!("message.{}.queued", account.account_id),
            payload: queued.encode_to_vec(),
        };
        outbox::enqueue(tx, crate::SCHEMA, &event).await?;
        outbox::enqueue(tx, crate::SCHEMA, &send).await?;
        Ok(true)
    }
}

/// Every channel the customer has, allows, and the request permits, and the account can send from.
fn eligible_channels(request: &NotificationRequest) -> Vec<Channel> {
    let (Some(account), Some(customer)) = (&request.account, &request.customer) else { return Vec::new() };
    let permitted = |channel: Channel| request.channels.is_empty() || request.channels.contains(&channel.to_proto());
    let mut channels = Vec::new();
    if permitted(Channel::Sms) && customer.sms_allowed && !customer.phone.is_empty() && !account.sms_number.is_empty() {
        channels.push(Channel::Sms);
    }
    if permitted(Channel::Email)
        && customer.email_allowed
        && !customer.email.is_empty()
        && !account.email_from.is_empty()
    {
        channels.push(Channel::Email);
    }
    channels
}
