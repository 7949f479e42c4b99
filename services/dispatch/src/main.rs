//! The dispatch binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("dispatch", |config, shutdown| async move {
        messaging_dispatch::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
