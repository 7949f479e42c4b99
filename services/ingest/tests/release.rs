//! Requests held through quiet hours are re-checked when released: a cancelled or moved job's
//! confirmation is dropped (the move's own confirmation goes instead), a customer's changed
//! preference and the account's current settings are what dispatch gets, and quiet hours that now
//! end later hold the request again.

mod kit;

use chrono::{DateTime, Duration, Utc};
use messaging_proto::bus::NotificationRequest;
use messaging_proto::time::datetime;
use prost::Message as _;
use serde_json::{Value, json};

fn customer(id: &str, sms: bool) -> Value {
    json!({"id": id, "name": "Dana Reyes", "phone": "+15125550199", "email": format!("{id}@example.com"),
           "notifications": {"sms": sms, "email": true}})
}

fn job(id: &str, starts_at: DateTime<Utc>) -> Value {
    json!({"id": id, "title": "Water heater install", "starts_at": starts_at, "ends_at": starts_at + Duration::hours(2)})
}

/// The notification requests in ingest's outbox, by job id.
async fn released(pool: &sqlx::PgPool) -> Vec<NotificationRequest> {
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM ingest.outbox WHERE subject LIKE 'notify.%' ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("outbox");
    payloads.iter().map(|p| NotificationRequest::decode(p.as_slice()).expect("a request")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_are_rechecked_when_quiet_hours_end() -> anyhow::Result<()> {
    let kit = kit::Kit::start("release").await?;
    // 22:00 in Chicago: inside quiet hours (21:00–08:00).
    let night: DateTime<Utc> = "2026-12-03T04:00:00Z".parse()?;
    let morning: DateTime<Utc> = "2026-12-03T14:30:00Z".parse()?; // 08:30 in Chicago
    let starts: DateTime<Utc> = "2026-12-05T15:00:00Z".parse()?;
    kit.clock.set(night);
    let at = |seconds: i64| night + Duration::seconds(seconds);
    kit.apply(&kit::account("a1", "acc_ace", at(0), "+15125550100", ("21:00", "08:00"))).await?;
    kit.apply(&kit::account("a2", "acc_late", at(0), "+15125550101", ("21:00", "08:00"))).await?;
    for (n, account, customer_id) in
        [(1, "acc_ace", "cus_1"), (2, "acc_ace", "cus_2"), (3, "acc_ace", "cus_3"), (4, "acc_late", "cus_4")]
    {
        let body = json!({"customer": customer(customer_id, true), "job": job(&format!("job_{n}"), starts)});
        kit.apply(&kit::event(&format!("s{n}"), "job.scheduled", account, at(1), body)).await?;
    }
    assert_eq!(kit.scheduler.tick().await?.deferred_released, 0, "all four held");
    assert!(released(&kit.pool).await.is_empty());

    // During the night: job 1 cancelled, job 2 moved a day, customer 3 turns SMS off, and acc_late's
    // quiet hours now end at 10:00.
    let cancel = json!({"customer": customer("cus_1", true), "job": job("job_1", starts)});
    kit.apply(&kit::event("c1", "job.cancelled", "acc_ace", at(2), cancel)).await?;
    let moved = starts + Duration::days(1);
    let reschedule = json!({"customer": customer("cus_2", true), "job": job("job_2", moved)});
    kit.apply(&kit::event("r2", "job.rescheduled", "acc_ace", at(2), reschedule)).await?;
    kit.apply(&kit::event("u3", "customer.updated", "acc_ace", at(2), json!({"customer": customer("cus_3", false)})))
        .await?;
    kit.apply(&kit::account("a3", "acc_late", at(2), "+15125550101", ("21:00", "10:00"))).await?;

    kit.clock.set(morning);
    let tick = kit.scheduler.tick().await?;
    assert_eq!((tick.deferred_released, tick.deferred_dropped, tick.deferred_postponed), (2, 2, 1), "{tick:?}");
    let requests = released(&kit.pool).await;
    let jobs: Vec<(String, Option<DateTime<Utc>>)> = requests
        .iter()
        .map(|r| r.job.as_ref().map(|j| (j.job_id.clone(), datetime(j.starts_at.as_ref()))).unwrap_or_default())
        .collect();
    assert_eq!(jobs, [("job_2".to_owned(), Some(moved)), ("job_3".to_owned(), Some(starts))], "{requests:#?}");
    let third = requests[1].customer.clone().unwrap_or_default();
    assert!(!third.sms_allowed && third.email_allowed, "released with the customer as they are now: {third:?}");

    // acc_late's request waits for its new end of quiet hours (10:00 in Chicago), then goes.
    kit.clock.set("2026-12-03T16:00:00Z".parse()?);
    let tick = kit.scheduler.tick().await?;
    assert_eq!(tick.deferred_released, 1, "{tick:?}");
    let last =
        released(&kit.pool).await.into_iter().find(|r| r.account.as_ref().is_some_and(|a| a.account_id == "acc_late"));
    assert_eq!(last.and_then(|r| r.account).map(|a| a.quiet_end), Some("10:00".to_owned()), "current settings");
    Ok(())
}
