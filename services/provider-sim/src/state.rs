//! The simulator's configuration and in-memory store of messages.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Start-up settings (from `SIM_…` environment variables in the binary).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    pub listen: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Where injected inbound SMS are delivered (delivery-status's inbound webhook).
    pub inbound_url: String,
    pub faults: Faults,
    /// PEM certificate chain and key to serve HTTPS with, as Twilio does; empty serves plain HTTP.
    #[serde(default)]
    pub tls_cert_file: String,
    #[serde(default)]
    pub tls_key_file: String,
}

/// Behaviour that can be changed at run time through `POST /sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every API call.
    pub latency_ms: u64,
    /// Share of creates answered 500 without creating the message.
    pub error_500_rate: f64,
    /// Share of creates that create the message, then answer 500 (the ambiguous case).
    pub accept_then_500_rate: f64,
    /// Share of creates answered 429 with Retry-After.
    pub error_429_rate: f64,
    /// Share of creates that create the message and never answer in time.
    pub timeout_rate: f64,
    /// Final status reported in callbacks: `delivered` (default), `undelivered`, `failed` or `sent`.
    /// `delivered`, `sent` (no later callback), `undelivered`, `failed`, or `queued` (the message
    /// stays queued at the provider: no callback, no `date_sent`).
    pub outcome: String,
    /// Delay before each status callback.
    pub callback_delay_ms: u64,
    /// Callback attempts on failure (as Twilio's connection overrides allow).
    pub callback_retries: u32,
    /// The error code an `undelivered` or `failed` outcome reports; 0 for 30003 (unreachable handset).
    pub failure_code: i64,
    /// Senders not registered for A2P 10DLC: as at Twilio, their messages are accepted, then
    /// fail with 30034 whatever `outcome` says.
    pub unregistered_senders: Vec<String>,
}

/// One message the simulator accepted.
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status: String,
    pub status_callback: String,
    pub validity_period: Option<u32>,
    pub messaging_service_sid: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    /// When it went to the carrier; none while `accepted` or `queued` (Twilio's null `date_sent`).
    pub date_sent: Option<DateTime<Utc>>,
    pub direction: String,
    pub num_segments: u32,
    /// Callbacks the receiver answered with 2xx, and those that failed every attempt.
    pub callbacks_delivered: u32,
    pub callbacks_failed: u32,
}

/// One authorised create request, whatever became of it: how tests count what reached the provider.
#[derive(Debug, Clone, Serialize)]
pub struct SimRequest {
    pub to: String,
    pub body: String,
    /// When the request arrived, before any injected latency.
    pub at: DateTime<Utc>,
    /// Every form parameter as sent, for conformance checks of clients.
    pub params: Vec<(String, String)>,
    /// The fault injected into the answer, if any: `error_500`, `error_429`, `accept_then_500`, `timeout`.
    pub fault: Option<&'static str>,
}

pub struct SimState {
    pub config: SimConfig,
    pub faults: Mutex<Faults>,
    pub messages: Mutex<Vec<SimMessage>>,
    pub requests: Mutex<Vec<SimRequest>>,
    pub index: Mutex<HashMap<String, usize>>,
    pub http: reqwest::Client,
}

impl SimState {
    pub fn new(config: SimConfig, http: reqwest::Client) -> Self {
        let faults = config.faults.clone();
        Self {
            config,
            faults: Mutex::new(faults),
            messages: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            index: Mutex::new(HashMap::new()),
            http,
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn insert(&self, message: SimMessage) {
        if let (Ok(mut messages), Ok(mut index)) = (self.messages.lock(), self.index.lock()) {
            index.insert(message.sid.clone(), messages.len());
            messages.push(message);
        }
    }

    pub fn update(&self, sid: &str, change: impl FnOnce(&mut SimMessage)) -> Option<SimMessage> {
        let position = *self.index.lock().ok()?.get(sid)?;
        let mut messages = self.messages.lock().ok()?;
        let message = messages.get_mut(position)?;
        change(message);
        message.date_updated = Utc::now();
        if message.date_sent.is_none() && !matches!(message.status.as_str(), "accepted" | "queued") {
            message.date_sent = Some(message.date_updated);
        }
        Some(message.clone())
    }

    pub fn get(&self, sid: &str) -> Option<SimMessage> {
        let position = *self.index.lock().ok()?.get(sid)?;
        self.messages.lock().ok()?.get(position).cloned()
    }

    /// Records a request; returns its position for [`SimState::mark_fault`].
    pub fn record_request(&self, request: SimRequest) -> usize {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.push(request);
        requests.len() - 1
    }

    pub fn mark_fault(&self, request: usize, fault: &'static str) {
        if let Some(recorded) = self.requests.lock().unwrap_or_else(|p| p.into_inner()).get_mut(request) {
            recorded.fault = Some(fault);
        }
    }

    pub fn requests(&self) -> Vec<SimRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<SimMessage> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A Twilio-style SID: two letters and 32 hex digits.
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}
