//! Every service's pool cancels a statement that runs past `database.statement_timeout_ms`
//! (30 s unless configured), while the migrations run without it; and it plans every execution
//! for its own arguments, never from a cached generic plan made when the tables were smaller.

use messaging_integration_tests::{Infra, Scratch};
use messaging_platform::config::DatabaseConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_time_out_but_migrations_do_not() -> anyhow::Result<()> {
    let dir = Scratch::new("database");
    let infra = Infra::start(&dir, 0, 0, false).await?;
    let shutdown = messaging_platform::Shutdown::new();
    let defaults = DatabaseConfig { url: infra.database_url(), migrate: false, ..Default::default() };
    let pool = messaging_platform::db::connect(&defaults, "ingest", &shutdown).await?;
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&pool).await?;
    assert_eq!(timeout, "30s", "the default");
    let planning: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&pool).await?;
    assert_eq!(planning, "force_custom_plan");
    let random_page_cost: String = sqlx::query_scalar("SHOW random_page_cost").fetch_one(&pool).await?;
    assert_eq!(random_page_cost, "1.1");
    pool.close().await;

    // A 1 ms timeout: every migration would be cancelled under it, yet they all run.
    let tight = DatabaseConfig { statement_timeout_ms: 1, migrate: true, ..defaults.clone() };
    let pool = messaging_platform::db::connect(&tight, "ingest", &shutdown).await?;
    // Counted on a connection with the default timeout: under 1 ms even a count can be cancelled
    // on a busy machine.
    let counting = messaging_platform::db::connect(&defaults, "ingest", &shutdown).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&counting).await?;
    assert_eq!(applied as usize, messaging_platform::db::migrator().iter().count());
    counting.close().await;
    let slow = sqlx::query("SELECT pg_sleep(0.2)").execute(&pool).await;
    let error = slow.expect_err("cancelled").to_string();
    assert!(error.contains("statement timeout"), "{error}");
    pool.close().await;
    Ok(())
}
