//! The templates accounts word themselves, as dispatch keeps them: the version current for each
//! account, type and channel, from the feed's `TemplatePublished` events on
//! `directory.<acc>.template.<type>.<channel>` (a newer version replaces an older one, never the
//! reverse); read once per batch for the requests in it.

use std::collections::HashMap;

use messaging_domain::{Channel, MessageType};
use messaging_platform::bus::{Delivery, Handler, Outcome};
use messaging_proto::bus::TemplatePublished;
use sqlx::{PgConnection, PgPool, Row};

/// A custom template as stored (the built-in wording is not stored: it is code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custom {
    pub version: i32,
    pub sms_body: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The custom templates current for each (account, type, channel) of `wanted`: one statement.
pub async fn current(
    tx: &mut PgConnection,
    wanted: &[(&str, MessageType)],
) -> sqlx::Result<HashMap<(String, MessageType, Channel), Custom>> {
    let rows = sqlx::query(
        "SELECT account_id, message_type, channel, version, sms_body, subject, text_body, html_body
         FROM dispatch.templates
         WHERE (account_id, message_type) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) AND NOT built_in",
    )
    .bind(wanted.iter().map(|(account, _)| *account).collect::<Vec<_>>())
    .bind(wanted.iter().map(|(_, kind)| kind.as_str()).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    let mut found = HashMap::new();
    for row in rows {
        let kind = MessageType::parse(row.try_get("message_type")?);
        let channel = Channel::parse(row.try_get("channel")?);
        let (Some(kind), Some(channel)) = (kind, channel) else { continue };
        let custom = Custom {
            version: row.try_get("version")?,
            sms_body: row.try_get("sms_body")?,
            subject: row.try_get("subject")?,
            text: row.try_get("text_body")?,
            html: row.try_get("html_body")?,
        };
        found.insert((row.try_get("account_id")?, kind, channel), custom);
    }
    Ok(found)
}

/// Consumes `directory.*.template.>`.
pub struct TemplateHandler {
    pub pool: PgPool,
}

impl Handler for TemplateHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match delivery.decode::<TemplatePublished>() {
            Ok(event) => event,
            Err(dead) => return dead,
        };
        let (Some(kind), Some(channel)) = (MessageType::from_proto(event.r#type), Channel::from_proto(event.channel))
        else {
            return Outcome::DeadLetter(format!("template for type {} on channel {}", event.r#type, event.channel));
        };
        let stored = sqlx::query(
            "INSERT INTO dispatch.templates AS t (account_id, message_type, channel, version, built_in, sms_body,
                 subject, text_body, html_body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (account_id, message_type, channel) DO UPDATE SET version = EXCLUDED.version,
                 built_in = EXCLUDED.built_in, sms_body = EXCLUDED.sms_body, subject = EXCLUDED.subject,
                 text_body = EXCLUDED.text_body, html_body = EXCLUDED.html_body
             WHERE t.version < EXCLUDED.version",
        )
        .bind(&event.account_id)
        .bind(kind.as_str())
        .bind(channel.as_str())
        .bind(i32::try_from(event.version).unwrap_or(i32::MAX))
        .bind(event.built_in)
        .bind(&event.sms_body)
        .bind(&event.subject)
        .bind(&event.text)
        .bind(&event.html)
        .execute(&self.pool)
        .await;
        match stored {
            Ok(done) => {
                tracing::info!(account_id = %event.account_id, %kind, %channel, version = event.version,
                    built_in = event.built_in, applied = done.rows_affected() == 1, "template received");
                Outcome::Ack
            }
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}
