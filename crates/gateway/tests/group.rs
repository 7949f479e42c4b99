//! Claims and settlements are group-committed, and many at once still decide each message exactly
//! as one at a time would: one winner per message, one settlement per claim, one `attempt` event
//! per settlement, published straight to the stream; a redelivered command publishes a settled
//! message's event from what was stored, and a repeat is deduplicated.

use std::time::Duration;

use messaging_domain::Channel;
use messaging_gateway::{Claim, Claims, Settlement};
use messaging_integration_tests::Database;
use messaging_platform::bus::{Relay, streams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_and_settlements_decide_each_message_once() -> anyhow::Result<()> {
    let database = Database::start("gateway-group").await?;
    let pool = database.pool.clone();
    let jetstream = async_nats::jetstream::new(async_nats::connect(database.infra.nats_url()).await?);
    streams::ensure(&jetstream, &[streams::MESSAGE_EVENTS], 1).await?;
    let relay = Relay::new(pool.clone(), jetstream.clone(), "sms_gateway", 1 << 20);
    let claims = Claims::new(pool.clone(), relay, "sms_gateway", Channel::Sms, Duration::from_secs(60));

    // Every message claimed twice at the same moment (side by side, so mostly in one statement),
    // 200 claims in flight.
    let id = |n: usize| format!("msg_{n:032x}");
    let claim = |n: usize| {
        let claims = claims.clone();
        async move { claims.claim(&id(n), "acc_group", "+15125550199", "+15125550100", "hello").await }
    };
    let results = futures::future::join_all((0..200).map(|i| claim(i / 2))).await;
    let mut won = vec![0; 100];
    for (i, result) in results.into_iter().enumerate() {
        match result? {
            Claim::Won => won[i / 2] += 1,
            Claim::Busy { .. } => {}
            other => panic!("message {} claimed as {other:?}", i / 2),
        }
    }
    assert!(won.iter().all(|w| *w == 1), "one winner per message: {won:?}");

    // Two settlements of each message race: one applies, and one event goes out per message.
    let settle = |n: usize, settlement: Settlement| {
        let claims = claims.clone();
        async move { claims.settle(&id(n), "acc_group", "+15125550199", &settlement).await }
    };
    let sent = |n: usize| Settlement::Sent { provider_id: format!("SM{n:032x}") };
    let failed = Settlement::Failed { reason: "undelivered".into(), code: "30003".into(), text: "no".into() };
    let racing = (0..100).flat_map(|n| [settle(n, sent(n)), settle(n, failed.clone())]);
    let applied: Vec<bool> = futures::future::join_all(racing).await.into_iter().collect::<Result<_, _>>()?;
    for n in 0..100 {
        assert!(applied[2 * n] ^ applied[2 * n + 1], "message {n}: exactly one settlement applies");
    }
    let published = || async {
        let mut stream = jetstream.get_stream(streams::MESSAGE_EVENTS.name).await?;
        anyhow::Ok(stream.info().await?.state.messages)
    };
    let relayed: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_gateway.outbox").fetch_one(&pool).await?;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_gateway.attempts WHERE state = 'claimed'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(
        (published().await?, relayed, open),
        (100, 0, 0),
        "one attempt event per message, published, none left claimed"
    );

    // Settled is settled: a third settlement and a later claim change nothing, and the event a
    // redelivered command publishes again is the one already published.
    assert!(!settle(7, sent(7)).await?);
    assert_eq!(claim(7).await?, Claim::Settled);
    claims.publish_settled(&id(7)).await?;
    assert_eq!(published().await?, 100, "the duplicate window absorbs the repeat");

    // A settlement whose event never reached the stream (here left in the outbox, whose relay does
    // not run) is published by the redelivered command that finds it settled, once.
    assert_eq!(claim(100).await?, Claim::Won);
    assert!(claims.settle_relayed(&id(100), "acc_group", "+15125550199", &sent(100)).await?);
    assert_eq!(published().await?, 100, "not published yet");
    claims.publish_settled(&id(100)).await?;
    claims.publish_settled(&id(100)).await?;
    assert_eq!(published().await?, 101, "published again from the stored settlement, once");
    Ok(())
}
