//! Prints an account's feed as the Messages page would show it.

use messaging_proto::v1::feed_service_client::FeedServiceClient;
use messaging_proto::v1::{Channel, Direction, ListMessagesRequest, MessageStatus, MessageType};
use tonic::metadata::MetadataValue;

pub async fn print(url: &str, token: &str, limit: i32) -> anyhow::Result<()> {
    let mut client = FeedServiceClient::connect(url.to_owned()).await?;
    let mut request = tonic::Request::new(ListMessagesRequest { page_size: limit, ..Default::default() });
    request.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}"))?);
    let page = client.list_messages(request).await?.into_inner();
    println!("{:<9} {:<6} {:<34} {:<26} {:<10} TIME", "DIRECTION", "CHANNEL", "CUSTOMER", "TYPE", "STATUS");
    for m in &page.messages {
        let customer = m.customer.clone().unwrap_or_default();
        let by_email = m.channel == Channel::Email as i32 || customer.phone.is_empty();
        let contact = if by_email { customer.email } else { customer.phone };
        let when = m
            .sent_at
            .or(m.created_at)
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let mut status =
            label(MessageStatus::try_from(m.status).map(|s| s.as_str_name()).unwrap_or("?"), "MESSAGE_STATUS_");
        if !m.failure_reason.is_empty() {
            status = format!("{status} ({})", m.failure_reason);
        }
        println!(
            "{:<9} {:<6} {:<34} {:<26} {:<10} {}",
            label(Direction::try_from(m.direction).map(|d| d.as_str_name()).unwrap_or("?"), "DIRECTION_"),
            label(Channel::try_from(m.channel).map(|c| c.as_str_name()).unwrap_or("?"), "CHANNEL_"),
            format!("{} {}", customer.name, contact),
            label(MessageType::try_from(m.r#type).map(|t| t.as_str_name()).unwrap_or("?"), "MESSAGE_TYPE_"),
            status,
            when
        );
    }
    println!("({} messages)", page.messages.len());
    Ok(())
}

fn label(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}
