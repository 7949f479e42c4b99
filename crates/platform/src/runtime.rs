//! The connections every service opens at start-up (Postgres, NATS, JetStream with its streams)
//! and the health server that probes them.

use async_nats::jetstream;
use sqlx::PgPool;

use crate::bus::{self, Relay, streams::StreamSpec};
use crate::config::CommonConfig;
use crate::shutdown::Shutdown;
use crate::{db, http};

/// A service's live dependencies.
#[derive(Clone)]
pub struct Runtime {
    pub nats: async_nats::Client,
    pub pool: PgPool,
    pub jetstream: jetstream::Context,
}

impl Runtime {
    /// Connects (waiting for Postgres and NATS to answer), migrates, and ensures `streams`.
    pub async fn connect(
        common: &CommonConfig,
        service: &'static str,
        streams: &[StreamSpec],
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let pool = db::connect(&common.database, service, shutdown).await?;
        let nats = bus::connect(&common.nats, service, shutdown).await?;
        let jetstream = bus::jetstream(nats.clone(), streams, common.nats.stream_replicas, shutdown).await?;
        Ok(Self { nats, pool, jetstream })
    }

    /// The outbox relay of `schema`.
    pub fn relay(&self, schema: &'static str) -> Relay {
        Relay::new(self.pool.clone(), self.jetstream.clone(), schema, self.nats.server_info().max_payload)
    }

    /// Serves `/livez` and `/readyz` (probing NATS and Postgres) if configured.
    pub async fn serve_health(&self, common: &CommonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
        let probe = http::dependency_probe(self.nats.clone(), Some(self.pool.clone()));
        http::serve(&common.health, probe, shutdown).await?;
        Ok(())
    }
}
