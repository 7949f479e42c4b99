//! A realistic day for one business: the account, a handful of customers, jobs booked, techs on
//! the way, jobs completed, invoices and payments, published as the scheduling system would.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

struct Customer {
    id: &'static str,
    name: &'static str,
    phone: &'static str,
    email: &'static str,
}

const CUSTOMERS: &[Customer] = &[
    Customer { id: "cus_dana", name: "Dana Reyes", phone: "+1 (512) 555-0199", email: "dana@example.com" },
    Customer { id: "cus_marco", name: "Marco Bianchi", phone: "512.555.0142", email: "" },
    Customer { id: "cus_priya", name: "Priya Natarajan", phone: "", email: "priya@example.net" },
    Customer { id: "cus_sam", name: "Sam O'Connor", phone: "(737) 555-0117", email: "sam.oconnor@example.org" },
    Customer { id: "cus_lee", name: "Lee Park", phone: "+15005550009", email: "" },
];

fn customer(c: &Customer) -> Value {
    json!({"id": c.id, "name": c.name, "phone": c.phone, "email": c.email, "notifications": {"sms": true, "email": true}})
}

/// The day's events in order.
pub fn events(account: &str) -> Vec<Value> {
    let run = Utc::now().timestamp();
    let now = Utc::now();
    let mut seq = 0;
    let mut event = |kind: &str, body: Value| {
        seq += 1;
        let mut value = json!({
            "event_id": format!("evt_{run}_{seq:03}"),
            "type": kind,
            "occurred_at": (now + Duration::seconds(seq)).to_rfc3339(),
            "account_id": account,
        });
        if let (Some(target), Some(extra)) = (value.as_object_mut(), body.as_object()) {
            target.extend(extra.clone());
        }
        value
    };
    // Quiet hours are off (start = end) so the demo shows its messages at whatever hour it runs;
    // a real account keeps the default 21:00-08:00.
    let mut out = vec![event(
        "account.updated",
        json!({"account": {"name": "Ace Plumbing & Heating", "timezone": "America/Chicago", "sms_number": "+15125550100",
                            "email_from": "office@aceplumbing.example", "reminder_time": "09:00",
                            "quiet_hours": {"start": "00:00", "end": "00:00"}}}),
    )];
    let titles =
        ["Water heater install", "Leaky faucet repair", "Furnace tune-up", "Panel inspection", "Drain cleaning"];
    // Technicians by id, so a technician's token (`make token ROLE=technician TECHNICIAN=tech_kim`)
    // sees their own jobs' customers.
    let techs = [
        json!({"id": "tech_luis", "name": "Luis Ortega"}),
        json!({"id": "tech_kim", "name": "Kim Alvarez"}),
        json!({"id": "tech_jordan", "name": "Jordan Blake"}),
    ];
    for (i, c) in CUSTOMERS.iter().enumerate() {
        let starts = now + Duration::days(2) + Duration::hours(i as i64 * 2);
        let job = json!({"id": format!("job_{run}_{i}"), "title": titles[i % titles.len()],
                         "starts_at": starts.to_rfc3339(), "ends_at": (starts + Duration::hours(2)).to_rfc3339(),
                         "technician": techs[i % techs.len()], "address": format!("{} Elm St, Austin, TX", 10 + i)});
        out.push(event("job.scheduled", json!({"customer": customer(c), "job": job})));
        if i == 0 {
            // The first customer's day: this morning's visit done, the afternoon's tech on the way.
            let morning = now - Duration::hours(3);
            let done = json!({"id": format!("job_{run}_morning"), "title": "Water heater inspection",
                              "starts_at": morning.to_rfc3339(), "ends_at": (morning + Duration::hours(2)).to_rfc3339(),
                              "technician": techs[1], "address": "10 Elm St, Austin, TX"});
            let afternoon = now + Duration::minutes(20);
            let next = json!({"id": format!("job_{run}_afternoon"), "title": "Garbage disposal repair",
                              "starts_at": afternoon.to_rfc3339(), "ends_at": (afternoon + Duration::hours(1)).to_rfc3339(),
                              "technician": techs[2], "address": "10 Elm St, Austin, TX"});
            out.push(event("job.en_route", json!({"customer": customer(c), "job": next})));
            let invoice = json!({"id": "inv_1001", "number": "1001", "amount_cents": 48_500, "currency": "USD",
                                 "url": "https://pay.example.com/i/1001"});
            out.push(event("job.completed", json!({"customer": customer(c), "job": done, "invoice": invoice.clone()})));
            out.push(event(
                "payment.received",
                json!({"customer": customer(c), "payment": {"id": "pay_1", "amount_cents": 48_500,
                "currency": "USD", "invoice_id": "inv_1001", "receipt_url": "https://pay.example.com/r/1"}}),
            ));
        }
        if i == 3 {
            out.push(event(
                "invoice.sent",
                json!({"customer": customer(c), "invoice": {"id": "inv_1002", "number": "1002",
                "amount_cents": 12_000, "currency": "USD", "url": "https://pay.example.com/i/1002"}}),
            ));
        }
    }
    out
}

/// Publishes the day with JetStream; returns how many events were accepted.
pub async fn publish_day(nats_url: &str, account: &str) -> anyhow::Result<usize> {
    let client = async_nats::connect(nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let events = events(account);
    for event in &events {
        publish(&jetstream, account, event).await?;
        if event["type"] == "account.updated" {
            // Let ingest store the account before its jobs arrive (they would be retried otherwise).
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    Ok(events.len())
}

/// Publishes one job event of type `kind` for `account`, `body` holding its objects (`customer`,
/// `job`, …) as the event contract has them; returns its fresh event id.
pub async fn publish_event(nats_url: &str, account: &str, kind: &str, body: &Value) -> anyhow::Result<String> {
    anyhow::ensure!(body.is_object(), "--json must be a JSON object of the event's objects");
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    let id = format!("evt_{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let mut event =
        json!({"event_id": id, "type": kind, "occurred_at": Utc::now().to_rfc3339(), "account_id": account});
    if let (Some(target), Some(extra)) = (event.as_object_mut(), body.as_object()) {
        target.extend(extra.clone());
    }
    publish(&jetstream, account, &event).await?;
    Ok(id)
}

/// Publishes `event` on its subject with its id as `Nats-Msg-Id`, and waits for JetStream's ack.
async fn publish(jetstream: &async_nats::jetstream::Context, account: &str, event: &Value) -> anyhow::Result<()> {
    let subject = format!("jobs.{account}.{}", event["type"].as_str().unwrap_or_default());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event["event_id"].as_str().unwrap_or_default());
    jetstream.publish_with_headers(subject, headers, serde_json::to_vec(event)?.into()).await?.await?;
    Ok(())
}
