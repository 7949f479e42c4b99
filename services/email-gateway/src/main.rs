//! The email-gateway binary.

#[tokio::main]
async fn main() {
    messaging_platform::service::main("email-gateway", |config, shutdown| async move {
        messaging_email_gateway::build(config, &shutdown).await?.run(shutdown).await
    })
    .await;
}
