//! The feed binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("feed", |config, shutdown| async move {
        messaging_feed::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
