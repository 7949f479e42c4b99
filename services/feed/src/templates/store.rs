//! Template versions in `feed.templates`: the current one of each type and channel, one by
//! number, and a new one, numbered after the newest and written with its `TemplatePublished`
//! event in one transaction, once per request id.

use chrono::{DateTime, Utc};
use messaging_domain::{AccountId, Channel, MessageType};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::TemplatePublished;
use messaging_proto::time::timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// The parts of a template (those of the other channel empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    pub sms_body: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub kind: MessageType,
    pub channel: Channel,
    pub version: i32,
    pub built_in: bool,
    pub content: Content,
    pub published_at: DateTime<Utc>,
}

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("request_id {0} was already used for a different template")]
    Reused(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "message_type, channel, version, built_in, sms_body, subject, text_body, html_body, published_at";

fn version(row: &PgRow) -> sqlx::Result<Version> {
    let decode = |what: &str| sqlx::Error::Decode(format!("unknown {what} in feed.templates").into());
    Ok(Version {
        kind: MessageType::parse(row.try_get("message_type")?).ok_or_else(|| decode("message type"))?,
        channel: Channel::parse(row.try_get("channel")?).ok_or_else(|| decode("channel"))?,
        version: row.try_get("version")?,
        built_in: row.try_get("built_in")?,
        content: Content {
            sms_body: row.try_get("sms_body")?,
            subject: row.try_get("subject")?,
            text: row.try_get("text_body")?,
            html: row.try_get("html_body")?,
        },
        published_at: row.try_get("published_at")?,
    })
}

/// The newest version of each type and channel the account ever published.
pub async fn current(pool: &PgPool, account: &AccountId) -> sqlx::Result<Vec<Version>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (message_type, channel) {COLUMNS} FROM feed.templates WHERE account_id = $1
         ORDER BY message_type, channel, version DESC"
    )))
    .bind(account.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(version).collect()
}

/// Version `number` of a type and channel, or the newest when `number` is `None`.
pub async fn one(
    pool: &PgPool,
    account: &AccountId,
    kind: MessageType,
    channel: Channel,
    number: Option<i32>,
) -> sqlx::Result<Option<Version>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM feed.templates
         WHERE account_id = $1 AND message_type = $2 AND channel = $3 AND ($4::int IS NULL OR version = $4)
         ORDER BY version DESC LIMIT 1"
    )))
    .bind(account.as_str())
    .bind(kind.as_str())
    .bind(channel.as_str())
    .bind(number)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(version).transpose()
}

/// Publishes `content` (or, `built_in`, the built-in wording) as the next version of its type and
/// channel, with the event dispatch renders from; the version `request_id` already made, if any.
pub async fn publish(
    pool: &PgPool,
    account: &AccountId,
    kind: MessageType,
    channel: Channel,
    built_in: bool,
    content: &Content,
    request_id: &str,
) -> Result<Version, PublishError> {
    // Two publishes of one template at once: the later waits, finds the number taken, and tries
    // the next (as does a retry racing its own first attempt, which then finds it by request id).
    for _ in 0..8 {
        let mut tx = pool.begin().await?;
        if let Some(made) = by_request(&mut tx, account, request_id).await? {
            let same = made.kind == kind && made.channel == channel && made.built_in == built_in;
            return if same && (built_in || made.content == *content) {
                Ok(made)
            } else {
                Err(PublishError::Reused(request_id.to_owned()))
            };
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO feed.templates (account_id, message_type, channel, version, built_in, sms_body, subject,
                 text_body, html_body, request_id)
             SELECT $1, $2, $3, COALESCE(max(version), 0) + 1, $4, $5, $6, $7, $8, $9 FROM feed.templates
             WHERE account_id = $1 AND message_type = $2 AND channel = $3
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
        )))
        .bind(account.as_str())
        .bind(kind.as_str())
        .bind(channel.as_str())
        .bind(built_in)
        .bind(&content.sms_body)
        .bind(&content.subject)
        .bind(&content.text)
        .bind(&content.html)
        .bind(request_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let made = version(&row)?;
        let event = TemplatePublished {
            account_id: account.to_string(),
            r#type: kind.to_proto(),
            channel: channel.to_proto(),
            version: made.version as u32,
            built_in,
            sms_body: made.content.sms_body.clone(),
            subject: made.content.subject.clone(),
            text: made.content.text.clone(),
            html: made.content.html.clone(),
            published_at: Some(timestamp(made.published_at)),
        };
        let message = OutboxMessage::of(&event, format!("{account}:{kind}:{channel}:{}", made.version));
        outbox::enqueue(&mut tx, "feed", &message).await?;
        tx.commit().await?;
        return Ok(made);
    }
    Err(sqlx::Error::Protocol("the template kept changing while it was published; try again".into()).into())
}

async fn by_request(
    tx: &mut sqlx::PgConnection,
    account: &AccountId,
    request_id: &str,
) -> sqlx::Result<Option<Version>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM feed.templates WHERE account_id = $1 AND request_id = $2"
    )))
    .bind(account.as_str())
    .bind(request_id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(version).transpose()
}
