//! WatchFeed: a stream of the account's new messages and status changes, nothing of another
//! account's, resumable from the cursor of the last change seen — after the client went away,
//! and after the feed itself was killed — without repeating what came before the cursor.
//! Malformed and expired cursors are refused.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use messaging_integration_tests::Stack;
use messaging_integration_tests::client::{Dashboard, Publisher, code};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_proto::v1::{MessageStatus, WatchFeedRequest, WatchFeedResponse};
use serde_json::json;
use tonic::Streaming;

const ACME: &str = "acc_watch";
const RIVAL: &str = "acc_quiet";

async fn watch(dashboard: &Dashboard, cursor: &str) -> anyhow::Result<Streaming<WatchFeedResponse>> {
    let request = dashboard.authed(WatchFeedRequest { cursor: cursor.to_owned() });
    Ok(dashboard.grpc().watch_feed(request).await?.into_inner())
}

/// Reads changes until `message_id` shows `status`; returns every change read.
async fn until(
    stream: &mut Streaming<WatchFeedResponse>,
    message_id: &str,
    status: MessageStatus,
) -> anyhow::Result<Vec<WatchFeedResponse>> {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message()).await;
        let change = next
            .map_err(|_| anyhow::anyhow!("no change within 30 s; seen {seen:#?}"))??
            .ok_or_else(|| anyhow::anyhow!("the stream ended; seen {seen:#?}"))?;
        let done = change.message.as_ref().is_some_and(|m| m.message_id == message_id && m.status == status as i32);
        seen.push(change);
        if done {
            return Ok(seen);
        }
    }
}

async fn book(publisher: &Publisher, n: u32) -> anyhow::Result<()> {
    let body = json!({"customer": customer(&format!("cus_{n}"), "Wren Watcher", &format!("+1512555017{n}"), ""),
                      "job": job(&format!("job_{n}"), Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event(&format!("e{n}"), "job.scheduled", ACME, Utc::now(), body)).await
}

/// What the stream still has to say, until it is quiet for a second.
async fn rest(stream: &mut Streaming<WatchFeedResponse>) -> Vec<WatchFeedResponse> {
    let mut seen = Vec::new();
    while let Ok(Ok(Some(change))) = tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
        if change.message.is_some() {
            seen.push(change);
        }
    }
    seen
}

fn ids(changes: &[WatchFeedResponse]) -> Vec<String> {
    changes.iter().filter_map(|c| c.message.as_ref()).map(|m| m.message_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_stream_live_and_resume_from_a_cursor() -> anyhow::Result<()> {
    let mut stack = Stack::start_fresh("watch").await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    for (id, acc) in [("a1", ACME), ("a2", RIVAL)] {
        publisher.event(&account(id, acc, "America/Chicago", ("00:00", "00:00"))).await?;
    }
    let acme = Dashboard::connect(stack.ports.grpc, ACME).await?;
    let rival = Dashboard::connect(stack.ports.grpc, RIVAL).await?;
    let mut rival_stream = watch(&rival, "").await?;
    let mut stream = watch(&acme, "").await?;

    // Live: the first message from queued to delivered.
    book(&publisher, 1).await?;
    let first = acme.settled(1).await?[0].message_id.clone();
    let mut changes = until(&mut stream, &first, MessageStatus::Delivered).await?;
    // Late reports (a `sent` callback after `delivered`) are changes too: take the cursor once the
    // system is idle and the stream has said everything.
    stack.quiesce().await?;
    changes.extend(rest(&mut stream).await);
    assert!(ids(&changes).iter().all(|id| *id == first), "{changes:#?}");
    let cursor = changes.last().map(|c| c.cursor.clone()).unwrap_or_default();
    drop(stream);

    // The client is away while a second message happens; resuming gives it, and nothing older.
    book(&publisher, 2).await?;
    let second = acme.settled(2).await?.iter().find(|m| m.message_id != first).map(|m| m.message_id.clone());
    let second = second.ok_or_else(|| anyhow::anyhow!("the second message"))?;
    let mut resumed = watch(&acme, &cursor).await?;
    let mut changes = until(&mut resumed, &second, MessageStatus::Delivered).await?;
    stack.quiesce().await?;
    changes.extend(rest(&mut resumed).await);
    assert!(ids(&changes).iter().all(|id| *id == second), "nothing from before the cursor: {changes:#?}");
    let mut cursor = changes.last().map(|c| c.cursor.clone()).unwrap_or_default();

    // Another account's stream saw none of it.
    let quiet = tokio::time::timeout(Duration::from_secs(2), rival_stream.message()).await;
    match quiet {
        Err(_) => {}
        Ok(Ok(Some(change))) => assert!(change.message.is_none(), "the rival saw {change:?}"),
        Ok(other) => anyhow::bail!("the rival's stream ended: {other:?}"),
    }

    // The feed is killed mid-stream; the stream ends, and the cursor resumes on the new process.
    stack.kill9("feed").await?;
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_secs(10), resumed.message()).await? {
        let id = change.message.as_ref().map(|m| m.message_id.as_str());
        assert_eq!(id, Some(second.as_str()), "only the second message's later changes");
        cursor = change.cursor;
    }
    book(&publisher, 3).await?;
    stack.restart("feed")?;
    let port = stack.ports.grpc;
    let acme = messaging_integration_tests::eventually(Duration::from_secs(30), "the feed back", || async move {
        Dashboard::connect(port, ACME).await.ok()
    })
    .await?;
    let third = messaging_integration_tests::eventually(Duration::from_secs(60), "the third message", || {
        let mut acme = acme.clone();
        let known = [first.clone(), second.clone()];
        async move { acme.all().await.into_iter().map(|m| m.message_id).find(|id| !known.contains(id)) }
    })
    .await?;
    let mut after_restart = watch(&acme, &cursor).await?;
    let changes = until(&mut after_restart, &third, MessageStatus::Delivered).await?;
    assert!(ids(&changes).iter().all(|id| *id == third), "{changes:#?}");

    // Cursors this service did not issue, or too old to resume from.
    let garbage = acme.grpc().watch_feed(acme.authed(WatchFeedRequest { cursor: "garbage".into() })).await;
    assert_eq!(code(garbage), tonic::Code::InvalidArgument);
    let old = (Utc::now() - chrono::Duration::days(2)).timestamp_micros();
    let expired = URL_SAFE_NO_PAD.encode(format!("w1|1|0|{old}"));
    let expired = acme.grpc().watch_feed(acme.authed(WatchFeedRequest { cursor: expired })).await;
    assert_eq!(code(expired), tonic::Code::FailedPrecondition);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_account_and_per_connection() -> anyhow::Result<()> {
    let caps =
        [("MSG_LIMITS__STREAMS_PER_ACCOUNT", "2".to_owned()), ("MSG_LIMITS__STREAMS_PER_CONNECTION", "3".to_owned())];
    let mut stack = Stack::start_fresh_with("watch-caps", &[("feed", &caps)]).await?;
    let acme = Dashboard::connect(stack.ports.grpc, ACME).await?;
    let first = watch(&acme, "").await?;
    let _second = watch(&acme, "").await?;
    let third = watch(&acme, "").await.err().and_then(|e| e.downcast::<tonic::Status>().ok());
    let third = third.expect("a third stream for the account is refused");
    assert_eq!(third.code(), tonic::Code::ResourceExhausted);
    assert!(third.message().contains("this account already has 2"), "{}", third.message());

    // Another account on its own connection is not held up; on acme's connection it is the third
    // stream there, and a fourth is refused whoever asks.
    let rival = Dashboard::connect(stack.ports.grpc, RIVAL).await?;
    let _rival = watch(&rival, "").await?;
    let on_acme_connection = |account: &str| {
        let request = messaging_integration_tests::client::with_bearer(
            WatchFeedRequest { cursor: String::new() },
            &messaging_integration_tests::client::token(account),
        );
        let mut client = acme.grpc();
        async move { client.watch_feed(request).await }
    };
    let _third_on_connection = on_acme_connection("acc_other").await?;
    let fourth = on_acme_connection("acc_more").await.expect_err("a fourth on one connection");
    assert_eq!(fourth.code(), tonic::Code::ResourceExhausted);
    assert!(fourth.message().contains("this connection already has 3"), "{}", fourth.message());

    // A stream the client drops frees its place.
    drop(first);
    messaging_integration_tests::eventually(Duration::from_secs(10), "a place freed", || {
        let acme = acme.clone();
        async move { watch(&acme, "").await.ok() }
    })
    .await?;
    stack.stop().await;
    Ok(())
}
