//! Technician scope on a real Postgres: job listings applied by the directory handler make a
//! technician's customers — lead or helper, scheduled or on the way, or finished within the
//! window — a reassignment moves the customer, a late older listing changes nothing, and the same
//! technician id in another account sees nothing of this one.

use std::time::Duration;

use chrono::Utc;
use messaging_domain::{AccountId, TechnicianId};
use messaging_feed::directory::Directory;
use messaging_feed::scope::{self, Scope};
use messaging_integration_tests::Database;
use messaging_integration_tests::database::delivery;
use messaging_platform::bus::{Outcome, TxHandler};
use messaging_proto::bus::JobListing;
use sqlx::PgPool;

const WINDOW: Duration = Duration::from_secs(14 * 86_400);

fn listing(
    account: &str,
    job: &str,
    customer: &str,
    state: &str,
    lead: &str,
    helpers: &[&str],
    days_ago: i64,
) -> JobListing {
    let at = Utc::now() - chrono::Duration::days(days_ago);
    JobListing {
        account_id: account.into(),
        job_id: job.into(),
        customer_id: customer.into(),
        state: state.into(),
        technician_id: lead.into(),
        helper_ids: helpers.iter().map(|h| (*h).to_owned()).collect(),
        as_of: Some(messaging_proto::time::timestamp(at)),
        ..Default::default()
    }
}

async fn apply(pool: &PgPool, listing: &JobListing) {
    let mut tx = pool.begin().await.expect("begin");
    assert_eq!(Directory.handle(&mut tx, &delivery(listing)).await, Outcome::Ack);
    tx.commit().await.expect("commit");
}

async fn customers_of(pool: &PgPool, account: &str, technician: &str) -> Vec<String> {
    let (account, technician) = (AccountId::parse(account).expect("id"), TechnicianId::parse(technician).expect("id"));
    match scope::resolve(pool, &account, Some(&technician), WINDOW).await.expect("scope") {
        Scope::Customers(ids) => {
            let mut ids: Vec<String> = ids.into_iter().collect();
            ids.sort();
            ids
        }
        Scope::Account => panic!("a technician is never the whole account"),
    }
}

#[test]
fn a_technicians_customers_follow_their_jobs() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("feed-scope")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        apply(&pool, &listing("acc_a", "job_1", "cus_1", "scheduled", "tech_a", &["tech_b", "tech_a"], 0)).await;
        apply(&pool, &listing("acc_a", "job_2", "cus_2", "en_route", "tech_b", &[], 0)).await;
        apply(&pool, &listing("acc_a", "job_3", "cus_3", "completed", "tech_a", &[], 13)).await;
        apply(&pool, &listing("acc_a", "job_4", "cus_4", "cancelled", "tech_a", &[], 15)).await;
        apply(&pool, &listing("acc_b", "job_1", "cus_9", "scheduled", "tech_a", &[], 0)).await;
        assert_eq!(
            customers_of(&pool, "acc_a", "tech_a").await,
            ["cus_1", "cus_3"],
            "lead now, and finished 13 days ago"
        );
        assert_eq!(customers_of(&pool, "acc_a", "tech_b").await, ["cus_1", "cus_2"], "helper, and lead on the way");
        assert_eq!(customers_of(&pool, "acc_b", "tech_a").await, ["cus_9"], "the same id elsewhere is another person");

        // Job 2 moves to tech_a; a late listing from before the move changes nothing.
        apply(&pool, &listing("acc_a", "job_2", "cus_2", "scheduled", "tech_a", &[], 0)).await;
        apply(&pool, &listing("acc_a", "job_2", "cus_2", "scheduled", "tech_b", &[], 1)).await;
        assert_eq!(customers_of(&pool, "acc_a", "tech_a").await, ["cus_1", "cus_2", "cus_3"]);
        assert_eq!(customers_of(&pool, "acc_a", "tech_b").await, ["cus_1"]);
        assert!(customers_of(&pool, "acc_a", "tech_z").await.is_empty(), "a technician with no jobs sees no one");
    });
}

fn queued(message_id: &str, customer: &str, seconds: i64) -> messaging_proto::bus::MessageQueued {
    messaging_proto::bus::MessageQueued {
        message_id: message_id.into(),
        account_id: "acc_a".into(),
        direction: messaging_domain::Direction::Outbound.to_proto(),
        channel: messaging_domain::Channel::Sms.to_proto(),
        r#type: messaging_domain::MessageType::AppointmentConfirmation.to_proto(),
        customer: Some(messaging_proto::bus::CustomerSnapshot { customer_id: customer.into(), ..Default::default() }),
        preview: format!("message {message_id}"),
        queued_at: Some(prost_types::Timestamp { seconds: 1_800_000_000 + seconds, nanos: 0 }),
        ..Default::default()
    }
}

/// Every page of the listing, walked by cursor: the ids in order.
async fn walk(pool: &PgPool, filter: &messaging_feed::store::Filter) -> Vec<String> {
    use messaging_feed::store::{self, Order};
    let (account, sizes) = (AccountId::parse("acc_a").expect("id"), messaging_feed::matches::AccountSizes::default());
    let mut conn = pool.acquire().await.expect("connection");
    let (mut ids, mut after) = (Vec::new(), None);
    loop {
        let (rows, next) = store::list(&mut conn, &sizes, &account, filter, after.as_ref(), 3, Order::NewestFirst)
            .await
            .expect("page");
        ids.extend(rows.into_iter().map(|r| r.message_id));
        match next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

#[test]
fn a_technicians_plain_page_lists_what_the_general_query_lists() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("feed-scope-page")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let projector = messaging_feed::projector::Projector;
        let mut events: Vec<messaging_platform::bus::Delivery> =
            (0..20).map(|n| delivery(&queued(&format!("m{n:02}"), &format!("cus_{}", n % 4), n * 10))).collect();
        // A status that came before its message's `queued`: a row with no direction yet, newest of all.
        let early = messaging_proto::bus::StatusChanged {
            message_id: "m99".into(),
            account_id: "acc_a".into(),
            status: messaging_domain::Status::Sent.to_proto(),
            occurred_at: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
            source: "gateway".into(),
            ..Default::default()
        };
        events.push(delivery(&early));
        for event in &events {
            let mut tx = pool.begin().await.expect("begin");
            assert_eq!(projector.handle(&mut tx, event).await, Outcome::Ack);
            tx.commit().await.expect("commit");
        }
        let scope = Some(vec!["cus_0".to_owned(), "cus_2".to_owned(), "cus_9".to_owned()]);
        let plain = messaging_feed::store::Filter { scope: scope.clone(), ..Default::default() };
        let general = messaging_feed::store::Filter {
            directions: vec!["outbound".into(), "inbound".into()],
            scope,
            ..Default::default()
        };
        let listed = walk(&pool, &plain).await;
        assert_eq!(listed, walk(&pool, &general).await);
        let expected: Vec<String> = (0..20).rev().filter(|n| n % 2 == 0).map(|n| format!("m{n:02}")).collect();
        assert_eq!(listed, expected, "cus_0's and cus_2's, newest first, none twice, none skipped");
    });
}
