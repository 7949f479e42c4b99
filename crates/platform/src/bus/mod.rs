//! NATS JetStream plumbing: connecting, the stream catalog, the transactional outbox relay,
//! durable consumers kept to their spec, the consumer loop (one message at a time, or batches
//! in one transaction) and trace-context headers.

pub mod batch;
pub mod consumer;
pub mod consumers;
mod dead_letter;
mod direct;
pub mod durable;
pub mod outbox;
mod settle;
pub mod streams;
pub mod trace;

use std::time::Duration;

use async_nats::jetstream;

use crate::config::NatsConfig;
use crate::shutdown::Shutdown;

pub use batch::{TxHandler, decode_all, in_rounds, one_by_one, write_all};
pub use consumer::{ConsumerSpec, Delivery, Handler, Outcome, consume_span};
pub use dead_letter::enqueue_partial as dead_letter_partial;
pub use outbox::{OutboxMessage, Relay};

/// Connects to NATS, retrying until it answers or shutdown; reconnects forever after that.
pub async fn connect(config: &NatsConfig, service: &str, shutdown: &Shutdown) -> anyhow::Result<async_nats::Client> {
    let mut delay = Duration::from_millis(100);
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name(service)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5));
        if !config.user.is_empty() {
            options = options.user_and_password(config.user.clone(), config.password.clone());
        }
        let servers: Vec<&str> = config.url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let attempt = tokio::time::timeout(Duration::from_secs(5), options.connect(servers.as_slice())).await;
        match attempt {
            Ok(Ok(client)) => {
                let mut ready = false;
                for _ in 0..50 {
                    if client.connection_state() == async_nats::connection::State::Connected {
                        ready = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if ready {
                    return Ok(client);
                }
                tracing::warn!(url = %config.url, "NATS not reachable yet");
            }
            Ok(Err(error)) => tracing::warn!(%error, "NATS not reachable yet"),
            Err(_) => tracing::warn!("NATS connect timed out"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for NATS"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// A JetStream context with the given streams created or updated.
pub async fn jetstream(
    client: async_nats::Client,
    streams: &[streams::StreamSpec],
    replicas: usize,
    shutdown: &Shutdown,
) -> anyhow::Result<jetstream::Context> {
    let context = jetstream::new(client);
    // A busy or restarting server can time out a stream request; keep trying, as connect does.
    let mut delay = Duration::from_millis(200);
    loop {
        match streams::ensure(&context, streams, replicas).await {
            Ok(()) => return Ok(context),
            Err(error) if shutdown.is_cancelled() => return Err(error),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "streams not ensured yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down before the streams were ensured"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
