//! Waiting for the whole system to go idle: every durable consumer drained and acknowledged and
//! every outbox empty, seen twice in a row. Tests use it before asserting that something did
//! NOT happen, instead of sleeping.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};

use messaging_platform::bus::consumers;

use crate::eventually;
use crate::stack::Stack;

const OUTBOXES: &[&str] = &["ingest", "dispatch", "sms_gateway", "email_gateway", "delivery_status", "feed"];

async fn idle(jetstream: &jetstream::Context, pool: &sqlx::PgPool) -> bool {
    // Every consumer must answer: one that cannot be read is not known to be idle.
    let backlog = backlog(jetstream).await;
    if backlog.len() < consumers::ALL.len() || backlog.iter().any(|(_, n)| *n > 0) {
        return false;
    }
    for schema in OUTBOXES {
        let query = format!("SELECT count(*) FROM {schema}.outbox");
        match sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query)).fetch_one(pool).await {
            Ok(0) => {}
            _ => return false,
        }
    }
    true
}

/// Messages waiting or delivered and not yet acknowledged, by consumer (stream/durable); a consumer
/// that cannot be read is left out.
pub async fn backlog(jetstream: &jetstream::Context) -> Vec<(String, u64)> {
    let mut backlog = Vec::new();
    for def in consumers::ALL {
        let Ok(source) = jetstream.get_stream(def.stream.name).await else { continue };
        let Ok(mut consumer) = source.get_consumer::<pull::Config>(def.durable).await else { continue };
        if let Ok(info) = consumer.info().await {
            let name = format!("{}/{}", def.stream.name, def.durable);
            backlog.push((name, info.num_pending + info.num_ack_pending as u64));
        }
    }
    backlog
}

impl Stack {
    /// Returns once nothing is left to do anywhere (twice in a row, 300 ms apart).
    pub async fn quiesce(&self) -> anyhow::Result<()> {
        let jetstream = jetstream::new(crate::nats_connect(&self.infra.nats_url()).await?);
        let pool = sqlx::PgPool::connect(&self.infra.database_url()).await?;
        eventually(Duration::from_secs(60), "the system to go idle", || {
            let (jetstream, pool) = (jetstream.clone(), pool.clone());
            async move {
                if !idle(&jetstream, &pool).await {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                idle(&jetstream, &pool).await.then_some(())
            }
        })
        .await?;
        pool.close().await;
        Ok(())
    }
}
