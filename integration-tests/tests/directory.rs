//! The directory ingest publishes: a customer's listing goes out when what it lists changes (a
//! new customer, a new name, number, email or consent), not with every event that repeats it, and
//! never for an event older than what is stored; the feed's search knows the newest.

use chrono::{Duration, Utc};
use futures::StreamExt;
use messaging_integration_tests::client::start_with;
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_proto::v1::ListMessagesRequest;
use serde_json::json;

const ACCOUNT: &str = "acc_dir";
const SUBJECT: &str = "directory.acc_dir.customer.cus_dana";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_listed_again_only_when_their_details_change() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("directory", &setup).await?;
    stack.quiesce().await?;
    let watcher = messaging_integration_tests::nats_connect(&stack.infra.nats_url()).await?;
    let mut listings = watcher.subscribe(SUBJECT).await?;
    watcher.flush().await?;

    let now = Utc::now();
    let dana = customer("cus_dana", "Dana Reyes", "+15125550142", "");
    let booked = |id: &str, at| {
        event(id, "job.scheduled", ACCOUNT, at, json!({"customer": dana, "job": job("job_1", now + Duration::days(3))}))
    };
    // One event at a time, each applied before the next is published.
    publisher.event(&booked("e1", now)).await?;
    stack.quiesce().await?;
    publisher
        .event(&event("e2", "customer.updated", ACCOUNT, now + Duration::seconds(1), json!({"customer": dana})))
        .await?;
    stack.quiesce().await?;
    let mut renamed = dana.clone();
    renamed["name"] = "Dana Reyes-Kim".into();
    let rename_at = now + Duration::seconds(2);
    publisher.event(&event("e3", "customer.updated", ACCOUNT, rename_at, json!({"customer": renamed}))).await?;
    stack.quiesce().await?;
    // An older event with the old name arriving late changes nothing and lists nothing.
    let late = now + Duration::milliseconds(1500);
    publisher.event(&event("e4", "customer.updated", ACCOUNT, late, json!({"customer": dana}))).await?;
    stack.quiesce().await?;

    let mut names = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(std::time::Duration::from_millis(500), listings.next()).await {
        let listing = <messaging_proto::bus::CustomerListing as prost::Message>::decode(message.payload)?;
        names.push(listing.customer.unwrap_or_default().name);
    }
    assert_eq!(names, ["Dana Reyes", "Dana Reyes-Kim"], "one listing when new, one when renamed");
    // The dashboard's search knows the new name.
    let search = |query: &str| ListMessagesRequest { query: query.to_owned(), ..Default::default() };
    let found = dashboard.clone().list(search("Reyes-Kim")).await?;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].customer.as_ref().map(|c| c.customer_id.as_str()), Some("cus_dana"));
    stack.stop().await;
    Ok(())
}
