//! A business number or send address is one account's: an `account.updated` claiming one another
//! account holds is refused with a `conflict:` reason and changes nothing, even when two accounts
//! claim it at the same moment; once released, it can be taken.

mod kit;

use chrono::Utc;
use messaging_domain::event::JobEvent;
use messaging_ingest::IngestError;
use serde_json::json;
use sqlx::PgPool;

fn updated(event_id: &str, account: &str, number: &str, email: &str) -> JobEvent {
    let settings =
        json!({"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": number, "email_from": email});
    kit::event(event_id, "account.updated", account, Utc::now(), json!({ "account": settings }))
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
    let kit = kit::Kit::start("senders").await?;
    let pool = &kit.pool;

    assert!(kit.apply(&updated("e1", "acc_a", "+15125550100", "office@a.example")).await?);
    // Another account naming A's number, or A's address in other letters: refused, nothing stored.
    let number = refusal(kit.apply(&updated("e2", "acc_b", "+15125550100", "office@b.example")).await);
    assert_eq!(number, "conflict: sms_number +15125550100 is already held by account acc_a; release it there first");
    let address = refusal(kit.apply(&updated("e3", "acc_b", "+15125550101", "Office@A.example")).await);
    assert!(address.starts_with("conflict: email_from office@a.example"), "{address}");
    assert_eq!(holder_of(pool, "+15125550100").await, ["acc_a"]);
    assert_eq!(holder_of(pool, "+15125550101").await, Vec::<String>::new(), "the refused event changed nothing");
    // A's own update keeps its number; once A moves, B may take it.
    assert!(kit.apply(&updated("e4", "acc_a", "+15125550100", "office@a.example")).await?);
    assert!(kit.apply(&updated("e5", "acc_a", "+15125550102", "office@a.example")).await?);
    assert!(kit.apply(&updated("e6", "acc_b", "+15125550100", "office@b.example")).await?);
    assert_eq!(holder_of(pool, "+15125550100").await, ["acc_b"]);

    // Two accounts claiming one free number at once: the second waits for the first and is refused.
    let mut first = pool.begin().await?;
    assert!(kit.handler.apply(&mut first, &updated("e7", "acc_c", "+15125550103", "office@c.example")).await?);
    let racing = {
        let (pool, handler) = (pool.clone(), kit.handler.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("begin");
            let result = handler.apply(&mut tx, &updated("e8", "acc_d", "+15125550103", "office@d.example")).await;
            if result.is_ok() {
                tx.commit().await.expect("commit");
            }
            result
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!racing.is_finished(), "the second claim waits for the first transaction");
    first.commit().await?;
    let second = refusal(racing.await?);
    assert!(second.contains("held by account acc_c"), "{second}");
    assert_eq!(holder_of(pool, "+15125550103").await, ["acc_c"]);
    Ok(())
}
