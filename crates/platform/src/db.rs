//! The Postgres pool and the migrations in `migrations/`, embedded at build time.

use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, PgPool, SqlSafeStr};

use crate::config::DatabaseConfig;
use crate::shutdown::Shutdown;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Every schema's migrations; sqlx serialises concurrent runs with an advisory lock.
pub fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// How to open one connection as configured (URL, statement timeout), named for `service`.
pub fn connect_options(config: &DatabaseConfig, service: &str) -> anyhow::Result<PgConnectOptions> {
    // The service's name in pg_stat_activity and Postgres's logs.
    let mut options: PgConnectOptions = config.url.parse::<PgConnectOptions>()?.application_name(service);
    // Every execution is planned for its own arguments and the tables as they are now. A cached
    // generic plan is made once, from the statistics of that moment, and kept until the next
    // ANALYZE: one made while a table was small (a new deployment, an outbox drained when last
    // analyzed) scans the whole table on every call once it has grown, and it cannot see how
    // many rows a batch's arrays hold.
    // The services' hot rows are in memory, where a row fetched through an index costs about what
    // one read in sequence does; Postgres's default (4.0) prices it for a spinning disk and would
    // scan a whole table of tens of thousands of rows rather than look up a batch's hundred.
    options = options.options([("plan_cache_mode", "force_custom_plan"), ("random_page_cost", "1.1")]);
    if config.statement_timeout_ms > 0 {
        options = options.options([("statement_timeout", config.statement_timeout_ms.to_string())]);
    }
    Ok(options)
}

/// Connects, retrying until Postgres answers or shutdown, then migrates if configured.
pub async fn connect(config: &DatabaseConfig, service: &str, shutdown: &Shutdown) -> anyhow::Result<PgPool> {
    // A connection is pinged before use only when it has sat idle for a second (it may have been
    // cut meanwhile, by a restart say); a busy pool's connections go straight back to work, with
    // no round trip that does nothing.
    let options = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(1) {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        });
    let connect_options = connect_options(config, service)?;
    let mut delay = Duration::from_millis(100);
    let pool = loop {
        match options.clone().connect_with(connect_options.clone()).await {
            Ok(pool) => break pool,
            Err(error) => {
                tracing::warn!(%error, "Postgres not reachable yet");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for Postgres"),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    };
    if config.migrate {
        // On a connection of its own with no statement timeout: building an index on a large table
        // may rightly take longer than any query the service runs.
        let mut connection = config.url.parse::<PgConnectOptions>()?.application_name(service).connect().await?;
        migrator().run(&mut connection).await?;
    }
    Ok(pool)
}
