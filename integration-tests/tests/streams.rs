//! Stream and consumer set-up as services do it at start: many processes ensuring the same new
//! streams at once all succeed and leave the server running (nats-server 2.9 crashed when an
//! update met a stream still being created); a stream whose definition changed is updated in
//! place; a durable consumer takes changed settings on the next start.

use std::time::Duration;

use async_nats::jetstream;
use messaging_integration_tests::infra::nats_server;
use messaging_integration_tests::process::Managed;
use messaging_integration_tests::{Scratch, free_port, wait_for_port};
use messaging_platform::bus::streams::{self, StreamSpec};
use messaging_platform::bus::{ConsumerSpec, durable};

const CLIENTS: usize = 8;
const ROUNDS: usize = 40;

/// The catalog under names of this round's own, so every round creates new streams.
fn catalog(round: usize) -> Vec<StreamSpec> {
    let specs = [streams::JOB_EVENTS, streams::NOTIFY, streams::SEND_SMS, streams::MESSAGE_EVENTS, streams::DIRECTORY];
    specs
        .into_iter()
        .map(|spec| StreamSpec {
            name: Box::leak(format!("R{round}_{}", spec.name).into_boxed_str()),
            subjects: Box::leak(format!("r{round}.{}", spec.subjects).into_boxed_str()),
            ..spec
        })
        .collect()
}

/// A throwaway nats-server with JetStream: the process, its port and its directory.
async fn jetstream_server(name: &str) -> anyhow::Result<(Managed, u16, Scratch)> {
    let dir = Scratch::new(&format!("e2e-{name}"));
    std::fs::create_dir_all(&*dir)?;
    let port = free_port();
    let args: Vec<String> =
        ["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd", &dir.join("js").display().to_string()]
            .map(str::to_owned)
            .to_vec();
    let server = Managed::start("nats-server", &nats_server()?, &args, &[], &dir)?;
    wait_for_port(port, "nats-server").await?;
    Ok((server, port, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_starting_together_create_each_stream_once_and_updates_apply() -> anyhow::Result<()> {
    let (mut server, port, _dir) = jetstream_server("streams").await?;
    let mut contexts = Vec::new();
    for _ in 0..CLIENTS {
        contexts.push(jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await?));
    }

    for round in 0..ROUNDS {
        let specs = catalog(round);
        let ensures = contexts.iter().map(|context| streams::ensure(context, &specs, 1));
        for (client, result) in futures::future::join_all(ensures).await.into_iter().enumerate() {
            result.map_err(|error| error.context(format!("round {round}, client {client}")))?;
        }
        anyhow::ensure!(!server.has_exited(), "nats-server exited in round {round}:\n{}", server.report(20));
    }
    let mut names = contexts[0].stream_names();
    let mut count = 0;
    while let Some(name) = futures::TryStreamExt::try_next(&mut names).await? {
        count += usize::from(name.starts_with('R'));
    }
    assert_eq!(count, ROUNDS * 5, "each round's streams exist, once");

    // Streams already as defined are left alone: a service starting later updates nothing (the
    // server announces every update). A changed definition (a longer retention, say) is applied.
    let mut updates = contexts[3].client().subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED.>").await?;
    contexts[3].client().flush().await?;
    streams::ensure(&contexts[1], &catalog(0), 1).await?;
    let longer = StreamSpec { max_age: Duration::from_secs(30 * 24 * 3600), ..catalog(0)[0] };
    streams::ensure(&contexts[1], &[longer], 1).await?;
    let mut updated = Vec::new();
    while let Ok(Some(advisory)) =
        tokio::time::timeout(Duration::from_secs(1), futures::StreamExt::next(&mut updates)).await
    {
        updated.push(advisory.subject.to_string());
    }
    assert_eq!(updated, [format!("$JS.EVENT.ADVISORY.STREAM.UPDATED.{}", longer.name)], "only the changed stream");
    let info = contexts[2].get_stream(longer.name).await?.info().await?.config.clone();
    assert_eq!(info.max_age, longer.max_age);

    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_takes_changed_settings_on_the_next_start() -> anyhow::Result<()> {
    let (mut server, port, _dir) = jetstream_server("consumers").await?;
    let context = jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await?);
    streams::ensure(&context, &[streams::NOTIFY], 1).await?;
    let before = ConsumerSpec::new(streams::NOTIFY.name, "dispatch", "notify.>");
    durable::ensure(&context, &before).await?;
    let held = |context: jetstream::Context| async move {
        let stream = context.get_stream(streams::NOTIFY.name).await?;
        let mut consumer = stream
            .get_consumer::<jetstream::consumer::pull::Config>("dispatch")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(consumer.info().await?.config.clone())
    };
    assert_eq!(held(context.clone()).await?.max_ack_pending, 64);

    // The operator raises concurrency and batch size and gives the work longer.
    let after = ConsumerSpec { ack_wait: Duration::from_secs(45), ..before.batched(4, 100) };
    durable::ensure(&context, &after).await?;
    let config = held(context.clone()).await?;
    assert_eq!((config.max_ack_pending, config.ack_wait), (1600, Duration::from_secs(45)));
    // Unchanged settings leave it alone.
    durable::ensure(&context, &after).await?;
    assert_eq!(held(context).await?.max_ack_pending, 1600);

    server.stop().await;
    Ok(())
}
