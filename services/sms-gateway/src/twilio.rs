//! The Twilio Messages API adapter (create and list), classifying every failure by what it means
//! for a retry: permanent, rate-limited, certainly-not-sent, or ambiguous (guarantee 3).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_platform::tls::{TlsConfig, certificate_fault};
use serde::{Deserialize, Serialize};

/// Provider settings; the base URL makes the same adapter talk to Twilio or the local simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TwilioConfig {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// When set, sent as `MessagingServiceSid` instead of `From`.
    pub messaging_service_sid: String,
    pub timeout_ms: u64,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: String::new(),
            messaging_service_sid: String::new(),
            timeout_ms: 10_000,
        }
    }
}

/// One SMS to send.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: String,
    pub validity_seconds: u32,
}

/// The provider's view of a message.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMessage {
    pub sid: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    /// RFC 2822, to the second, as Twilio dates messages.
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
}

impl ProviderMessage {
    /// When the provider created it.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        let created = DateTime::parse_from_rfc2822(self.date_created.as_deref()?).ok()?;
        Some(created.with_timezone(&Utc))
    }
}

/// How much earlier than a claim the provider may date the claim's message: Twilio dates to the
/// second, and its clock and ours may differ a little.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(2);

/// The most list pages read for one lookup.
const MAX_PAGES: usize = 20;

/// How a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider refused the message for good (4xx with an error code).
    #[error("provider refused ({status}): {code} {message}")]
    Permanent { status: u16, code: String, message: String },
    /// 429 or Twilio 30001 queue overflow: wait and retry.
    #[error("rate limited; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The request certainly did not reach the provider (connection refused): safe to retry.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The provider may have accepted it (5xx, timeout, reset after sending): never resend blindly.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// Our side is set up wrong (the provider's certificate is not trusted): nothing was sent, and
    /// retrying will not help until an operator fixes the configuration.
    #[error("configuration: {0}")]
    Misconfigured(String),
}

/// An SMS provider, behind a trait so the gateway's logic is testable without the network.
pub trait SmsProvider: Send + Sync + 'static {
    fn send(&self, request: &SmsRequest) -> impl Future<Output = Result<ProviderMessage, SendError>> + Send;
    /// Messages to `to` from our sender (`from`, or the configured messaging service) that the
    /// provider created at or after `since` (less [`CLOCK_SLACK`]), including those it has not
    /// sent yet.
    fn list(
        &self,
        to: &str,
        from: &str,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ProviderMessage>, SendError>> + Send;
}

/// Twilio's REST API over HTTPS (or plain HTTP to the simulator).
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    config: TwilioConfig,
}

#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ProviderMessage>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

impl Twilio {
    pub fn new(config: TwilioConfig, tls: &TlsConfig) -> anyhow::Result<Self> {
        let http = tls.http_client(Duration::from_millis(config.timeout_ms))?;
        Ok(Self { http, config })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.account_sid
        )
    }
}

impl SmsProvider for Twilio {
    async fn send(&self, request: &SmsRequest) -> Result<ProviderMessage, SendError> {
        let mut form: Vec<(&str, String)> = vec![("To", request.to.clone()), ("Body", request.body.clone())];
        if self.config.messaging_service_sid.is_empty() {
            form.push(("From", request.from.clone()));
        } else {
            form.push(("MessagingServiceSid", self.config.messaging_service_sid.clone()));
        }
        if !request.status_callback.is_empty() {
            form.push(("StatusCallback", request.status_callback.clone()));
        }
        if request.validity_seconds > 0 {
            form.push(("ValidityPeriod", request.validity_seconds.to_string()));
        }
        let response = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| SendError::Ambiguous(format!("reading response: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| SendError::Ambiguous(format!("unreadable success response: {e}")));
        }
        let error: TwilioError = serde_json::from_slice(&bytes).unwrap_or(TwilioError { code: None, message: None });
        let code = error.code.map(|c| c.to_string()).unwrap_or_default();
        let message = error.message.unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        if status.as_u16() == 429 || code == "30001" {
            return Err(SendError::RateLimited { retry_after: retry_after.unwrap_or(Duration::from_secs(1)) });
        }
        if status.is_server_error() {
            return Err(SendError::Ambiguous(format!("provider answered {status}: {message}")));
        }
        Err(SendError::Permanent { status: status.as_u16(), code, message })
    }

    /// No `DateSent` filter: Twilio applies it to `date_sent`, which a message still queued does not
    /// have. A messaging service picks the sending number itself, so then `From` is not filtered
    /// on and the message's service is checked instead. Pages are read until one holds nothing
    /// created after the claim.
    async fn list(&self, to: &str, from: &str, since: DateTime<Utc>) -> Result<Vec<ProviderMessage>, SendError> {
        use chrono::SubsecRound as _;
        let floor = since.trunc_subsecs(0) - CLOCK_SLACK;
        let service = self.config.messaging_service_sid.as_str();
        let mut found = Vec::new();
        let mut url = self.messages_url();
        let mut query = vec![("To", to.to_owned()), ("PageSize", "50".to_owned())];
        if service.is_empty() {
            query.push(("From", from.to_owned()));
        }
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .get(&url)
                .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
                .query(&query)
                .send()
                .await
                .map_err(classify_lookup)?;
            if !response.status().is_success() {
                return Err(SendError::NotSent(format!("list answered {}", response.status())));
            }
            let page: MessagePage = response.json().await.map_err(|e| SendError::NotSent(e.to_string()))?;
            let recent = |m: &ProviderMessage| m.created().is_some_and(|at| at >= floor);
            let any_recent = page.messages.iter().any(recent);
            let ours = |m: &ProviderMessage| service.is_empty() || m.messaging_service_sid.as_deref() == Some(service);
            found.extend(page.messages.into_iter().filter(|m| recent(m) && ours(m)));
            if !any_recent {
                break;
            }
            match page.next_page_uri {
                Some(next) if !next.is_empty() => {
                    url = format!("{}{}", self.config.base_url.trim_end_matches('/'), next);
                    query.clear();
                }
                _ => break,
            }
        }
        Ok(found)
    }
}

fn classify_transport(error: reqwest::Error) -> SendError {
    if let Some(fault) = certificate_fault(&error) {
        SendError::Misconfigured(format!("{fault} ({})", error.url().map(|u| u.as_str()).unwrap_or("")))
    } else if error.is_connect() {
        SendError::NotSent(error_chain(&error))
    } else {
        SendError::Ambiguous(error_chain(&error))
    }
}

fn classify_lookup(error: reqwest::Error) -> SendError {
    match classify_transport(error) {
        SendError::Ambiguous(detail) => SendError::NotSent(detail),
        other => other,
    }
}

/// An error with its causes ("error sending request" alone says nothing).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The normalised failure reason the feed shows for a Twilio error code (the shared table in
/// `messaging_domain::registration`; an unknown code is `provider_rejected`).
pub fn failure_reason(code: &str) -> &'static str {
    messaging_domain::registration::twilio_failure_reason(code).unwrap_or("provider_rejected")
}
