//! Customer listings applied as one batch (set-based, a round per repeat of a customer) end where
//! the same listings one by one end: newest wins, whatever the order and repetition.

use messaging_delivery_status::directory::DirectoryHandler;
use messaging_integration_tests::Database;
use messaging_integration_tests::database::{batch_and_one_by_one, delivery};
use messaging_platform::bus::{Delivery, Relay};
use messaging_proto::bus::{CustomerListing, CustomerSnapshot};
use proptest::test_runner::{Config, TestRunner};

fn listing(account: &str, n: usize, version: i64) -> Delivery {
    let listing = CustomerListing {
        account_id: account.to_owned(),
        customer: Some(CustomerSnapshot {
            customer_id: format!("cus_{n}"),
            name: format!("Customer {n} v{version}"),
            phone: format!("+1512555{n}{version:03}"),
            ..Default::default()
        }),
        as_of: Some(prost_types::Timestamp { seconds: 1_800_000_000 + version, nanos: 0 }),
    };
    delivery(&listing)
}

#[test]
fn listings_in_a_batch_end_where_they_end_one_by_one() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (database, handler) = runtime.block_on(async {
        let database = Database::start("status-listing-batches").await.expect("postgres");
        let jetstream = async_nats::jetstream::new(async_nats::connect(database.infra.nats_url()).await.expect("nats"));
        let relay = Relay::new(database.pool.clone(), jetstream, "delivery_status", 1 << 20);
        (database, DirectoryHandler { relay })
    });
    let pool = database.pool.clone();
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let listings = proptest::collection::vec((0usize..3, 0i64..4), 1..16);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&listings, |listings| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (batched, single) = (format!("acc_dir_a{case}"), format!("acc_dir_b{case}"));
            runtime.block_on(async {
                let batch: Vec<Delivery> = listings.iter().map(|(n, v)| listing(&batched, *n, *v)).collect();
                let one_by_one: Vec<Delivery> = listings.iter().map(|(n, v)| listing(&single, *n, *v)).collect();
                batch_and_one_by_one(&pool, &handler, "delivery-status", &batch, &one_by_one).await;
                let state = |account: String| {
                    let pool = pool.clone();
                    async move {
                        sqlx::query_scalar::<_, String>(
                            "SELECT (customer_id, name, phone, email, as_of)::text FROM delivery_status.contacts
                             WHERE account_id = $1 ORDER BY customer_id",
                        )
                        .bind(account)
                        .fetch_all(&pool)
                        .await
                        .expect("contacts")
                    }
                };
                assert_eq!(state(batched).await, state(single).await, "after {listings:?}");
            });
            Ok(())
        })
        .expect("a batch of listings and the same listings one by one agree");
}
