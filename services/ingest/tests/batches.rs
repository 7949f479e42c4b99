//! ingest writes a batch of job events set-based, in rounds; any mix, order and repetition of
//! events (older ones arriving late, the same event twice, a job booked, moved, cancelled, on its
//! way and done) applied as one batch ends exactly where the same events one by one end: the
//! snapshots, reminders and on-my-way throttle, and what goes out on each subject in its order.

mod kit;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use messaging_integration_tests::database::{batch_and_one_by_one, outbox_rows};
use messaging_platform::bus::Delivery;
use messaging_proto::bus::NotificationWaiting;
use proptest::test_runner::{Config, TestRunner};
use prost::Message as _;
use serde_json::{Value, json};
use sqlx::PgPool;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 4, 15, 0, 0).single().expect("time") + Duration::minutes(minutes)
}

fn delivery(event_id: &str, kind: &str, account: &str, occurred_at: DateTime<Utc>, body: Value) -> Delivery {
    let mut payload = json!({"event_id": event_id, "type": kind, "occurred_at": occurred_at, "account_id": account});
    if let (Some(payload), Value::Object(body)) = (payload.as_object_mut(), body) {
        payload.extend(body);
    }
    Delivery {
        subject: format!("jobs.{account}.{kind}"),
        payload: payload.to_string().into_bytes().into(),
        headers: None,
        delivered: 1,
        stream_sequence: 0,
    }
}

/// One generated event: a redelivery of an earlier one (below 3) or a new one, its kind, customer,
/// job, the customer's version (name, consent), the job's start (in days) and when it happened.
type Spec = (usize, usize, usize, usize, usize, i64, i64);

/// The batch `specs` describe, for `account`.
fn events(account: &str, specs: &[Spec]) -> Vec<Delivery> {
    let mut events: Vec<Delivery> = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        let event = match events.get(spec.0) {
            Some(earlier) if spec.0 < 3 => earlier.clone(),
            _ => event(account, n, *spec),
        };
        events.push(event);
    }
    events
}

fn event(account: &str, n: usize, (_, kind, customer, job_n, version, starts_in, minute): Spec) -> Delivery {
    let customer_id = format!("cus_{customer}");
    let customer = json!({"id": customer_id, "name": format!("Dana v{version}"), "phone": format!("+1512555019{customer}"),
                          "email": format!("{customer_id}@example.com"), "notifications": {"sms": version != 2, "email": true}});
    let starts = at(0) + Duration::days(starts_in);
    let job = json!({"id": format!("job_{job_n}"), "title": "Water heater", "starts_at": starts,
                     "ends_at": starts + Duration::hours(2)});
    let invoice = json!({"id": format!("inv_{job_n}"), "number": "1001", "amount_cents": 12_500, "currency": "USD",
                         "url": "https://pay.example/1001"});
    let payment = json!({"id": format!("pay_{job_n}"), "amount_cents": 12_500, "currency": "USD", "invoice_id": format!("inv_{job_n}")});
    let (kind, body) = match kind {
        0 => ("job.scheduled", json!({"customer": customer, "job": job})),
        1 => ("job.rescheduled", json!({"customer": customer, "job": job})),
        2 => ("job.cancelled", json!({"customer": customer, "job": job})),
        3 => ("job.en_route", json!({"customer": customer, "job": job})),
        4 => ("job.completed", json!({"customer": customer, "job": job, "invoice": invoice})),
        5 => ("invoice.sent", json!({"customer": customer, "invoice": invoice})),
        6 => ("payment.received", json!({"customer": customer, "payment": payment})),
        _ => ("customer.updated", json!({"customer": customer})),
    };
    delivery(&format!("{account}_e{n}"), kind, account, at(minute), body)
}

/// Everything ingest keeps and sends for `account`, as text to compare (the account id taken out).
async fn state(pool: &PgPool, account: &str) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT 'customer ' || (customer_id, name, phone, email, sms_allowed, email_allowed, as_of)::text FROM ingest.customers WHERE account_id = $1
         UNION ALL SELECT 'job ' || (job_id, customer_id, starts_at, state, as_of)::text FROM ingest.jobs WHERE account_id = $1
         UNION ALL SELECT 'reminder ' || (job_id, starts_at, due_at)::text FROM ingest.reminders WHERE account_id = $1
         UNION ALL SELECT 'on my way ' || (job_id, last_sent_at)::text FROM ingest.on_my_way WHERE account_id = $1
         UNION ALL SELECT 'processed ' || replace(event_id, $1, '') FROM ingest.processed_events WHERE account_id = $1
         ORDER BY 1",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("tables");
    // What goes out, in order, for each subject (and each waiting item): its order is all a consumer sees.
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (subject, id, payload) in outbox_rows(pool, "ingest", account).await {
        let (stream, what) = if subject.ends_with(".waiting") {
            let mut waiting = NotificationWaiting::decode(payload.as_slice()).expect("waiting");
            waiting.as_of = None;
            (format!("{subject} {}", waiting.key), format!("{waiting:?}"))
        } else {
            (subject, format!("{id} {}", payload.len()))
        };
        sent.entry(stream.replace(account, "")).or_default().push(what.replace(account, ""));
    }
    format!("{}\n{sent:#?}", tables.join("\n").replace(account, ""))
}

#[test]
fn a_batch_ends_where_the_same_events_one_by_one_end() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let kit = runtime.block_on(kit::Kit::start("batches")).expect("kit");
    kit.clock.set(at(30));
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let spec = (0usize..12, 0usize..8, 0usize..3, 0usize..3, 0usize..3, 1i64..4, -30i64..30);
    let batches = proptest::collection::vec(spec, 1..24);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&batches, |specs| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (batched, single) = (format!("acc_a{case}"), format!("acc_b{case}"));
            runtime.block_on(async {
                for (n, account) in [&batched, &single].into_iter().enumerate() {
                    let number = format!("+1512{}{case:06}", 6 + n);
                    let settings =
                        kit::account(&format!("{account}_set"), account, at(-60), &number, ("21:00", "08:00"));
                    kit.apply(&settings).await.expect("account");
                }
                let (batch, one_by_one) = (events(&batched, &specs), events(&single, &specs));
                batch_and_one_by_one(&kit.pool, kit.handler.as_ref(), "ingest", &batch, &one_by_one).await;
                let (batched, single) = (state(&kit.pool, &batched).await, state(&kit.pool, &single).await);
                assert_eq!(batched, single, "after {specs:?}");
            });
            Ok(())
        })
        .expect("a batch and the same events one by one agree");
}
