//! Handles one notification request: channels, rendering, one message per (request, channel).
//! A channel the recipient opted out of still gets its message row, recorded as failed with
//! reason `opted_out` so the business sees why, and nothing goes to a gateway.

use messaging_domain::sms::segments;
use messaging_domain::{Channel, Direction, MessageId, MessageType};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_platform::bus::{Delivery, Outcome, Relay, TxHandler};
use messaging_proto::bus::{AttemptOutcome, MessageQueued, NotificationRequest, SendAttempt, SendCommand};
use sqlx::PgConnection;

use crate::render::{self, RenderError};
use crate::suppression;

/// The failure reason of a message to a recipient who opted out.
pub const OPTED_OUT: &str = "opted_out";

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
    relay: Relay,
    on_my_way_validity_secs: u32,
}

impl TxHandler for Dispatcher {
    fn committed(&self) {
        self.relay.wake();
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let request = match delivery.decode::<NotificationRequest>() {
            Ok(request) => request,
            Err(dead) => return dead,
        };
        let Some(kind) = MessageType::from_proto(request.r#type) else {
            return Outcome::DeadLetter(format!("unknown message type {}", request.r#type));
        };
        let account_id = request.account.as_ref().map(|a| a.account_id.as_str()).unwrap_or("");
        match self.dispatch(tx, &request, kind).await {
            Ok(created) => {
                tracing::info!(account_id, request_id = %request.request_id, created, "notification dispatched");
                Outcome::Ack
            }
            Err(DispatchError::Render(error)) => Outcome::DeadLetter(error.to_string()),
            Err(error) => Outcome::retry(error),
        }
    }
}

/// A message's content for one channel.
struct Content {
    recipient: String,
    sender: String,
    subject: String,
    body: String,
    html: String,
}

impl Dispatcher {
    pub fn new(relay: Relay, on_my_way_validity_secs: u32) -> Self {
        Self { relay, on_my_way_validity_secs }
    }

    /// Creates the request's messages inside `tx`; returns how many were new.
    pub async fn dispatch(
        &self,
        tx: &mut PgConnection,
        request: &NotificationRequest,
        kind: MessageType,
    ) -> Result<usize, DispatchError> {
        let channels = eligible_channels(request);
        if channels.is_empty() {
            let job_id = request.job.as_ref().map(|j| j.job_id.as_str()).unwrap_or("");
            let account_id = request.account.as_ref().map(|a| a.account_id.as_str()).unwrap_or("");
            crate::metrics::no_usable_channel(kind);
            tracing::warn!(account_id, request_id = %request.request_id, job_id, kind = %kind, "customer has no usable channel; nothing sent");
            return Ok(0);
        }
        let mut created = 0;
        for channel in channels {
            if self.create_message(tx, request, kind, channel).await? {
                created += 1;
            }
        }
        Ok(created)
    }

    fn content(request: &NotificationRequest, kind: MessageType, channel: Channel) -> Result<Content, RenderError> {
        let account = request.account.clone().unwrap_or_default();
        let customer = request.customer.clone().unwrap_or_default();
        Ok(match channel {
            Channel::Sms => Content {
                recipient: customer.phone,
                sender: account.sms_number,
                subject: String::new(),
                body: render::sms(request, kind)?,
                html: String::new(),
            },
            Channel::Email => {
                let rendered = render::email(request, kind)?;
                Content {
                    recipient: customer.email,
                    sender: account.email_from,
                    subject: rendered.subject,
                    body: rendered.text,
                    html: rendered.html,
                }
            }
        })
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
        let mut content = Self::content(request, kind, channel)?;
        let account_id = account.account_id.as_str();
        let suppressed = suppression::is_suppressed(tx, account_id, channel, &content.recipient).await?;
        let message_id = match MessageId::parse(request.message_id.as_str()) {
            Ok(chosen) => chosen,
            Err(_) => MessageId::from_u128(uuid::Uuid::now_v7().as_u128()),
        };
        let idempotency_key = format!("{}:{}", request.request_id, channel.as_str());
        // The first SMS the account sends a number carries the opt-out notice: one statement claims
        // the number (only for a request not seen before) and inserts the message with the body the
        // claim decides, so the message row is written once.
        let claims_number = channel == Channel::Sms && !suppressed;
        let noticed = claims_number.then(|| render::with_opt_out_notice(&content.body));
        let plain = (channel == Channel::Sms).then(|| segments(&content.body));
        let with_notice = noticed.as_deref().map(segments);
        let inserted: Option<bool> = sqlx::query_scalar(
            "WITH seen AS (SELECT 1 FROM dispatch.messages WHERE idempotency_key = $3),
             claimed AS (INSERT INTO dispatch.sms_recipients (account_id, address, first_message_id)
                         SELECT $2, $7, $1 WHERE $15 AND NOT EXISTS (SELECT 1 FROM seen)
                         ON CONFLICT DO NOTHING RETURNING 1),
             first AS (SELECT EXISTS (SELECT 1 FROM claimed) AS first)
             INSERT INTO dispatch.messages (message_id, account_id, idempotency_key, customer_id, channel, message_type,
                 recipient, sender, subject, body, html_body, failure_reason, segments, encoding)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN first THEN $16 ELSE $10 END, $11, $12,
                    CASE WHEN first THEN $17 ELSE $13 END, CASE WHEN first THEN $18 ELSE $14 END
             FROM first
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING body = $16",
        )
        .bind(message_id.as_str())
        .bind(account_id)
        .bind(&idempotency_key)
        .bind(&customer.customer_id)
        .bind(channel.as_str())
        .bind(kind.as_str())
        .bind(&content.recipient)
        .bind(&content.sender)
        .bind(&content.subject)
        .bind(&content.body)
        .bind(&content.html)
        .bind(suppressed.then_some(OPTED_OUT))
        .bind(plain.map_or(0, |c| c.count as i32))
        .bind(plain.map_or("", |c| c.encoding.as_str()))
        .bind(claims_number)
        .bind(noticed.as_deref().unwrap_or(""))
        .bind(with_notice.map_or(0, |c| c.count as i32))
        .bind(with_notice.map_or("", |c| c.encoding.as_str()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(first) = inserted else {
            return Ok(false);
        };
        let mut counted = plain;
        if first && let Some(noticed) = noticed {
            content.body = noticed;
            counted = with_notice;
        }
        let queued = MessageQueued {
            message_id: message_id.to_string(),
            account_id: account_id.to_owned(),
            direction: Direction::Outbound.to_proto(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            customer: Some(customer),
            job_id: request.job.as_ref().map(|j| j.job_id.clone()).unwrap_or_default(),
            preview: content.body.chars().take(160).collect(),
            subject: content.subject.clone(),
            queued_at: Some(messaging_proto::time::now()),
            body: content.body.clone(),
        };
        outbox::enqueue(tx, crate::SCHEMA, &OutboxMessage::of(&queued, &message_id)).await?;
        crate::metrics::message_created(kind, channel, if suppressed { OPTED_OUT } else { "queued" });
        if suppressed {
            tracing::info!(account_id, message_id = %message_id, channel = %channel, "recipient opted out; not sent");
            outbox::enqueue(
                tx,
                crate::SCHEMA,
                &opted_out_attempt(&message_id, account_id, channel, &content.recipient),
            )
            .await?;
            return Ok(true);
        }
        let command = SendCommand {
            message_id: message_id.to_string(),
            account_id: account_id.to_owned(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            to: content.recipient,
            from: content.sender,
            body: content.body,
            subject: content.subject,
            html_body: content.html,
            from_name: account.name.clone(),
            validity_seconds: if kind == MessageType::OnMyWay { self.on_my_way_validity_secs } else { 0 },
            segments: counted.map_or(0, |c| c.count),
        };
        outbox::enqueue(tx, crate::SCHEMA, &OutboxMessage::of(&command, &message_id)).await?;
        Ok(true)
    }
}

/// The `attempt` event that records, through delivery-status like any gateway outcome, that the
/// message was refused because the recipient opted out.
fn opted_out_attempt(message_id: &MessageId, account_id: &str, channel: Channel, recipient: &str) -> OutboxMessage {
    let attempt = SendAttempt {
        message_id: message_id.to_string(),
        account_id: account_id.to_owned(),
        channel: channel.to_proto(),
        outcome: AttemptOutcome::Failed as i32,
        failure_reason: OPTED_OUT.to_owned(),
        provider_error_text: "the recipient opted out of this channel".to_owned(),
        occurred_at: Some(messaging_proto::time::now()),
        to: recipient.to_owned(),
        ..Default::default()
    };
    OutboxMessage::of(&attempt, format_args!("{message_id}:failed"))
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
