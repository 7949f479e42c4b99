//! Clients the tests drive the system with: JetStream publishing of job events and FeedService
//! calls with a bearer token, as the scheduling system and the dashboard would.

use std::time::Duration;

use messaging_proto::v1::feed_service_client::FeedServiceClient;
use messaging_proto::v1::{Channel, GetThreadRequest, ListMessagesRequest, Message, MessageStatus, MessageType};
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;

use crate::stack::JWT_SECRET;

/// A fresh system with `account_event` applied, a publisher and the account's dashboard.
pub async fn start_with(name: &str, account_event: &Value) -> anyhow::Result<(crate::Stack, Publisher, Dashboard)> {
    let stack = crate::Stack::start_fresh(name).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(account_event).await?;
    let account = account_event["account_id"].as_str().unwrap_or_default();
    let dashboard = Dashboard::connect(stack.ports.grpc, account).await?;
    Ok((stack, publisher, dashboard))
}

/// A dashboard token for `account`.
pub fn token(account: &str) -> String {
    signed(&json!({"account_id": account, "exp": chrono::Utc::now().timestamp() + 3600}))
}

/// A token for `account` whose `role` claim is `role`.
pub fn token_as(account: &str, role: &str) -> String {
    signed(&json!({"account_id": account, "role": role, "exp": chrono::Utc::now().timestamp() + 3600}))
}

/// A technician's token for `account`: they see only the customers of their jobs.
pub fn technician_token(account: &str, technician_id: &str) -> String {
    signed(&json!({"account_id": account, "role": "technician", "technician_id": technician_id,
                   "exp": chrono::Utc::now().timestamp() + 3600}))
}

fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// `body` as a request with `authorization: Bearer <token>`.
pub fn with_bearer<T>(body: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    if let Ok(bearer) = MetadataValue::try_from(format!("Bearer {token}")) {
        request.metadata_mut().insert("authorization", bearer);
    }
    request
}

/// Publishes job events with JetStream, `Nats-Msg-Id` = event id.
pub struct Publisher {
    jetstream: async_nats::jetstream::Context,
}

impl Publisher {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = crate::nats_connect(url).await?;
        Ok(Self { jetstream: async_nats::jetstream::new(client) })
    }

    /// Publishes raw bytes on a subject.
    pub async fn raw(&self, subject: &str, msg_id: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let mut delay = Duration::from_millis(100);
        for _ in 0..50 {
            match self.jetstream.publish_with_headers(subject.to_owned(), headers.clone(), payload.clone().into()).await
            {
                Ok(ack) => match ack.await {
                    Ok(_) => return Ok(()),
                    Err(error) => tracing_like(&error.to_string()),
                },
                Err(error) => tracing_like(&error.to_string()),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        anyhow::bail!("could not publish to {subject}")
    }

    /// Publishes a JSON job event on `jobs.<account>.<type>`.
    pub async fn event(&self, event: &Value) -> anyhow::Result<()> {
        let subject =
            format!("jobs.{}.{}", event["account_id"].as_str().unwrap_or(""), event["type"].as_str().unwrap_or(""));
        self.raw(&subject, event["event_id"].as_str().unwrap_or(""), serde_json::to_vec(event)?).await
    }
}

fn tracing_like(message: &str) {
    eprintln!("publish retry: {message}");
}

/// `account.updated` for a test account with no quiet hours (start = end), so what a test
/// sees does not depend on the hour it runs at.
pub fn account_updated(event_id: &str, account: &str) -> Value {
    json!({
        "event_id": event_id, "type": "account.updated", "occurred_at": "2026-11-26T15:00:00Z", "account_id": account,
        "account": {"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": crate::events::business_number(account),
                    "email_from": crate::events::send_address(account), "quiet_hours": {"start": "00:00", "end": "00:00"}}
    })
}

/// `job.scheduled` for a customer with the given phone and email.
pub fn job_scheduled(event_id: &str, account: &str, customer: &str, phone: &str, email: &str) -> Value {
    json!({
        "event_id": event_id, "type": "job.scheduled", "occurred_at": "2026-11-26T15:04:05Z", "account_id": account,
        "customer": {"id": customer, "name": "Dana Reyes", "phone": phone, "email": email,
                     "notifications": {"sms": true, "email": true}},
        "job": {"id": format!("job_{event_id}"), "title": "Water heater install",
                "starts_at": "2026-11-28T15:00:00Z", "ends_at": "2026-11-28T17:00:00Z",
                "technician": {"name": "Luis Ortega"}, "address": "12 Elm St, Austin, TX"}
    })
}

/// A FeedService client for one account.
#[derive(Clone)]
pub struct Dashboard {
    client: FeedServiceClient<tonic::transport::Channel>,
    token: String,
}

impl Dashboard {
    pub async fn connect(grpc_port: u16, account: &str) -> anyhow::Result<Self> {
        let client = FeedServiceClient::connect(format!("http://127.0.0.1:{grpc_port}")).await?;
        Ok(Self { client, token: token(account) })
    }

    /// A client for `account` whose calls carry `token` (a technician's, say).
    pub async fn connect_with(grpc_port: u16, token: String) -> anyhow::Result<Self> {
        let client = FeedServiceClient::connect(format!("http://127.0.0.1:{grpc_port}")).await?;
        Ok(Self { client, token })
    }

    /// The generated client, for calls the helpers below do not cover.
    pub fn grpc(&self) -> FeedServiceClient<tonic::transport::Channel> {
        self.client.clone()
    }

    /// `body` as a request carrying this dashboard's bearer token.
    pub fn authed<T>(&self, body: T) -> tonic::Request<T> {
        with_bearer(body, &self.token)
    }

    pub async fn list(&mut self, request: ListMessagesRequest) -> Result<Vec<Message>, tonic::Status> {
        let request = self.authed(request);
        Ok(self.client.list_messages(request).await?.into_inner().messages)
    }

    /// One customer's thread, oldest first (the last 200).
    pub async fn thread(&mut self, customer_id: &str) -> Result<Vec<Message>, tonic::Status> {
        let request =
            self.authed(GetThreadRequest { customer_id: customer_id.to_owned(), page_size: 200, ..Default::default() });
        let mut messages = self.client.get_thread(request).await?.into_inner().messages;
        messages.reverse();
        Ok(messages)
    }

    /// Every message of the account (first 200).
    pub async fn all(&mut self) -> Vec<Message> {
        self.list(ListMessagesRequest { page_size: 200, ..Default::default() }).await.unwrap_or_default()
    }

    /// Waits until the feed holds at least `count` messages and each has its final status
    /// (an email sent, an SMS delivered or failed, a reply received).
    pub async fn settled(&self, count: usize) -> anyhow::Result<Vec<Message>> {
        crate::eventually(Duration::from_secs(60), &format!("{count} settled messages in the feed"), || {
            let mut dashboard = self.clone();
            async move {
                let all = dashboard.all().await;
                let done = |m: &Message| {
                    let status = MessageStatus::try_from(m.status).unwrap_or_default();
                    match Channel::try_from(m.channel).unwrap_or_default() {
                        _ if status == MessageStatus::Received => true,
                        Channel::Sms => matches!(status, MessageStatus::Delivered | MessageStatus::Failed),
                        _ => status != MessageStatus::Queued,
                    }
                };
                (all.len() >= count && all.iter().all(done)).then_some(all)
            }
        })
        .await
    }
}

/// How many of `messages` are to `customer`, of `kind`, on `channel`.
pub fn count(messages: &[Message], customer: &str, kind: MessageType, channel: Channel) -> usize {
    messages
        .iter()
        .filter(|m| {
            m.customer.as_ref().is_some_and(|c| c.customer_id == customer)
                && m.r#type == kind as i32
                && m.channel == channel as i32
        })
        .count()
}

/// Sets the simulator's faults (`{"error_500_rate": 1.0}`; omitted fields are off).
pub async fn sim_faults(sim_port: u16, faults: Value) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{sim_port}/sim/faults"))
        .json(&faults)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Has the simulator deliver an inbound SMS (signed as Twilio signs it); returns its answer,
/// with the webhook's status and body.
pub async fn sim_inbound(sim_port: u16, from: &str, to: &str, body: &str) -> anyhow::Result<Value> {
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{sim_port}/sim/inbound"))
        .json(&json!({"from": from, "to": to, "body": body}))
        .send()
        .await?
        .error_for_status()?;
    Ok(answer.json().await?)
}

/// Every create request the simulator received, accepted or refused.
pub async fn sim_requests(sim_port: u16) -> anyhow::Result<Vec<Value>> {
    let body: Value = reqwest::get(format!("http://127.0.0.1:{sim_port}/sim/requests")).await?.json().await?;
    Ok(body["requests"].as_array().cloned().unwrap_or_default())
}

/// The simulator's record of what it was asked to send.
pub async fn sim_messages(sim_port: u16) -> anyhow::Result<Vec<Value>> {
    let body: Value = reqwest::get(format!("http://127.0.0.1:{sim_port}/sim/messages")).await?.json().await?;
    Ok(body["messages"].as_array().cloned().unwrap_or_default())
}

/// The status code a call ended with (`Ok` when it succeeded).
pub fn code<T>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.err().map_or(tonic::Code::Ok, |status| status.code())
}

/// The reasons of the dead letters on `subject` (a filter such as `dlq.ingest.>`), oldest first.
pub async fn dead_letter_reasons(nats_url: &str, subject: &str) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let client = crate::nats_connect(nats_url).await?;
    let stream = async_nats::jetstream::new(client).get_stream("DEAD_LETTER").await?;
    let config = async_nats::jetstream::consumer::pull::Config { filter_subject: subject.into(), ..Default::default() };
    let consumer = stream.create_consumer(config).await?;
    let mut batch = consumer.fetch().max_messages(20).expires(Duration::from_millis(500)).messages().await?;
    let mut reasons = Vec::new();
    while let Some(Ok(message)) = batch.next().await {
        let header = message.headers.as_ref().and_then(|h| h.get("Dlq-Reason")).map(|v| v.as_str().to_owned());
        reasons.push(header.unwrap_or_default());
    }
    Ok(reasons)
}
