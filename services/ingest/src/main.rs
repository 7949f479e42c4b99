//! The ingest binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("ingest", |config, shutdown| async move {
        messaging_ingest::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
