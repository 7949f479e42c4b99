//! Load for `make bench` and `make chaos`: `job.scheduled` events spread over many accounts, each
//! for a new customer with a number of its own, so the message an event causes can be found by
//! that number at the provider (the simulator's request log) and in the feed (WatchFeed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use messaging_proto::v1::{Direction, WatchFeedRequest};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::client::{Dashboard, Publisher, sim_requests};

/// Events for `accounts` accounts, numbered from 0; event `n` is for customer `n`.
#[derive(Debug, Clone)]
pub struct Load {
    run: String,
    accounts: usize,
}

impl Load {
    /// `run` keeps event ids apart from another run's on the same streams.
    pub fn new(run: &str, accounts: usize) -> Self {
        Self { run: run.to_owned(), accounts: accounts.max(1) }
    }

    pub fn account_ids(&self) -> Vec<String> {
        (0..self.accounts).map(|a| format!("acc_load_{a}")).collect()
    }

    fn account(&self, n: usize) -> String {
        format!("acc_load_{}", n % self.accounts)
    }

    /// Customer `n`'s mobile number (a valid US number, unique below eight million).
    pub fn phone(n: usize) -> String {
        format!("+1737{:07}", 2_000_000 + n)
    }

    /// `account.updated` for every account: no quiet hours, each its own sending number.
    pub async fn set_up_accounts(&self, publisher: &Publisher) -> anyhow::Result<()> {
        for (a, account) in self.account_ids().iter().enumerate() {
            publisher
                .event(&json!({
                    "event_id": format!("{}-account-{a}", self.run), "type": "account.updated",
                    "occurred_at": (Utc::now() - chrono::Duration::days(1)).to_rfc3339(), "account_id": account,
                    "account": {"name": format!("Load Plumbing {a}"), "timezone": "America/Chicago",
                                "sms_number": format!("+1512555{:04}", 1000 + a), "email_from": format!("office+{a}@load.example"),
                                "quiet_hours": {"start": "00:00", "end": "00:00"}}
                }))
                .await?;
        }
        Ok(())
    }

    /// Event `n`: a job booked two days ahead (so no reminder falls inside a run) for customer `n`,
    /// who has a phone and no email: one SMS per event.
    pub fn event(&self, n: usize) -> Value {
        let starts = Utc::now() + chrono::Duration::days(2);
        json!({
            "event_id": format!("{}-{n}", self.run), "type": "job.scheduled", "occurred_at": Utc::now().to_rfc3339(),
            "account_id": self.account(n),
            "customer": {"id": format!("cust_{n}"), "name": format!("Customer {n}"), "phone": Self::phone(n),
                         "email": "", "notifications": {"sms": true, "email": true}},
            "job": {"id": format!("job_{n}"), "title": "Water heater install", "starts_at": starts.to_rfc3339(),
                    "ends_at": (starts + chrono::Duration::hours(2)).to_rfc3339(),
                    "technician": {"name": "Luis Ortega"}, "address": "12 Elm St, Austin, TX"}
        })
    }

    /// Subject, `Nats-Msg-Id` and payload of event `n`.
    pub fn message(&self, n: usize) -> (String, String, Vec<u8>) {
        let event = self.event(n);
        let subject = format!("jobs.{}.job.scheduled", self.account(n));
        let id = event["event_id"].as_str().unwrap_or_default().to_owned();
        (subject, id, serde_json::to_vec(&event).unwrap_or_default())
    }
}

/// What publishing a range of events at a set rate did.
pub struct Published {
    /// When each event was handed to the broker, by event number.
    pub at: HashMap<usize, DateTime<Utc>>,
    /// Events the broker acknowledged.
    pub acknowledged: usize,
    pub took: Duration,
}

/// Publishes events `from..to` at `rate` per second, without waiting for one acknowledgement
/// before sending the next (acknowledgements are awaited alongside).
pub async fn publish_paced(
    jetstream: &jetstream::Context,
    load: &Load,
    from: usize,
    to: usize,
    rate: f64,
) -> anyhow::Result<Published> {
    publish_paced_on(jetstream, load, from, to, rate, str::to_owned).await
}

/// [`publish_paced`], each event on the subject `subject` makes of its own.
pub async fn publish_paced_on(
    jetstream: &jetstream::Context,
    load: &Load,
    from: usize,
    to: usize,
    rate: f64,
    subject: impl Fn(&str) -> String,
) -> anyhow::Result<Published> {
    let started = tokio::time::Instant::now();
    let mut at = HashMap::with_capacity(to - from);
    let mut acks = JoinSet::new();
    for n in from..to {
        let due = started + Duration::from_secs_f64((n - from) as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (own, id, payload) = load.message(n);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        at.insert(n, Utc::now());
        let ack = jetstream.publish_with_headers(subject(&own), headers, payload.into()).await?;
        acks.spawn(async move { ack.await.is_ok() });
    }
    let took = started.elapsed();
    let mut acknowledged = 0;
    while let Some(ok) = acks.join_next().await {
        acknowledged += usize::from(ok.unwrap_or(false));
    }
    Ok(Published { at, acknowledged, took })
}

/// When each number first appeared in the feed as an outbound message, seen through WatchFeed
/// streams opened for every account.
pub struct FeedWatch {
    seen: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    tasks: JoinSet<()>,
}

impl FeedWatch {
    pub async fn start(grpc_port: u16, accounts: &[String]) -> anyhow::Result<Self> {
        let seen: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
        let mut tasks = JoinSet::new();
        for account in accounts {
            let dashboard = Dashboard::connect(grpc_port, account).await?;
            let mut stream =
                dashboard.grpc().watch_feed(dashboard.authed(WatchFeedRequest::default())).await?.into_inner();
            let seen = seen.clone();
            tasks.spawn(async move {
                while let Some(Ok(change)) = stream.next().await {
                    let now = Utc::now();
                    let Some(message) = change.message else { continue };
                    if message.direction != Direction::Outbound as i32 {
                        continue;
                    }
                    let phone = message.customer.map(|c| c.phone).unwrap_or_default();
                    seen.lock().unwrap_or_else(|p| p.into_inner()).entry(phone).or_insert(now);
                }
            });
        }
        Ok(Self { seen, tasks })
    }

    /// First sighting per number so far.
    pub fn seen(&self) -> HashMap<String, DateTime<Utc>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// Every create request the simulator received, as (number, when), in arrival order.
pub async fn provider_requests(sim_port: u16) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    Ok(sim_requests(sim_port)
        .await?
        .iter()
        .filter_map(|r| Some((r["to"].as_str()?.to_owned(), r["at"].as_str()?.parse().ok()?)))
        .collect())
}
