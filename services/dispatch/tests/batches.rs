//! dispatch writes a batch of requests set-based, in rounds; any mix, order and repetition of
//! requests (the same request again, customers sharing a number, a number that opted out, SMS
//! and email) applied as one batch ends exactly where the same requests one by one end: the
//! messages, which of them carries the opt-out notice, and what goes out on each subject in order.
//! A request delivered again (its events lost to a crash before they were published) publishes
//! the same events under the same ids, its send commands byte for byte, from what was stored.

use std::collections::BTreeMap;

use messaging_dispatch::Dispatcher;
use messaging_integration_tests::Database;
use messaging_integration_tests::database::{batch_and_one_by_one, outbox_rows};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_platform::bus::{Delivery, TxHandler};
use proptest::test_runner::{Config, TestRunner};

mod common;
use common::request;
use sqlx::PgPool;

/// The account's messages (by key), first-SMS claims and outbox, as text to compare.
async fn state(pool: &PgPool, account: &str) -> String {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT (idempotency_key, channel, message_type, recipient, body, failure_reason, segments, encoding,
                 (SELECT true FROM dispatch.sms_recipients r WHERE r.first_message_id = m.message_id))::text
         FROM dispatch.messages m WHERE account_id = $1 ORDER BY idempotency_key",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("messages");
    let ids: BTreeMap<String, String> =
        sqlx::query_as("SELECT message_id, idempotency_key FROM dispatch.messages WHERE account_id = $1")
            .bind(account)
            .fetch_all(pool)
            .await
            .expect("ids")
            .into_iter()
            .collect();
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (subject, id, _) in outbox_rows(pool, "dispatch", account).await {
        let named = ids.iter().fold(id, |id, (message_id, key)| id.replace(message_id, key));
        sent.entry(subject.replace(account, "")).or_default().push(named);
    }
    format!("{}\n{sent:#?}", rows.join("\n")).replace(account, "")
}

#[test]
fn a_batch_ends_where_the_same_requests_one_by_one_end() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-batches")).expect("postgres");
    let pool = database.pool.clone();
    let dispatcher = runtime.block_on(common::dispatcher(&database));
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let batches = proptest::collection::vec(0usize..12, 1..24);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&batches, |specs| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (batched, single) = (format!("acc_a{case}"), format!("acc_b{case}"));
            runtime.block_on(async {
                for account in [&batched, &single] {
                    sqlx::query(
                        "INSERT INTO dispatch.suppressions (account_id, channel, address, reason, opted_out, as_of)
                         VALUES ($1, 'sms', '+15125550102', 'stop', true, now())",
                    )
                    .bind(account)
                    .execute(&pool)
                    .await
                    .expect("opt-out");
                }
                let batch: Vec<Delivery> = specs.iter().map(|spec| request(&batched, *spec)).collect();
                let one_by_one: Vec<Delivery> = specs.iter().map(|spec| request(&single, *spec)).collect();
                batch_and_one_by_one(&pool, &dispatcher, "dispatch", &batch, &one_by_one).await;
                let (batched, single) = (state(&pool, &batched).await, state(&pool, &single).await);
                assert_eq!(batched, single, "after {specs:?}");
            });
            Ok(())
        })
        .expect("a batch and the same requests one by one agree");
}

/// What handling `deliveries` as one batch collects to publish once it commits: subject, id,
/// and the payload of each send command (the events' own timestamps differ between deliveries).
async fn published(pool: &PgPool, dispatcher: &Dispatcher, deliveries: &[Delivery]) -> Vec<(String, String, Vec<u8>)> {
    let mut tx = pool.begin().await.expect("begin");
    let (outcomes, rows) = outbox::collecting(dispatcher.handle_batch(&mut tx, deliveries, "dispatch")).await;
    assert!(outcomes.iter().all(|o| *o == messaging_platform::bus::Outcome::Ack), "{outcomes:?}");
    tx.commit().await.expect("commit");
    let command = |m: &OutboxMessage| if m.subject.starts_with("send.") { m.payload.clone() } else { Vec::new() };
    rows.iter().map(|row| row.message()).map(|m| (m.subject.clone(), m.id.clone(), command(m))).collect()
}

#[test]
fn a_redelivered_request_publishes_again_what_its_first_delivery_published() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-redelivery")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        sqlx::query(
            "INSERT INTO dispatch.suppressions (account_id, channel, address, reason, opted_out, as_of)
             VALUES ('acc_r', 'sms', '+15125550102', 'stop', true, now())",
        )
        .execute(&pool)
        .await
        .expect("opt-out");
        // SMS and email to a number texted for the first time (the SMS with the opt-out notice),
        // both to the same number again, email only, and both to a number that opted out (its SMS
        // recorded failed: `queued` and the failed `attempt`).
        let deliveries: Vec<Delivery> = [0, 3, 2, 9].iter().map(|id| request("acc_r", *id)).collect();
        let first = published(&pool, &dispatcher, &deliveries).await;
        let again = published(&pool, &dispatcher, &deliveries).await;
        let subjects: Vec<&str> = first.iter().map(|(subject, _, _)| subject.as_str()).collect();
        assert_eq!(subjects.len(), 14, "{subjects:#?}");
        assert_eq!(subjects.iter().filter(|s| s.ends_with(".attempt")).count(), 1, "{subjects:#?}");
        assert!(first.iter().any(|(_, _, command)| String::from_utf8_lossy(command).contains("STOP")), "{first:#?}");
        assert_eq!(again, first, "the second delivery publishes the first's events");
        let alone = published(&pool, &dispatcher, &deliveries[..1]).await;
        assert_eq!(alone[..], first[..alone.len()], "and so does a delivery of one of them alone");
    });
}
