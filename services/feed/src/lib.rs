//! feed: the Messages page's read model and `FeedService`. It projects message events into
//! `feed.messages` and answers the dashboard over gRPC, every call scoped by the token's account.

mod account;
mod attach;
mod auth;
mod changes;
mod convert;
pub mod directory;
mod grpc;
mod limits;
pub mod matches;
mod page;
mod project;
pub mod projector;
mod readers;
mod resend;
pub mod scope;
mod scoped;
mod send;
pub mod store;
mod templates;
pub mod threads;
mod waiting;
mod watch;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use messaging_platform::bus::{self, ConsumerSpec, consumers, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use messaging_proto::v1::feed_service_server::FeedServiceServer;
use messaging_proto::v1::template_service_server::TemplateServiceServer;
use serde::{Deserialize, Serialize};
use tonic::transport::server::TcpIncoming;

pub use auth::Authenticator;

/// How long open gRPC streams may outlive the consumers at shutdown.
const STREAMS_GRACE: Duration = Duration::from_secs(3);

/// feed's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    /// gRPC listen address.
    pub listen: String,
    /// gRPC-Web and the Messages page's listen address (HTTP/1.1 and HTTP/2); empty: not served.
    pub web_listen: String,
    /// The built page's directory (`make web` writes `web/dist`); absent: gRPC-Web only.
    pub web_root: String,
    /// HS256 secret for dashboard tokens.
    pub jwt_secret: String,
    /// A PEM file with an RSA public key: RS256 tokens it verifies are accepted too. Empty: HS256 only.
    pub jwt_public_key_file: String,
    /// How long WatchFeed cursors stay resumable (the change log's retention), in hours.
    pub watch_retention_hours: u64,
    /// WatchFeed streams per account and per connection; read connections per account.
    pub limits: limits::FeedLimits,
    /// How long after its job is completed or cancelled a technician still sees its customer, in days.
    pub technician_recent_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        // Every feed query is an index lookup; one that runs longer is cancelled, not queued behind.
        common.database.statement_timeout_ms = 3000;
        Self {
            common,
            listen: "127.0.0.1:50051".into(),
            web_listen: "127.0.0.1:8090".into(),
            web_root: "web/dist".into(),
            jwt_secret: String::new(),
            jwt_public_key_file: String::new(),
            watch_retention_hours: 24,
            limits: limits::FeedLimits::default(),
            technician_recent_days: 14,
        }
    }
}

messaging_platform::service_config!(Config,
    secrets: |c| [messaging_platform::secrets::Secret::key("jwt_secret", &c.jwt_secret)],
    switches: |_c| []
);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    listener: tokio::net::TcpListener,
    web: Option<(tokio::net::TcpListener, Arc<page::Page>)>,
    authenticator: Authenticator,
}

pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    anyhow::ensure!(config.jwt_secret.len() >= 16, "jwt_secret must be at least 16 characters");
    let mut authenticator = Authenticator::hs256(&config.jwt_secret);
    if !config.jwt_public_key_file.is_empty() {
        let pem = std::fs::read(&config.jwt_public_key_file)
            .map_err(|e| anyhow::anyhow!("jwt_public_key_file {}: {e}", config.jwt_public_key_file))?;
        authenticator = authenticator.with_rs256(&pem)?;
    }
    let runtime = Runtime::connect(
        &config.common,
        "feed",
        &[streams::MESSAGE_EVENTS, streams::DIRECTORY, streams::NOTIFY, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let web = if config.web_listen.is_empty() {
        None
    } else {
        let page = page::Page::load(std::path::Path::new(&config.web_root))
            .map_err(|e| anyhow::anyhow!("web_root {}: {e}", config.web_root))?;
        if page.is_empty() {
            tracing::warn!(web_root = %config.web_root, "the Messages page is not built (make web); serving gRPC-Web only");
        }
        Some((tokio::net::TcpListener::bind(&config.web_listen).await?, Arc::new(page)))
    };
    Ok(App { config, runtime, listener, web, authenticator })
}

impl App {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<FeedServiceServer<grpc::Feed>>().await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(messaging_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(messaging_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let authenticator = self.authenticator.clone();
        let relay = self.runtime.relay("feed");
        let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));
        let (signals, _) = tokio::sync::broadcast::channel(1024);
        let listen_task = tokio::spawn(changes::listen(self.runtime.pool.clone(), signals.clone(), shutdown.clone()));
        let retention = Duration::from_secs(self.config.watch_retention_hours.max(1) * 3600);
        let prune_task = tokio::spawn(prune(self.runtime.pool.clone(), retention, shutdown.clone()));
        let service = grpc::Feed {
            pool: self.runtime.pool.clone(),
            relay,
            signals,
            shutdown: shutdown.clone(),
            retention,
            sizes: matches::AccountSizes::default(),
            readers: readers::Readers::new(
                messaging_platform::db::connect_options(&self.config.common.database, "feed")?,
                self.config.common.database.max_connections as usize,
                match self.config.limits.readers_per_account {
                    0 => (self.config.common.database.max_connections as usize / 2).max(1),
                    share => share,
                },
            ),
            streams: limits::Streams::new(&self.config.limits),
            recent: Duration::from_secs(u64::from(self.config.technician_recent_days) * 86_400),
        };
        let templates = templates::Templates {
            pool: self.runtime.pool.clone(),
            relay: service.relay.clone(),
            recent: service.recent,
        };
        let feed = FeedServiceServer::with_interceptor(service, {
            let authenticator = authenticator.clone();
            move |request| authenticator.intercept(request)
        });
        let templates =
            TemplateServiceServer::with_interceptor(templates, move |request| authenticator.intercept(request));

        let web = self.web.map(|(listener, page)| {
            let routes = tonic::service::Routes::new(feed.clone()).add_service(templates.clone());
            tokio::spawn(web::serve(listener, routes, page, shutdown.clone()))
        });
        tracing::info!(listen = %self.listener.local_addr()?, "gRPC listening");
        // Replies are small: without TCP_NODELAY, Nagle's algorithm meets the client's delayed ACK
        // and a reply waits 40 ms.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server_shutdown = shutdown.clone();
        let reporter = health_reporter.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .trace_fn(|request| {
                    let span = tracing::info_span!("grpc", otel.kind = "server", rpc.method = %request.uri().path());
                    messaging_platform::bus::trace::adopt_http_parent(&span, request.headers());
                    span
                })
                .add_service(health_service)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(feed)
                .add_service(templates)
                .serve_with_incoming_shutdown(incoming, async move {
                    server_shutdown.cancelled().await;
                    reporter.set_not_serving::<FeedServiceServer<grpc::Feed>>().await;
                })
                .await
                .map_err(anyhow::Error::from)
        });
        // One batch at a time, split by account into side-by-side transactions: a message's events
        // come close together, and transactions holding one message's row would wait on each other.
        let spec = ConsumerSpec::of(&consumers::FEED).batched(1, 200).lanes(4);
        let listings = ConsumerSpec::of(&consumers::FEED_LISTINGS).batched(2, 100);
        let directory_task = tokio::spawn(bus::batch::run(
            self.runtime.jetstream.clone(),
            "feed",
            listings,
            self.runtime.pool.clone(),
            Arc::new(directory::Directory),
            shutdown.clone(),
        ));
        let jobs_task = tokio::spawn(bus::batch::run(
            self.runtime.jetstream.clone(),
            "feed",
            ConsumerSpec::of(&consumers::FEED_JOBS).batched(1, 100),
            self.runtime.pool.clone(),
            Arc::new(directory::Directory),
            shutdown.clone(),
        ));
        let projector = Arc::new(projector::Projector);
        bus::batch::run(
            self.runtime.jetstream.clone(),
            "feed",
            spec,
            self.runtime.pool.clone(),
            projector,
            shutdown.clone(),
        )
        .await?;
        directory_task.await??;
        jobs_task.await??;
        // Unary calls finish within the grace period; streams nobody closes (a health Watch) do not
        // hold the process: they are cut after a few seconds more.
        for (name, mut server) in [("gRPC", Some(server)), ("gRPC-Web", web)]
            .into_iter()
            .filter_map(|(name, server)| server.map(|s| (name, s)))
        {
            match tokio::time::timeout(STREAMS_GRACE, &mut server).await {
                Ok(joined) => joined??,
                Err(_) => {
                    tracing::warn!(server = name, "streams still open after the grace period; closing them");
                    server.abort();
                }
            }
        }
        let _ = tokio::join!(relay_task, listen_task, prune_task);
        Ok(())
    }
}

/// Deletes WatchFeed changes older than the retention, and waiting items long gone, every minute.
async fn prune(pool: sqlx::PgPool, retention: Duration, shutdown: Shutdown) {
    loop {
        match changes::prune(&pool, retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old feed changes pruned"),
            Err(error) => tracing::warn!(%error, "pruning feed changes failed"),
        }
        if let Err(error) = waiting::prune(&pool).await {
            tracing::warn!(%error, "pruning finished waiting items failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}
