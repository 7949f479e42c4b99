//! feed: the Messages page's read model and `FeedService`. It projects message events into
//! `feed.messages` and answers the dashboard over gRPC, every call scoped by the token's account.

mod attach;
mod auth;
mod grpc;
mod projector;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use messaging_platform::bus::{self, ConsumerSpec, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use messaging_proto::v1::feed_service_server::FeedServiceServer;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::TcpListenerStream;

pub use auth::Authenticator;

/// feed's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    /// gRPC listen address.
    pub listen: String,
    /// HS256 secret for dashboard tokens.
    pub jwt_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { common: CommonConfig::default(), listen: "127.0.0.1:50051".into(), jwt_secret: String::new() }
    }
}

messaging_platform::service_config!(Config);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    listener: tokio::net::TcpListener,
}

pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    anyhow::ensure!(config.jwt_secret.len() >= 16, "jwt_secret must be at least 16 characters");
    let runtime = Runtime::connect(
        &config.common,
        "feed",
        &[streams::MESSAGE_EVENTS, streams::DIRECTORY, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    Ok(App { config, runtime, listener })
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
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(messaging_proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let authenticator = Authenticator::hs256(&self.config.jwt_secret);
        let feed =
            FeedServiceServer::with_interceptor(grpc::Feed { pool: self.runtime.pool.clone() }, move |request| {
                authenticator.intercept(request)
            });

        tracing::info!(listen = %self.listener.local_addr()?, "gRPC listening");
        let incoming = TcpListenerStream::new(self.listener);
        let server_shutdown = shutdown.clone();
        let reporter = health_reporter.clone();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(feed)
                .serve_with_incoming_shutdown(incoming, async move {
                    server_shutdown.cancelled().await;
                    reporter.set_not_serving::<FeedServiceServer<grpc::Feed>>().await;
                }),
        );
        let projector = Arc::new(projector::Projector { pool: self.runtime.pool.clone() });
        let spec = ConsumerSpec::new(streams::MESSAGE_EVENTS.name, "feed", "message.>");
        let listings = ConsumerSpec::new(streams::DIRECTORY.name, "feed-directory", "directory.*.customer.*");
        let attach_task = tokio::spawn(bus::consumer::run(
            self.runtime.jetstream.clone(),
            "feed",
            listings,
            Arc::new(attach::Attacher { pool: self.runtime.pool.clone() }),
            shutdown.clone(),
        ));
        bus::consumer::run(self.runtime.jetstream.clone(), "feed", spec, projector, shutdown.clone()).await?;
        attach_task.await??;
        server.await??;
        Ok(())
    }
}
