//! Handles notification requests, a batch at a time: channels, rendering, one message per
//! (request, channel), written set-based ([`crate::create`]).
//! A channel the recipient opted out of still gets its message row, recorded as failed with
//! reason `opted_out` so the business sees why, and nothing goes to a gateway; so does an SMS from
//! an account whose A2P 10DLC registration is reported and not active (`sms_not_registered`).

use std::collections::{BTreeMap, HashMap};

use messaging_domain::registration::{self, SMS_NOT_REGISTERED};
use messaging_domain::{Channel, Direction, MessageId, MessageType};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_platform::bus::{self, Delivery, Outcome, Relay, TxHandler};
use messaging_proto::bus::{
    AccountSnapshot, AttemptOutcome, CustomerSnapshot, MessageQueued, NotificationRequest, SendAttempt, SendCommand,
};
use sqlx::PgConnection;
use tracing::{Instrument, Span};

use crate::create::{self, Created, Planned};
use crate::fallback;
use crate::render::{self, RenderError};
use crate::templates::Custom;
use crate::wording;
use messaging_templates::Values;

/// The custom templates current for a batch, by account, type and channel.
type Customs = HashMap<(String, MessageType, Channel), Custom>;

/// The failure reason of a message to a recipient who opted out.
pub const OPTED_OUT: &str = "opted_out";

/// The refusal a stored failure reason stands for, if it is one dispatch makes.
pub fn refusal_of(reason: &str) -> Option<&'static str> {
    [OPTED_OUT, SMS_NOT_REGISTERED].into_iter().find(|r| *r == reason)
}

/// Where a test may have the process abort, as `kill -9` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    #[default]
    Never,
    /// A batch's messages are committed; their events are not published, nor the requests acked.
    AfterCommit,
    /// An SMS→email fallback's email is committed with its events in the outbox; the failure that
    /// caused it is not acked.
    AfterFallbackCommit,
}

/// The notification-request handler.
pub struct Dispatcher {
    relay: Relay,
    on_my_way_validity_secs: u32,
    crash_at: CrashPoint,
}

impl TxHandler for Dispatcher {
    fn committed(&self) {
        self.relay.wake();
    }

    fn publishes_after_commit(&self) -> Option<&Relay> {
        Some(&self.relay)
    }

    fn publishing(&self) {
        if self.crash_at == CrashPoint::AfterCommit {
            tracing::error!(point = ?self.crash_at, "crashing on purpose (fault injection)");
            std::process::abort();
        }
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let spans = [Span::current()];
        self.dispatch(tx, std::slice::from_ref(delivery), &spans).await.pop().unwrap_or(Outcome::Ack)
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        let spans: Vec<Span> = deliveries.iter().map(|delivery| bus::consume_span(service, delivery)).collect();
        self.dispatch(tx, deliveries, &spans).await
    }
}

impl Dispatcher {
    pub fn new(relay: Relay, on_my_way_validity_secs: u32) -> Self {
        Self { relay, on_my_way_validity_secs, crash_at: CrashPoint::Never }
    }

    /// Aborts the process at `point` (fault-injection tests only).
    pub fn crashing_at(self, point: CrashPoint) -> Self {
        Self { crash_at: point, ..self }
    }

    /// Creates the requests' messages inside `tx` (set-based, [`create`]) and enqueues what each
    /// causes, in its request's trace; one outcome per delivery, up to the first not acked.
    async fn dispatch(&self, tx: &mut PgConnection, deliveries: &[Delivery], spans: &[Span]) -> Vec<Outcome> {
        match bus::decode_all(deliveries, decode) {
            Ok(asked) => self.create_all(tx, &asked, spans).await,
            Err(outcomes) => outcomes,
        }
    }

    /// Creates the messages `asked` for inside `tx` and enqueues what each causes, in its span;
    /// keeps the request behind each new automatic SMS that may fall back to email. One outcome
    /// per request, up to the first not acked.
    pub(crate) async fn create_all(&self, tx: &mut PgConnection, asked: &[Asked], spans: &[Span]) -> Vec<Outcome> {
        let wanted: Vec<(&str, MessageType)> = asked.iter().map(|a| (a.account_id(), a.kind)).collect();
        let custom = match crate::templates::current(tx, &wanted).await {
            Ok(custom) => custom,
            Err(error) => return vec![Outcome::retry(format!("database: {error}"))],
        };
        // Each request's template values, once: for its custom templates and its `queued` events.
        let values: Vec<Result<Values, RenderError>> =
            asked.iter().map(|a| render::values(&a.request, a.kind)).collect();
        let mut planned = Vec::new();
        for (n, a) in asked.iter().enumerate() {
            match plan(n, &a.request, a.kind, &custom, &values[n]) {
                Ok(messages) => planned.extend(messages),
                Err(error) => {
                    let mut outcomes = vec![Outcome::Ack; n];
                    outcomes.push(Outcome::DeadLetter(error.to_string()));
                    return outcomes;
                }
            }
        }
        let created = match create::create(tx, planned).await {
            Ok(created) => created,
            Err(error) => return vec![Outcome::retry(format!("database: {error}"))],
        };
        let mut counts = vec![0; asked.len()];
        let mut standing_by = Vec::new();
        for created in created {
            let n = created.planned.request;
            let request = &asked[n].request;
            if created.fresh && created.planned.channel == Channel::Sms && fallback::stands_by(request, asked[n].kind) {
                standing_by.push((created.planned.message_id.clone(), request));
            }
            let about = About {
                customer: request.customer.clone().unwrap_or_default(),
                job_id: request.job.as_ref().map(|j| j.job_id.clone()).unwrap_or_default(),
                from_name: request.account.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
                values: template_values(&values[n]),
                fallback_of: asked[n].fallback_of.clone().unwrap_or_default(),
            };
            let fresh = created.fresh;
            let enqueued = self.enqueue(tx, created, about).instrument(spans[n].clone()).await;
            if let Err(error) = enqueued {
                return vec![Outcome::retry(format!("database: {error}"))];
            }
            counts[n] += usize::from(fresh);
        }
        if let Err(error) = fallback::keep(tx, &standing_by).await {
            return vec![Outcome::retry(format!("database: {error}"))];
        }
        let mut outcomes = Vec::with_capacity(asked.len());
        for ((a, created), span) in asked.iter().zip(counts).zip(spans) {
            span.in_scope(|| {
                tracing::info!(account_id = a.account_id(), request_id = %a.request.request_id, created, "notification dispatched");
            });
            outcomes.push(Outcome::Ack);
        }
        outcomes
    }

    /// What a message causes: `queued` for the feed, and the send command for its gateway (or, to
    /// a recipient who opted out, the failed attempt instead); published once the transaction
    /// commits, and again, under the same ids, whenever its request is redelivered.
    async fn enqueue(&self, tx: &mut PgConnection, created: Created, about: About) -> sqlx::Result<()> {
        let About { customer, job_id, from_name, values, fallback_of } = about;
        let Created { planned, body, segments, fresh } = created;
        let (message_id, account_id, channel, kind) =
            (&planned.message_id, &planned.account_id, planned.channel, planned.kind);
        let queued = MessageQueued {
            message_id: message_id.to_string(),
            account_id: account_id.clone(),
            direction: Direction::Outbound.to_proto(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            customer: Some(customer),
            job_id,
            preview: body.chars().take(160).collect(),
            subject: planned.subject.clone(),
            queued_at: Some(messaging_proto::time::now()),
            body: body.clone(),
            template_version: planned.template_version.map_or(0, |v| v as u32),
            template_fallback: planned.template_fallback.clone().unwrap_or_default(),
            values,
            fallback_of,
        };
        outbox::enqueue(tx, crate::SCHEMA, &OutboxMessage::of(&queued, message_id)).await?;
        if fresh {
            crate::metrics::message_created(kind, channel, planned.refused.unwrap_or("queued"));
        }
        if let Some(reason) = planned.refused {
            if fresh {
                tracing::info!(account_id, message_id = %message_id, channel = %channel, reason, "refused; not sent");
            }
            let attempt = refused_attempt(message_id, account_id, channel, &planned.recipient, reason);
            return outbox::enqueue(tx, crate::SCHEMA, &attempt).await;
        }
        let command = SendCommand {
            message_id: message_id.to_string(),
            account_id: account_id.clone(),
            channel: channel.to_proto(),
            r#type: kind.to_proto(),
            to: planned.recipient,
            from: planned.sender,
            body,
            subject: planned.subject,
            html_body: planned.html,
            from_name,
            validity_seconds: if kind == MessageType::OnMyWay { self.on_my_way_validity_secs } else { 0 },
            segments: segments.map_or(0, |c| c.count),
        };
        outbox::enqueue(tx, crate::SCHEMA, &OutboxMessage::of(&command, message_id)).await
    }
}

/// What a message's `queued` event says beyond the message itself, from its request.
struct About {
    customer: CustomerSnapshot,
    job_id: String,
    from_name: String,
    values: BTreeMap<String, String>,
    /// The failed SMS an SMS→email fallback stands in for; empty otherwise.
    fallback_of: String,
}

/// A notification request to dispatch: as consumed, or rebuilt for an SMS→email fallback.
pub(crate) struct Asked {
    pub request: NotificationRequest,
    pub kind: MessageType,
    /// The failed SMS whose email this request is for ([`crate::fallback`]).
    pub fallback_of: Option<String>,
}

impl Asked {
    fn account_id(&self) -> &str {
        self.request.account.as_ref().map_or("", |a| a.account_id.as_str())
    }
}

/// A request's template variables' values for its `queued` events (none for a type without
/// templates, or a request whose data cannot be formatted): what the business previews with.
fn template_values(values: &Result<Values, RenderError>) -> BTreeMap<String, String> {
    values
        .as_ref()
        .map(|values| values.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect())
        .unwrap_or_default()
}

/// The request and its type, or the outcome of a delivery that holds none.
fn decode(delivery: &Delivery) -> Result<Asked, Outcome> {
    let request = delivery.decode::<NotificationRequest>()?;
    let Some(kind) = MessageType::from_proto(request.r#type) else {
        return Err(Outcome::DeadLetter(format!("unknown message type {}", request.r#type)));
    };
    Ok(Asked { request, kind, fallback_of: None })
}

/// The messages request `n` asks for: one per channel the customer can be reached on, worded by
/// the account's own template for it when there is one ([`wording`]).
fn plan(
    n: usize,
    request: &NotificationRequest,
    kind: MessageType,
    custom: &Customs,
    values: &Result<Values, RenderError>,
) -> Result<Vec<Planned>, RenderError> {
    let channels = eligible_channels(request);
    let account = request.account.clone().unwrap_or_default();
    let customer = request.customer.clone().unwrap_or_default();
    if channels.is_empty() {
        let job_id = request.job.as_ref().map(|j| j.job_id.as_str()).unwrap_or("");
        crate::metrics::no_usable_channel(kind);
        tracing::warn!(account_id = %account.account_id, request_id = %request.request_id, job_id, kind = %kind, "customer has no usable channel; nothing sent");
    }
    channels
        .into_iter()
        .map(|channel| {
            let template = custom.get(&(account.account_id.clone(), kind, channel));
            let (recipient, sender, worded) = match channel {
                Channel::Sms => {
                    (customer.phone.clone(), account.sms_number.clone(), wording::sms(request, kind, template, values)?)
                }
                Channel::Email => (
                    customer.email.clone(),
                    account.email_from.clone(),
                    wording::email(request, kind, template, values)?,
                ),
            };
            let message_id = MessageId::parse(request.message_id.as_str())
                .unwrap_or_else(|_| MessageId::from_u128(uuid::Uuid::now_v7().as_u128()));
            Ok(Planned {
                request: n,
                kind,
                channel,
                message_id,
                account_id: account.account_id.clone(),
                customer_id: customer.customer_id.clone(),
                idempotency_key: format!("{}:{}", request.request_id, channel.as_str()),
                recipient,
                sender,
                subject: worded.subject,
                body: worded.body,
                html: worded.html,
                template_version: worded.template_version,
                template_fallback: worded.fallback,
                refused: (channel == Channel::Sms && !registration::sends_sms(Some(&account.sms_registration)))
                    .then_some(SMS_NOT_REGISTERED),
            })
        })
        .collect()
}

/// The `attempt` event that records, through delivery-status like any gateway outcome, that the
/// message was refused: the recipient opted out, or the account's number may not send SMS.
fn refused_attempt(
    message_id: &MessageId,
    account_id: &str,
    channel: Channel,
    recipient: &str,
    reason: &'static str,
) -> OutboxMessage {
    let text = match reason {
        OPTED_OUT => "the recipient opted out of this channel",
        _ => "the business number's A2P 10DLC registration is not active, so carriers would block the SMS",
    };
    let attempt = SendAttempt {
        message_id: message_id.to_string(),
        account_id: account_id.to_owned(),
        channel: channel.to_proto(),
        outcome: AttemptOutcome::Failed as i32,
        failure_reason: reason.to_owned(),
        provider_error_text: text.to_owned(),
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
    if permitted(Channel::Email) && email_usable(account, customer) {
        channels.push(Channel::Email);
    }
    channels
}

/// Whether the customer has an email address they allow and the account has one to send from.
pub(crate) fn email_usable(account: &AccountSnapshot, customer: &CustomerSnapshot) -> bool {
    customer.email_allowed && !customer.email.is_empty() && !account.email_from.is_empty()
}
