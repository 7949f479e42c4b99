//! The delivery-status binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("delivery-status", |config, shutdown| async move {
        messaging_delivery_status::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
