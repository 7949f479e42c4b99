//! A migrated Postgres (beside a nats-server) in a throwaway directory: the kit for testing a
//! handler on a real database.

use sqlx::PgPool;

use crate::{Infra, Scratch};

/// Everything stops and the directory goes when it is dropped (fields drop in this order).
pub struct Database {
    pub pool: PgPool,
    pub infra: Infra,
    _dir: Scratch,
}

impl Database {
    /// Postgres and nats-server in `msg-<name>-<pid>`, every migration applied.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let dir = Scratch::new(name);
        let infra = Infra::start(&dir, 0, 0, false).await?;
        let pool = PgPool::connect(&infra.database_url()).await?;
        messaging_platform::db::migrator().run(&pool).await?;
        Ok(Self { pool, infra, _dir: dir })
    }
}
