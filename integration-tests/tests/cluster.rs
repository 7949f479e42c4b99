//! The system on a 3-node NATS JetStream cluster (loopback), every stream replicated to all three
//! nodes: one node is killed with `kill -9` while bookings arrive, and every booking's SMS still
//! reaches the provider exactly once and the feed shows each once; the node then rejoins.

use std::collections::HashMap;

use chrono::Utc;
use messaging_integration_tests::Stack;
use messaging_integration_tests::client::{Dashboard, Publisher, sim_requests};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_proto::v1::MessageStatus;
use serde_json::json;

const ACCOUNT: &str = "acc_cluster";
const BOOKINGS: usize = 24;

fn phone(n: usize) -> String {
    format!("+1512555{:04}", 3000 + n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_loses_nothing_and_doubles_nothing() -> anyhow::Result<()> {
    let mut stack = Stack::start_fresh_clustered("cluster", &[]).await?;
    assert!(stack.infra.clustered());
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;

    let jetstream =
        async_nats::jetstream::new(messaging_integration_tests::nats_connect(&stack.infra.nats_url()).await?);
    let mut events = jetstream.get_stream("JOB_EVENTS").await?;
    assert_eq!(events.info().await?.config.num_replicas, 3, "streams are replicated to every node");

    for n in 0..BOOKINGS {
        if n == BOOKINGS / 3 {
            stack.infra.kill_nats_node(0).await;
        }
        let body = json!({"customer": customer(&format!("cus_{n}"), "Casey Cluster", &phone(n), ""),
                          "job": job(&format!("job_{n}"), Utc::now() + chrono::Duration::days(3))});
        publisher.event(&event(&format!("e{n}"), "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    }
    let settled = dashboard.settled(BOOKINGS).await?;
    stack.infra.restart_nats_node(0).await?;
    stack.quiesce().await?;

    let all = dashboard.clone().all().await;
    assert_eq!(all.len(), BOOKINGS, "one message per booking in the feed");
    assert!(settled.iter().all(|m| m.status == MessageStatus::Delivered as i32));
    let mut sent: HashMap<String, usize> = HashMap::new();
    for request in sim_requests(stack.ports.sim).await? {
        *sent.entry(request["to"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    for n in 0..BOOKINGS {
        assert_eq!(sent.get(&phone(n)).copied().unwrap_or(0), 1, "booking {n}: one provider request");
    }
    stack.stop().await;
    Ok(())
}
