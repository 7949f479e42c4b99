//! The projector writes a batch set-based, in rounds; any mix, order and repetition of message
//! events applied as one batch ends in exactly the state the same events leave applied one by
//! one, each in its own transaction: the rows, their timelines and the change log. The same holds
//! for directory listings (newest wins; a customer claims the unowned messages from their number).

use chrono::{DateTime, TimeZone, Utc};
use messaging_domain::{Channel, Direction, MessageType, Status};
use messaging_feed::directory::Directory;
use messaging_feed::projector::Projector;
use messaging_integration_tests::Database;
use messaging_integration_tests::database::{batch_and_one_by_one, delivery};
use messaging_platform::bus::Delivery;
use messaging_proto::bus::{CustomerListing, CustomerSnapshot, DeliveryUnknown, MessageQueued, StatusChanged};
use proptest::test_runner::{Config, TestRunner};
use sqlx::PgPool;

const ACCOUNT: &str = "acc_batch";

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    let time: DateTime<Utc> = Utc.timestamp_opt(1_800_000_000 + seconds, 0).single().expect("time");
    Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 })
}

/// Event `which` about `message_id`: queued, sent (gateway, provider), delivered, failed, unknown,
/// or the provider's "delivery unknown".
fn event(message_id: &str, which: usize) -> Delivery {
    let status = |status: Status, source: &str, code: &str, seconds: i64| StatusChanged {
        message_id: message_id.to_owned(),
        account_id: ACCOUNT.into(),
        status: status.to_proto(),
        occurred_at: at(seconds),
        failure_reason: if code.is_empty() { String::new() } else { "undelivered".into() },
        provider_error_code: code.to_owned(),
        provider_error_text: if code.is_empty() { String::new() } else { format!("error {code}") },
        source: source.to_owned(),
        ..Default::default()
    };
    match which {
        0 => delivery(&MessageQueued {
            message_id: message_id.to_owned(),
            account_id: ACCOUNT.into(),
            direction: Direction::Outbound.to_proto(),
            channel: Channel::Sms.to_proto(),
            r#type: MessageType::AppointmentConfirmation.to_proto(),
            customer: Some(CustomerSnapshot {
                customer_id: "cus_1".into(),
                name: "Dana Reyes".into(),
                phone: "+15125550199".into(),
                ..Default::default()
            }),
            preview: format!("Hi Dana, about {message_id}"),
            queued_at: at(0),
            ..Default::default()
        }),
        1 => delivery(&status(Status::Sent, "gateway", "", 1)),
        2 => delivery(&status(Status::Sent, "provider", "", 2)),
        3 => delivery(&status(Status::Delivered, "provider", "", 3)),
        4 => delivery(&status(Status::Failed, "provider", "30003", 4)),
        5 => delivery(&status(Status::Unknown, "gateway", "", 5)),
        _ => {
            delivery(&DeliveryUnknown { message_id: message_id.to_owned(), account_id: ACCOUNT.into(), sent_at: at(1) })
        }
    }
}

/// A message's row, timeline and change count, as text to compare.
async fn state(pool: &PgPool, message_id: &str) -> String {
    let row: Option<String> = sqlx::query_scalar(
        "SELECT (status, status_rank, failure_reason, sent_at, updated_at, provider_error_code, provider_error_text,
                 customer_name, replace(preview, message_id, ''), delivery_unknown)::text
         FROM feed.messages WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(pool)
    .await
    .expect("row");
    let timeline: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT status, source, detail FROM feed.timeline WHERE message_id = $1 ORDER BY status, source, detail",
    )
    .bind(message_id)
    .fetch_all(pool)
    .await
    .expect("timeline");
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM feed.changes WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .expect("changes");
    format!("{row:?} {timeline:?} {changes} changes")
}

#[test]
fn a_batch_ends_where_the_same_events_one_by_one_end() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("feed-batches")).expect("postgres");
    let pool = database.pool.clone();
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let events = proptest::collection::vec((0usize..3, 0usize..7), 1..24);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&events, |events| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = |copy: &str, n: usize| format!("msg_{copy}{case}x{n}");
            runtime.block_on(async {
                let batch: Vec<Delivery> = events.iter().map(|(n, which)| event(&id("a", *n), *which)).collect();
                let single: Vec<Delivery> = events.iter().map(|(n, which)| event(&id("b", *n), *which)).collect();
                batch_and_one_by_one(&pool, &Projector, "feed", &batch, &single).await;
                for n in 0..3 {
                    let (batched, single) = (state(&pool, &id("a", n)).await, state(&pool, &id("b", n)).await);
                    assert_eq!(batched, single, "message {n} after {events:?}");
                }
            });
            Ok(())
        })
        .expect("a batch and the same events one by one agree");
}

/// Version `version` of customer `n`'s listing in `account` (a later version is newer; the last
/// gives customer 1 the number an unknown sender wrote from).
fn listing(account: &str, n: usize, version: i64) -> Delivery {
    let phone = if n == 1 && version == 3 { "+15125550177".to_owned() } else { format!("+1512555{n}{version:03}") };
    delivery(&CustomerListing {
        account_id: account.to_owned(),
        customer: Some(CustomerSnapshot {
            customer_id: format!("cus_{n}"),
            name: format!("Customer {n} v{version}"),
            phone,
            ..Default::default()
        }),
        as_of: at(version),
    })
}

/// The account's customers and who owns its one message from an unknown number, as text.
async fn directory_state(pool: &PgPool, account: &str) -> String {
    let customers: Vec<String> = sqlx::query_scalar(
        "SELECT (customer_id, name, phone, search_name, phone_digits, as_of)::text FROM feed.customers
         WHERE account_id = $1 ORDER BY customer_id",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("customers");
    let owner: Option<String> =
        sqlx::query_scalar("SELECT customer_id || ' ' || customer_name FROM feed.messages WHERE account_id = $1")
            .bind(account)
            .fetch_optional(pool)
            .await
            .expect("owner");
    format!("{customers:?} {owner:?}")
}

#[test]
fn listings_in_a_batch_end_where_they_end_one_by_one() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("feed-listing-batches")).expect("postgres");
    let pool = database.pool.clone();
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let listings = proptest::collection::vec((0usize..3, 0i64..4), 1..16);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&listings, |listings| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (batched, single) = (format!("acc_dir_a{case}"), format!("acc_dir_b{case}"));
            runtime.block_on(async {
                for account in [&batched, &single] {
                    sqlx::query(
                        "INSERT INTO feed.messages (message_id, account_id, customer_phone, direction, channel,
                             status, status_rank, created_at, updated_at)
                         VALUES ($1, $2, '+15125550177', 'inbound', 'sms', 'received', 4, now(), now())",
                    )
                    .bind(format!("msg_{account}"))
                    .bind(account)
                    .execute(&pool)
                    .await
                    .expect("an unknown sender's message");
                }
                let batch: Vec<Delivery> = listings.iter().map(|(n, v)| listing(&batched, *n, *v)).collect();
                let one_by_one: Vec<Delivery> = listings.iter().map(|(n, v)| listing(&single, *n, *v)).collect();
                batch_and_one_by_one(&pool, &Directory, "feed", &batch, &one_by_one).await;
                let (a, b) = (directory_state(&pool, &batched).await, directory_state(&pool, &single).await);
                assert_eq!(a, b, "after {listings:?}");
                // The unknown sender's message belongs to customer 1 once their listing names the number.
                let owner: String = sqlx::query_scalar("SELECT customer_id FROM feed.messages WHERE account_id = $1")
                    .bind(&batched)
                    .fetch_one(&pool)
                    .await
                    .expect("owner");
                let named = listings.contains(&(1, 3));
                assert_eq!(owner, if named { "cus_1" } else { "" }, "after {listings:?}");
            });
            Ok(())
        })
        .expect("a batch of listings and the same listings one by one agree");
}
