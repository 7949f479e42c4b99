//! The outbox relay never wedges: a row larger than the broker's largest message is moved aside to
//! `<schema>.outbox_rejected` with its reason (whole, for an operator) and counted, and the rows
//! behind it, another account's among them, are still published, in order; a publish
//! JetStream refuses leaves its row in the outbox; and events published after their commit go
//! straight to the stream, or to the outbox when the broker could never take them or refuses them.

use messaging_integration_tests::{Infra, Scratch, nats_connect};
use messaging_platform::Runtime;
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_platform::bus::streams;
use messaging_platform::config::CommonConfig;

/// NATS and Postgres in a scratch directory, and a service runtime on them.
async fn start(name: &str) -> anyhow::Result<(Scratch, Infra, Runtime, messaging_platform::Shutdown)> {
    let dir = Scratch::new(name);
    let infra = Infra::start(&dir, 0, 0, false).await?;
    let mut common = CommonConfig::default();
    common.nats.url = infra.nats_url();
    common.database.url = infra.database_url();
    let shutdown = messaging_platform::Shutdown::new();
    let runtime = Runtime::connect(&common, "outbox-test", &[streams::MESSAGE_EVENTS], &shutdown).await?;
    Ok((dir, infra, runtime, shutdown))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_broker_cannot_carry_is_moved_aside_and_the_rows_behind_it_go_out() -> anyhow::Result<()> {
    let (_dir, mut infra, runtime, shutdown) = start("outbox").await?;
    let max_payload = runtime.nats.server_info().max_payload;

    let rows = [
        ("big", "message.acc_a.status", vec![b'x'; max_payload + 1]),
        ("small-1", "message.acc_b.status", b"one".to_vec()),
        ("small-2", "message.acc_b.status", b"two".to_vec()),
    ];
    let mut tx = runtime.pool.begin().await?;
    for (id, subject, payload) in &rows {
        let message = OutboxMessage { id: (*id).into(), subject: (*subject).into(), payload: payload.clone() };
        outbox::enqueue(&mut tx, "feed", &message).await?;
    }
    tx.commit().await?;

    let relay = runtime.relay("feed");
    assert_eq!(relay.drain_once().await?, 3, "every row left the outbox: two published, one moved aside");
    assert_eq!(relay.backlog().await?, 0, "nothing is left to block the relay");
    let (id, reason, kept): (String, String, i32) =
        sqlx::query_as("SELECT id, reason, length(payload) FROM feed.outbox_rejected").fetch_one(&runtime.pool).await?;
    assert_eq!(id, "big");
    assert!(reason.contains("larger than the broker's largest message"), "{reason}");
    assert_eq!(kept as usize, max_payload + 1, "kept whole");

    let client = nats_connect(&infra.nats_url()).await?;
    let stream = async_nats::jetstream::new(client).get_stream(streams::MESSAGE_EVENTS.name).await?;
    let first = stream.get_raw_message(1).await?;
    let second = stream.get_raw_message(2).await?;
    assert_eq!((first.payload.as_ref(), second.payload.as_ref()), (b"one".as_ref(), b"two".as_ref()));

    let metrics = messaging_platform::metrics::render();
    assert!(metrics.contains(r#"outbox_rejected_total{schema="feed"} 1"#), "{metrics}");
    shutdown.cancel();
    infra.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_broker_refuses_leaves_the_row_in_the_outbox() -> anyhow::Result<()> {
    let (_dir, mut infra, runtime, shutdown) = start("outbox-refused").await?;
    // A subject no stream holds: JetStream refuses the publish.
    let mut tx = runtime.pool.begin().await?;
    let message =
        OutboxMessage { id: "nowhere".into(), subject: "nowhere.acc_a.status".into(), payload: b"x".to_vec() };
    outbox::enqueue(&mut tx, "feed", &message).await?;
    tx.commit().await?;
    let relay = runtime.relay("feed");
    assert!(relay.drain_once().await.is_err(), "the refusal is reported");
    assert_eq!(relay.backlog().await?, 1, "the row is still in the outbox");
    shutdown.cancel();
    infra.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_after_commit_skip_the_outbox_unless_the_broker_cannot_take_them() -> anyhow::Result<()> {
    let (_dir, mut infra, runtime, shutdown) = start("outbox-direct").await?;
    let max_payload = runtime.nats.server_info().max_payload;
    let rows = [
        ("one", "message.acc_a.status", b"one".to_vec()),
        ("big", "message.acc_a.status", vec![b'x'; max_payload + 1]),
        ("nowhere", "nowhere.acc_a.status", b"lost?".to_vec()),
        ("two", "message.acc_a.status", b"two".to_vec()),
    ];
    // Inside `collecting` an enqueue only collects; the connection is never written.
    let mut connection = runtime.pool.acquire().await?;
    let (enqueued, collected) = outbox::collecting(async {
        for (id, subject, payload) in &rows {
            let message = OutboxMessage { id: (*id).into(), subject: (*subject).into(), payload: payload.clone() };
            outbox::enqueue(&mut connection, "feed", &message).await?;
        }
        Ok::<(), sqlx::Error>(())
    })
    .await;
    enqueued?;
    let relay = runtime.relay("feed");
    let mut tx = runtime.pool.begin().await?;
    let (publishable, wrote) = relay.keep_publishable(&mut tx, collected).await?;
    tx.commit().await?;
    assert_eq!((publishable.len(), wrote), (3, true), "the row too large for the broker stays behind");
    relay.publish_committed(publishable).await?;

    let client = nats_connect(&infra.nats_url()).await?;
    let stream = async_nats::jetstream::new(client).get_stream(streams::MESSAGE_EVENTS.name).await?;
    let first = stream.get_raw_message(1).await?;
    let second = stream.get_raw_message(2).await?;
    assert_eq!((first.payload.as_ref(), second.payload.as_ref()), (b"one".as_ref(), b"two".as_ref()), "in order");
    let waiting: Vec<String> =
        sqlx::query_scalar("SELECT id FROM feed.outbox ORDER BY id").fetch_all(&runtime.pool).await?;
    assert_eq!(waiting, ["big", "nowhere"], "only what the broker did not take is in the outbox");
    let metrics = messaging_platform::metrics::render();
    assert!(metrics.contains(r#"bus_direct_fallbacks_total{schema="feed"} 1"#), "{metrics}");
    shutdown.cancel();
    infra.stop();
    Ok(())
}
