//! A business number or send address is one account's: an `account.updated` claiming one another
//! account holds is refused with a `conflict:` reason and changes nothing, even when two accounts
//! claim it at the same moment; once released, it can be taken.

use std::sync::Arc;

use chrono::Utc;
use messaging_domain::event::{self, JobEvent};
use messaging_ingest::{EventHandler, IngestError};
use messaging_integration_tests::Infra;
use messaging_platform::bus::Relay;
use messaging_platform::clock::SystemClock;
use serde_json::json;
use sqlx::PgPool;

fn updated(event_id: &str, account: &str, number: &str, email: &str) -> JobEvent {
    let payload = json!({
        "event_id": event_id, "type": "account.updated", "occurred_at": Utc::now(), "account_id": account,
        "account": {"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": number, "email_from": email}
    });
    let subject = format!("jobs.{account}.account.updated");
    event::parse_job_event(&subject, payload.to_string().as_bytes(), Utc::now()).expect("a valid event")
}

/// Applies `event` in a transaction of its own, committed only when it applied.
async fn apply(pool: &PgPool, handler: &EventHandler, event: &JobEvent) -> Result<bool, IngestError> {
    let mut tx = pool.begin().await.expect("begin");
    let applied = handler.apply(&mut tx, event).await?;
    tx.commit().await.expect("commit");
    Ok(applied)
}

async fn holder_of(pool: &PgPool, number: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT account_id FROM ingest.accounts WHERE sms_number = $1 ORDER BY account_id")
        .bind(number)
        .fetch_all(pool)
        .await
        .expect("query")
}

fn refusal(result: Result<bool, IngestError>) -> String {
    match result {
        Err(error @ IngestError::Taken(_)) => error.to_string(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_or_address_another_account_holds_is_refused_until_released() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("msg-ingest-senders-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let infra = Infra::start(&dir, 0, 0, false).await?;
    let pool = PgPool::connect(&infra.database_url()).await?;
    messaging_platform::db::migrator().run(&pool).await?;
    let jetstream = async_nats::jetstream::new(async_nats::connect(infra.nats_url()).await?);
    let relay = Relay::new(pool.clone(), jetstream, messaging_ingest::SCHEMA, 1 << 20);
    let handler = Arc::new(EventHandler::new(relay, Arc::new(SystemClock::default())));

    assert!(apply(&pool, &handler, &updated("e1", "acc_a", "+15125550100", "office@a.example")).await?);
    // Another account naming A's number, or A's address in other letters: refused, nothing stored.
    let number = refusal(apply(&pool, &handler, &updated("e2", "acc_b", "+15125550100", "office@b.example")).await);
    assert_eq!(number, "conflict: sms_number +15125550100 is already held by account acc_a; release it there first");
    let address = refusal(apply(&pool, &handler, &updated("e3", "acc_b", "+15125550101", "Office@A.example")).await);
    assert!(address.starts_with("conflict: email_from office@a.example"), "{address}");
    assert_eq!(holder_of(&pool, "+15125550100").await, ["acc_a"]);
    assert_eq!(holder_of(&pool, "+15125550101").await, Vec::<String>::new(), "the refused event changed nothing");
    // A's own update keeps its number; once A moves, B may take it.
    assert!(apply(&pool, &handler, &updated("e4", "acc_a", "+15125550100", "office@a.example")).await?);
    assert!(apply(&pool, &handler, &updated("e5", "acc_a", "+15125550102", "office@a.example")).await?);
    assert!(apply(&pool, &handler, &updated("e6", "acc_b", "+15125550100", "office@b.example")).await?);
    assert_eq!(holder_of(&pool, "+15125550100").await, ["acc_b"]);

    // Two accounts claiming one free number at once: the second waits for the first and is refused.
    let mut first = pool.begin().await?;
    assert!(handler.apply(&mut first, &updated("e7", "acc_c", "+15125550103", "office@c.example")).await?);
    let racing = {
        let (pool, handler) = (pool.clone(), handler.clone());
        tokio::spawn(async move {
            apply(&pool, &handler, &updated("e8", "acc_d", "+15125550103", "office@d.example")).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!racing.is_finished(), "the second claim waits for the first transaction");
    first.commit().await?;
    let second = refusal(racing.await?);
    assert!(second.contains("held by account acc_c"), "{second}");
    assert_eq!(holder_of(&pool, "+15125550103").await, ["acc_c"]);
    drop(infra);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
