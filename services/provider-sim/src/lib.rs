//! A Twilio-compatible SMS provider simulator for development and tests: the Messages API
//! (create, fetch, list) with Twilio's validation, error format and test numbers; configurable
//! latency, faults and delivery outcomes; status callbacks and inbound messages signed exactly as
//! Twilio signs them. It stands in for the one component that cannot run here: the paid provider.

mod api;
mod callbacks;
mod control;
pub mod https;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use state::{Faults, SimConfig, SimMessage};

/// A bound simulator, ready to serve.
pub struct Simulator {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<state::SimState>,
}

/// Binds the listener.
pub async fn build(config: SimConfig) -> anyhow::Result<Simulator> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let tls = match config.tls_cert_file.as_str() {
        "" => None,
        cert => Some(https::acceptor(cert, &config.tls_key_file)?),
    };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    Ok(Simulator { listener, tls, state: Arc::new(state::SimState::new(config, http)) })
}

impl Simulator {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = Router::new().merge(api::routes()).merge(control::routes()).with_state(self.state);
        let stopped = async move { shutdown.cancelled().await };
        match self.tls {
            None => axum::serve(self.listener, router).with_graceful_shutdown(stopped).await?,
            Some(tls) => {
                let listener = https::TlsListener::new(self.listener, tls);
                axum::serve(listener, router).with_graceful_shutdown(stopped).await?
            }
        }
        Ok(())
    }
}
