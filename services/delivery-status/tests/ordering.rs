//! Every ordering and duplication of one message's reports, applied through the real store on
//! Postgres: the final status is the highest-ranked one reported (the domain's state machine),
//! it never moves backwards on the way, the first stored error survives later reports, and only a
//! report that moves the status (or its error) is published to the feed. A batch of reports
//! about several messages, applied set-based, ends exactly where the same reports one by one end.

use chrono::Utc;
use messaging_delivery_status::store::{self, Applied, Report};
use messaging_domain::{Channel, Status};
use messaging_integration_tests::Database;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The reports a message can get, each with its own dedupe key (a repeat is a duplicate).
fn report(message_id: &str, which: usize) -> (Report, Status, Option<&'static str>) {
    let (status, key, code): (Status, &str, Option<&'static str>) = match which {
        0 => (Status::Unknown, "attempt:unknown", None),
        1 => (Status::Sent, "attempt:sent", None),
        2 => (Status::Sent, "twilio:sent", None),
        3 => (Status::Delivered, "twilio:delivered", None),
        4 => (Status::Failed, "twilio:undelivered", Some("30003")),
        5 => (Status::Failed, "twilio:failed", Some("30005")),
        _ => (Status::Read, "twilio:read", None),
    };
    let report = Report {
        message_id: message_id.to_owned(),
        account_id: "acc_prop".into(),
        channel: Some(Channel::Sms),
        status,
        provider_id: Some(format!("SM{message_id}")),
        failure_reason: code.map(|_| "undelivered".to_owned()),
        error_code: code.map(str::to_owned),
        error_text: None,
        source: "provider",
        dedupe_key: format!("{message_id}:{key}"),
        detail: serde_json::json!({ "which": which }),
        occurred_at: Utc::now(),
        implies: None,
        recipient: None,
        unsubscribe_token: None,
        span: tracing::Span::none(),
    };
    (report, status, code)
}

#[test]
fn any_order_and_any_repeat_of_reports_ends_in_the_same_state() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("prop-ordering")).expect("postgres");
    let pool = database.pool.clone();
    let mut runner = TestRunner::new(Config { cases: 96, failure_persistence: None, ..Config::default() });
    let sequences = proptest::collection::vec(0usize..7, 1..12);
    runner
        .run(&sequences, |sequence| {
            let message_id = format!("msg_{:032x}", uuid::Uuid::new_v4().as_u128());
            let mut expected: Option<Status> = None;
            let mut first_error: Option<&str> = None;
            for which in &sequence {
                let (report, status, code) = report(&message_id, *which);
                let before = current(&runtime, &pool, &message_id);
                let applied = runtime.block_on(store::apply(&pool, &report)).expect("applied");
                expected = Some(expected.map_or(status, |s| s.apply(status)));
                first_error = first_error.or(code);
                let (now, error) = current(&runtime, &pool, &message_id).expect("a row");
                // The feed hears of a report only when it moved the status or its error, and the
                // report's own status is the one that stands.
                let moved = before.as_ref() != Some(&(now, error.clone()));
                prop_assert_eq!(
                    applied == Applied::Advanced,
                    moved && now == status,
                    "report {} after {:?} in {:?}: {:?}",
                    which,
                    before,
                    sequence,
                    applied
                );
                if let Some((was, _)) = before {
                    prop_assert!(now.rank() >= was.rank(), "{was} went back to {now} in {sequence:?}");
                }
                prop_assert_eq!(Some(now), expected, "after {:?}", sequence);
                prop_assert_eq!(error.as_deref(), first_error, "stored error in {:?}", sequence);
            }
            Ok(())
        })
        .expect("every ordering ends in the state machine's state");
    drop(database);
}

#[test]
fn a_batch_of_reports_ends_where_the_same_reports_one_by_one_end() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("prop-batches")).expect("postgres");
    let pool = database.pool.clone();
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let sequences = proptest::collection::vec((0usize..3, 0usize..7), 1..24);
    runner
        .run(&sequences, |sequence| {
            let case = uuid::Uuid::new_v4().as_u128();
            let id = |copy: u128, n: usize| format!("msg_{:030x}{copy}{n}", case >> 8);
            let reports = |copy: u128| -> Vec<Report> {
                sequence.iter().map(|(n, which)| report(&id(copy, *n), *which).0).collect()
            };
            let (batch, single) = (reports(1), reports(2));
            let batched = runtime.block_on(async {
                let mut tx = pool.begin().await.expect("begin");
                let applied = store::apply_all(&mut tx, &batch.iter().collect::<Vec<_>>()).await.expect("applied");
                tx.commit().await.expect("commit");
                applied
            });
            let one_by_one: Vec<Applied> =
                single.iter().map(|r| runtime.block_on(store::apply(&pool, r)).expect("applied")).collect();
            prop_assert_eq!(&batched, &one_by_one, "what each report did, after {:?}", sequence);
            for n in 0..3 {
                let (a, b) = (snapshot(&runtime, &pool, &id(1, n)), snapshot(&runtime, &pool, &id(2, n)));
                prop_assert_eq!(a, b, "message {} after {:?}", n, sequence);
            }
            Ok(())
        })
        .expect("a batch and the same reports one by one agree");
    drop(database);
}

/// A message's row and timeline, with its own id taken out, to compare.
fn snapshot(runtime: &tokio::runtime::Runtime, pool: &sqlx::PgPool, message_id: &str) -> String {
    runtime.block_on(async {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT (status, status_rank, failure_reason, error_code, error_text, replace(provider_id, message_id, ''))::text
             FROM delivery_status.messages WHERE message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(pool)
        .await
        .expect("row");
        let timeline: Vec<String> = sqlx::query_scalar(
            "SELECT source || ' ' || status || ' ' || replace(dedupe_key, message_id, '') FROM delivery_status.timeline
             WHERE message_id = $1 ORDER BY 1",
        )
        .bind(message_id)
        .fetch_all(pool)
        .await
        .expect("timeline");
        format!("{row:?} {timeline:?}")
    })
}

#[test]
fn a_report_naming_another_accounts_message_changes_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let database = Database::start("prop-tenant").await.expect("postgres");
        let pool = &database.pool;
        let message_id = "msg_00000000000000000000000000000abc";
        let (sent, _, _) = report(message_id, 1);
        store::apply(pool, &sent).await.expect("applied");
        let (mut foreign, _, _) = report(message_id, 4);
        foreign.account_id = "acc_intruder".into();
        store::apply(pool, &foreign).await.expect("applied");
        let row: (String, String, Option<String>) =
            sqlx::query_as("SELECT account_id, status, error_code FROM delivery_status.messages WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(pool)
                .await
                .expect("row");
        assert_eq!(row, ("acc_prop".to_owned(), "sent".to_owned(), None));
    });
}

fn current(
    runtime: &tokio::runtime::Runtime,
    pool: &sqlx::PgPool,
    message_id: &str,
) -> Option<(Status, Option<String>)> {
    let row: Option<(String, Option<String>)> = runtime
        .block_on(
            sqlx::query_as("SELECT status, error_code FROM delivery_status.messages WHERE message_id = $1")
                .bind(message_id)
                .fetch_optional(pool),
        )
        .expect("query");
    row.map(|(status, code)| (Status::parse(&status).expect("a status"), code))
}
