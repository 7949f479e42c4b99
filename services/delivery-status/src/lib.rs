//! delivery-status: the authoritative record of what happened to each message. It takes the
//! gateways' attempt events and the provider's verified webhooks, keeps every raw report in the
//! message's timeline, moves status only forward, and tells the feed.

mod attempts;
mod commits;
pub mod directory;
pub mod edge;
mod engagement;
mod inbound;
mod inbound_email;
mod sendgrid;
pub mod store;
mod stuck;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use messaging_platform::bus::{self, ConsumerSpec, Relay, consumers, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

/// The Postgres schema delivery-status owns.
pub const SCHEMA: &str = "delivery_status";

/// delivery-status's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    /// Where the webhook server listens.
    pub listen: String,
    /// The webhook server's header, request and concurrency limits.
    pub edge: edge::EdgeLimits,
    /// The base URL providers call, used to verify signatures.
    pub public_base_url: String,
    /// Twilio: the auth token verifies webhooks; with an account SID, stuck messages are looked up.
    /// The same `[twilio]` keys the SMS gateway reads.
    pub twilio: TwilioAccount,
    /// Shared with the gateways: verifies message tokens in callback URLs.
    pub callback_secret: String,
    /// SendGrid's event-webhook verification key (base64 DER); empty refuses every event unless
    /// `sendgrid_events_unsigned` is set.
    pub sendgrid_public_key: String,
    /// Development only: accept SendGrid events without a signature when no key is set. Anyone
    /// who can reach the webhook can then forge bounces and opens for messages whose token they
    /// hold; refused in production.
    pub sendgrid_events_unsigned: bool,
    /// The secret path segment SendGrid's inbound parse posts to; empty refuses inbound email.
    pub inbound_email_secret: String,
    /// An SMS `sent` this long without a final status is looked up at the provider.
    pub stuck_after_secs: u64,
    pub stuck_check_interval_ms: u64,
    /// Still `sent` at the provider this long after sending: shown as "delivery unknown".
    pub delivery_unknown_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::default(),
            listen: "127.0.0.1:8080".into(),
            edge: edge::EdgeLimits::default(),
            public_base_url: "http://127.0.0.1:8080".into(),
            twilio: TwilioAccount::default(),
            callback_secret: "dev-callback-secret".into(),
            sendgrid_public_key: String::new(),
            sendgrid_events_unsigned: false,
            inbound_email_secret: String::new(),
            stuck_after_secs: 1800,
            stuck_check_interval_ms: 60_000,
            delivery_unknown_after_secs: 86_400,
        }
    }
}

/// Twilio's API and the account's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TwilioAccount {
    pub base_url: String,
    /// Empty turns the stuck-message lookups off.
    pub account_sid: String,
    pub auth_token: String,
}

impl Default for TwilioAccount {
    fn default() -> Self {
        Self { base_url: "https://api.twilio.com".into(), account_sid: String::new(), auth_token: String::new() }
    }
}

messaging_platform::service_config!(Config,
    secrets: |c| {
        use messaging_platform::secrets::Secret;
        let mut secrets =
            vec![Secret::credential("twilio.auth_token", &c.twilio.auth_token), Secret::key("callback_secret", &c.callback_secret)];
        if !c.inbound_email_secret.is_empty() {
            secrets.push(Secret::key("inbound_email_secret", &c.inbound_email_secret));
        }
        secrets
    },
    switches: |c| [("sendgrid_events_unsigned", c.sendgrid_events_unsigned)]
);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    relay: Relay,
    listener: tokio::net::TcpListener,
    sendgrid_key: Option<messaging_domain::signing::SendgridKey>,
}

pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    anyhow::ensure!(!config.twilio.auth_token.is_empty(), "twilio.auth_token is required to verify webhooks");
    let sendgrid_key = match config.sendgrid_public_key.trim() {
        "" => None,
        key => Some(
            messaging_domain::signing::SendgridKey::parse(key)
                .ok_or_else(|| anyhow::anyhow!("sendgrid_public_key is not a base64 DER P-256 public key"))?,
        ),
    };
    let runtime = Runtime::connect(
        &config.common,
        "delivery-status",
        &[streams::MESSAGE_EVENTS, streams::DIRECTORY, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let relay = runtime.relay(SCHEMA);
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    Ok(App { config, runtime, relay, listener, sendgrid_key })
}

impl App {
    /// The webhook server's address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let commits = commits::Commits::start(self.runtime.pool.clone(), self.relay.clone());
        let state = Arc::new(webhook::WebhookState {
            pool: self.runtime.pool.clone(),
            relay: self.relay.clone(),
            commits,
            public_base_url: self.config.public_base_url.clone(),
            twilio_auth_token: self.config.twilio.auth_token.clone(),
            token_secret: self.config.callback_secret.as_bytes().to_vec(),
            sendgrid_key: self.sendgrid_key.clone(),
            sendgrid_unsigned: self.config.sendgrid_events_unsigned,
            inbound_email_secret: self.config.inbound_email_secret.clone(),
        });
        let provider_http = self.config.common.tls.http_client(std::time::Duration::from_secs(10))?;
        let stuck_task = (!self.config.twilio.account_sid.is_empty()).then(|| {
            let check = stuck::StuckCheck {
                base_url: self.config.twilio.base_url.clone(),
                account_sid: self.config.twilio.account_sid.clone(),
                auth_token: self.config.twilio.auth_token.clone(),
                after: std::time::Duration::from_secs(self.config.stuck_after_secs),
                interval: std::time::Duration::from_millis(self.config.stuck_check_interval_ms.max(10)),
                unknown_after: std::time::Duration::from_secs(self.config.delivery_unknown_after_secs),
            };
            tokio::spawn(stuck::run(state.clone(), check, provider_http, shutdown.clone()))
        });
        tracing::info!(listen = %self.listener.local_addr()?, "webhook server listening");
        let router = edge::bounded(webhook::router(state), &self.config.edge);
        let server = tokio::spawn(edge::serve(self.listener, router, self.config.edge.clone(), shutdown.clone()));
        let handler = Arc::new(attempts::AttemptHandler {
            relay: self.relay.clone(),
            token_secret: self.config.callback_secret.as_bytes().to_vec(),
        });
        let pool = self.runtime.pool.clone();
        // One batch at a time, split by account into side-by-side transactions: a message's events
        // come close together, and transactions holding one message's row would wait on each other.
        let spec = ConsumerSpec::of(&consumers::DELIVERY_STATUS).batched(1, 200).lanes(4);
        let directory_spec = ConsumerSpec::of(&consumers::DELIVERY_STATUS_DIRECTORY).batched(2, 100);
        let directory_task = tokio::spawn(bus::batch::run(
            self.runtime.jetstream.clone(),
            "delivery-status",
            directory_spec,
            pool.clone(),
            Arc::new(directory::DirectoryHandler { relay: self.relay.clone() }),
            shutdown.clone(),
        ));
        bus::batch::run(self.runtime.jetstream.clone(), "delivery-status", spec, pool, handler, shutdown.clone())
            .await?;
        directory_task.await??;
        if let Some(task) = stuck_task {
            let _ = task.await;
        }
        let _ = server.await;
        let _ = relay_task.await;
        Ok(())
    }
}
