//! Who works a job: ingest keeps the lead technician and the helpers its events name by id, and
//! lists each job (customer, state, times, technicians) on `directory.<account>.job.<job>` in the
//! transaction that stored it; a reassignment replaces them, and an older event changes nothing. A
//! job that names no technician by id goes unlisted.

mod kit;

use chrono::{Duration, Utc};
use messaging_integration_tests::database::outbox_rows;
use messaging_proto::BusMessage;
use messaging_proto::bus::JobListing;
use serde_json::{Value, json};

const ACCOUNT: &str = "acc_jobs";

/// A job event's body: Dana's job 1, led by `lead` with `helpers`.
fn booked(lead: &str, helpers: &[&str]) -> Value {
    let starts = Utc::now() + Duration::days(2);
    let helpers: Vec<Value> = helpers.iter().map(|id| json!({"id": id, "name": id})).collect();
    json!({
        "customer": {"id": "cus_dana", "name": "Dana Reyes", "phone": "+15125550199"},
        "job": {"id": "job_1", "title": "Water heater", "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "technician": {"id": lead, "name": "Lead"}, "helpers": helpers},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_technicians_are_kept_listed_and_replaced_only_by_newer_events() -> anyhow::Result<()> {
    let kit = kit::Kit::start("assignments").await?;
    let now = Utc::now();
    kit.apply(&kit::account("a1", ACCOUNT, now - Duration::hours(1), "+15125550100", ("00:00", "00:00"))).await?;
    let apply = |id: &str, kind: &str, at, lead: &str, helpers: &[&str]| {
        kit::event(id, kind, ACCOUNT, at, booked(lead, helpers))
    };
    kit.apply(&apply("e1", "job.scheduled", now - Duration::minutes(30), "tech_luis", &["tech_kim", "tech_luis"]))
        .await?;
    // Reassigned: Jordan leads, no helpers. An older event arriving late changes nothing.
    kit.apply(&apply("e2", "job.rescheduled", now - Duration::minutes(10), "tech_jordan", &[])).await?;
    kit.apply(&apply("e3", "job.rescheduled", now - Duration::minutes(20), "tech_kim", &["tech_luis"])).await?;
    // A job that never named a technician by id is not listed.
    let mut unnamed = booked("tech_x", &[]);
    unnamed["job"]["id"] = json!("job_2");
    unnamed["job"]["technician"] = json!({"name": "Someone"});
    kit.apply(&kit::event("e4", "job.scheduled", ACCOUNT, now - Duration::minutes(5), unnamed)).await?;

    let stored: (Option<String>, Vec<String>) =
        sqlx::query_as("SELECT technician_id, helper_ids FROM ingest.jobs WHERE account_id = $1 AND job_id = 'job_1'")
            .bind(ACCOUNT)
            .fetch_one(&kit.pool)
            .await?;
    assert_eq!(stored, (Some("tech_jordan".to_owned()), vec![]));

    let listings: Vec<JobListing> = outbox_rows(&kit.pool, "ingest", ACCOUNT)
        .await
        .into_iter()
        .filter(|(subject, _, _)| subject == &format!("directory.{ACCOUNT}.job.job_1"))
        .map(|(_, _, payload)| JobListing::from_bytes(&payload).expect("a job listing"))
        .collect();
    let assigned: Vec<(String, Vec<String>)> =
        listings.iter().map(|l| (l.technician_id.clone(), l.helper_ids.clone())).collect();
    assert_eq!(
        assigned,
        [("tech_luis".to_owned(), vec!["tech_kim".to_owned()]), ("tech_jordan".to_owned(), vec![])],
        "one listing per event that changed the job; the late one none"
    );
    assert!(listings.iter().all(|l| l.customer_id == "cus_dana" && l.state == "scheduled"));
    let listed_jobs: Vec<String> = outbox_rows(&kit.pool, "ingest", ACCOUNT)
        .await
        .into_iter()
        .filter(|(subject, _, _)| subject.starts_with(&format!("directory.{ACCOUNT}.job.")))
        .map(|(subject, _, _)| subject)
        .collect();
    assert!(listed_jobs.iter().all(|s| s.ends_with(".job_1")), "{listed_jobs:?}");
    Ok(())
}
