//! The sms-gateway binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("sms-gateway", |config, shutdown| async move {
        messaging_sms_gateway::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
