//! The projector's statements. `queued` and `status` take many events about distinct messages at
//! once (one statement over arrays: the rows, their timeline entries and, for entries that are
//! new, the change-log rows and the watchers' notification); the rarer kinds take one event.

use chrono::{DateTime, Utc};
use messaging_domain::{Channel, Direction, MessageType, Status};
use messaging_proto::bus::{DeliveryUnknown, MessageQueued, MessageReceived, OptOutChanged, StatusChanged};
use sqlx::{AssertSqlSafe, PgConnection};
use std::sync::LazyLock;

use crate::changes;
use crate::store::{beyond_preview, preview};

/// The failure reason the SMS gateway gives a number that cannot take SMS (Twilio's 21614).
const NOT_SMS_CAPABLE: &str = "not_sms_capable";

fn time(at: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    messaging_proto::time::datetime(at.as_ref()).unwrap_or_else(Utc::now)
}

/// A statement made of `ctes` (parameters up to `$first - 1`) and the timeline entry from
/// `$first` on (account, message, status, source, detail, time, key), recorded as a change when new.
fn with_timeline(ctes: &str, first: usize) -> String {
    let p: Vec<String> = (first..first + 7).map(|n| format!("${n}")).collect();
    format!(
        "WITH {ctes}
         logged AS (INSERT INTO feed.timeline (account_id, message_id, status, source, detail, occurred_at, event_key)
                    VALUES ({}) ON CONFLICT (event_key) DO NOTHING RETURNING account_id, message_id),
         {}",
        p.join(", "),
        changes::record_from("logged")
    )
}

/// The timeline entries of `input` (columns account_id, message_id, status, source, detail, at,
/// event_key), recorded as changes when new.
fn timeline_of(input: &str) -> String {
    format!(
        "logged AS (INSERT INTO feed.timeline (account_id, message_id, status, source, detail, occurred_at, event_key)
                    SELECT account_id, message_id, status, source, detail, at, event_key FROM {input}
                    ON CONFLICT (event_key) DO NOTHING RETURNING account_id, message_id),
         {}",
        changes::record_from("logged")
    )
}

static QUEUED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (
             SELECT i.*, 'queued' AS status, 'dispatch' AS source, '' AS detail, 'queued:' || i.message_id AS event_key
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::text[],
                         $15::int4[], $16::text[], $17::text[], $18::text[])
                  AS i(message_id, account_id, customer_id, customer_name, customer_phone, customer_email, direction,
                       channel, message_type, preview, subject, job_id, at, body, template_version, template_fallback,
                       template_values, fallback_of)),
         row AS (INSERT INTO feed.messages AS m (message_id, account_id, customer_id, customer_name, customer_phone,
                     customer_email, direction, channel, message_type, status, status_rank, preview, subject, job_id,
                     created_at, updated_at, body, template_version, template_fallback, template_values, resent_from,
                     fallback)
                 SELECT message_id, account_id, customer_id, customer_name, customer_phone, customer_email, direction,
                     channel, message_type, 'queued', 0, preview, subject, job_id, at, at, body, template_version,
                     template_fallback, template_values::jsonb, NULLIF(fallback_of, ''), fallback_of <> ''
                 FROM input ORDER BY message_id
                 ON CONFLICT (message_id) DO UPDATE SET
                     customer_id = CASE WHEN EXCLUDED.customer_id = '' THEN m.customer_id ELSE EXCLUDED.customer_id END,
                     customer_name = CASE WHEN EXCLUDED.customer_id = '' THEN m.customer_name ELSE EXCLUDED.customer_name END,
                     customer_phone = EXCLUDED.customer_phone,
                     customer_email = EXCLUDED.customer_email, direction = EXCLUDED.direction,
                     channel = EXCLUDED.channel, message_type = EXCLUDED.message_type, preview = EXCLUDED.preview,
                     subject = EXCLUDED.subject, job_id = EXCLUDED.job_id,
                     body = CASE WHEN EXCLUDED.body = '' THEN m.body ELSE EXCLUDED.body END,
                     template_version = EXCLUDED.template_version, template_fallback = EXCLUDED.template_fallback,
                     template_values = EXCLUDED.template_values,
                     resent_from = COALESCE(EXCLUDED.resent_from, m.resent_from),
                     fallback = m.fallback OR EXCLUDED.fallback,
                     created_at = LEAST(m.created_at, EXCLUDED.created_at)
                 WHERE m.account_id = EXCLUDED.account_id),
         {}",
        timeline_of("input")
    )
});

/// Creates (or completes) the rows of `events`, each about a distinct message.
pub async fn queued(tx: &mut PgConnection, events: &[MessageQueued]) -> sqlx::Result<()> {
    let column = |f: fn(&MessageQueued) -> &str| events.iter().map(f).collect::<Vec<&str>>();
    let customer = |e: &MessageQueued| e.customer.clone().unwrap_or_default();
    let customers: Vec<_> = events.iter().map(customer).collect();
    let of_customer =
        |f: fn(&messaging_proto::bus::CustomerSnapshot) -> &str| customers.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(AssertSqlSafe(QUEUED.as_str()))
        .bind(column(|e| &e.message_id))
        .bind(column(|e| &e.account_id))
        .bind(of_customer(|c| &c.customer_id))
        .bind(of_customer(|c| &c.name))
        .bind(of_customer(|c| &c.phone))
        .bind(of_customer(|c| &c.email))
        .bind(events.iter().map(|e| Direction::from_proto(e.direction).map(|d| d.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| Channel::from_proto(e.channel).map(|c| c.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| MessageType::from_proto(e.r#type).map(|t| t.as_str())).collect::<Vec<_>>())
        .bind(column(|e| &e.preview))
        .bind(column(|e| &e.subject))
        .bind(column(|e| &e.job_id))
        .bind(events.iter().map(|e| time(e.queued_at)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| beyond_preview(&e.body)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| (e.template_version > 0).then_some(e.template_version as i32)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| Some(e.template_fallback.as_str()).filter(|f| !f.is_empty())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| values_json(&e.values)).collect::<Vec<_>>())
        .bind(column(|e| &e.fallback_of))
        .execute(&mut *tx)
        .await?;
    for event in events.iter().filter(|e| !e.fallback_of.is_empty()) {
        fell_back(tx, event).await?;
    }
    Ok(())
}

/// Links the SMS an SMS→email fallback stands in for to its email (the email names the SMS
/// itself), and tells the SMS's watchers.
async fn fell_back(tx: &mut PgConnection, email: &MessageQueued) -> sqlx::Result<()> {
    let linked = sqlx::query(
        "UPDATE feed.messages SET resent_as = $3, fallback = true
         WHERE account_id = $1 AND message_id = $2 AND resent_as IS DISTINCT FROM $3",
    )
    .bind(&email.account_id)
    .bind(&email.fallback_of)
    .bind(&email.message_id)
    .execute(&mut *tx)
    .await?;
    if linked.rows_affected() > 0 {
        changes::record(tx, &email.account_id, &email.fallback_of).await?;
    }
    Ok(())
}

/// A message's template values as a JSON object; `None` when its request carried none.
fn values_json(values: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!values.is_empty()).then(|| serde_json::to_string(values).ok()).flatten()
}

static STATUS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::timestamptz[],
                                  $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                  AS i(message_id, account_id, status, status_rank, failure_reason, at, sent_at, error_code,
                       error_text, source, detail, event_key)),
         row AS (INSERT INTO feed.messages AS m (message_id, account_id, status, status_rank, failure_reason,
                     created_at, sent_at, updated_at, provider_error_code, provider_error_text)
                 SELECT message_id, account_id, status, status_rank, failure_reason, at, sent_at, at, error_code,
                     error_text
                 FROM input ORDER BY message_id
                 ON CONFLICT (message_id) DO UPDATE SET
                     status = CASE WHEN EXCLUDED.status_rank > m.status_rank
                                        OR (m.status = 'unknown' AND EXCLUDED.status = 'sent')
                                   THEN EXCLUDED.status ELSE m.status END,
                     status_rank = GREATEST(m.status_rank, EXCLUDED.status_rank),
                     failure_reason = CASE WHEN m.failure_reason = '' THEN EXCLUDED.failure_reason ELSE m.failure_reason END,
                     sent_at = COALESCE(LEAST(m.sent_at, EXCLUDED.sent_at), m.sent_at, EXCLUDED.sent_at),
                     updated_at = GREATEST(m.updated_at, EXCLUDED.updated_at),
                     provider_error_code = CASE WHEN m.provider_error_code = '' THEN EXCLUDED.provider_error_code
                                                ELSE m.provider_error_code END,
                     provider_error_text = CASE WHEN m.provider_error_code = '' AND m.provider_error_text = ''
                                                THEN EXCLUDED.provider_error_text ELSE m.provider_error_text END
                 WHERE m.account_id = EXCLUDED.account_id),
         {}",
        timeline_of("input")
    )
});

/// Moves the rows of `events` (each about a distinct message) forward; a number that cannot take
/// SMS is remembered as a landline first.
pub async fn statuses(tx: &mut PgConnection, events: &[StatusChanged]) -> sqlx::Result<()> {
    let events: Vec<(&StatusChanged, Status)> =
        events.iter().filter_map(|e| Some((e, Status::from_proto(e.status)?))).collect();
    let landlines: Vec<&StatusChanged> =
        events.iter().filter(|(e, _)| e.failure_reason == NOT_SMS_CAPABLE).map(|(e, _)| *e).collect();
    if !landlines.is_empty() {
        // Reads the rows as the queued events left them (a statement's CTEs see no change of its own).
        sqlx::query(
            "INSERT INTO feed.landlines (account_id, phone, occurred_at)
             SELECT m.account_id, m.customer_phone, i.at FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
                 AS i(message_id, account_id, at)
             JOIN feed.messages m ON m.message_id = i.message_id AND m.account_id = i.account_id
             WHERE m.channel = 'sms' AND m.customer_phone <> ''
             ON CONFLICT DO NOTHING",
        )
        .bind(landlines.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>())
        .bind(landlines.iter().map(|e| e.account_id.as_str()).collect::<Vec<_>>())
        .bind(landlines.iter().map(|e| time(e.occurred_at)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let sent = |status: Status| matches!(status, Status::Sent | Status::Delivered | Status::Read | Status::Opened);
    let detail = |e: &StatusChanged| {
        [e.failure_reason.as_str(), e.provider_error_code.as_str(), e.provider_error_text.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let column = |f: fn(&StatusChanged) -> &str| events.iter().map(|(e, _)| f(e)).collect::<Vec<&str>>();
    sqlx::query(AssertSqlSafe(STATUS.as_str()))
        .bind(column(|e| &e.message_id))
        .bind(column(|e| &e.account_id))
        .bind(events.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|(_, s)| i16::from(s.rank())).collect::<Vec<_>>())
        .bind(column(|e| &e.failure_reason))
        .bind(events.iter().map(|(e, _)| time(e.occurred_at)).collect::<Vec<_>>())
        .bind(events.iter().map(|(e, s)| sent(*s).then(|| time(e.occurred_at))).collect::<Vec<_>>())
        .bind(column(|e| &e.provider_error_code))
        .bind(column(|e| &e.provider_error_text))
        .bind(column(|e| &e.source))
        .bind(events.iter().map(|(e, _)| detail(e)).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|(e, s)| format!("status:{}:{}:{}", e.message_id, s.as_str(), e.source))
                .collect::<Vec<_>>(),
        )
        .execute(tx)
        .await?;
    Ok(())
}

static RECEIVED: LazyLock<String> = LazyLock::new(|| {
    with_timeline(
        "link AS (SELECT l.customer_id, COALESCE(c.name, '') AS name FROM feed.sender_links l
                  LEFT JOIN feed.customers c ON c.account_id = l.account_id AND c.customer_id = l.customer_id
                  WHERE $3 = '' AND NOT $12 AND l.account_id = $2
                    AND l.address = CASE WHEN $7 = 'sms' THEN $5 ELSE lower($6) END),
         row AS (INSERT INTO feed.messages (message_id, account_id, customer_id, customer_name, customer_phone,
                     customer_email, direction, channel, message_type, status, status_rank, preview, subject, job_id,
                     created_at, sent_at, updated_at, unread, sender_unverified, body)
                 SELECT $1, $2, COALESCE((SELECT customer_id FROM link), $3), COALESCE((SELECT name FROM link), $4),
                     $5, $6, 'inbound', $7, 'reply', 'received', $8, $9, $10, '', $11, $11, $11, true, $12, $13
                 ON CONFLICT (message_id) DO NOTHING),",
        14,
    )
});

/// An inbound message joins the customer's thread as a reply: the one delivery-status named, else
/// the one the business attached the sender's thread to, else the sender's own thread.
pub async fn received(tx: &mut PgConnection, event: MessageReceived) -> sqlx::Result<()> {
    let customer = event.customer.unwrap_or_default();
    let at = time(event.received_at);
    sqlx::query(AssertSqlSafe(RECEIVED.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .bind(&customer.customer_id)
        .bind(&customer.name)
        .bind(&customer.phone)
        .bind(&customer.email)
        .bind(Channel::from_proto(event.channel).map(|c| c.as_str()))
        .bind(i16::from(Status::Received.rank()))
        .bind(preview(&event.body))
        .bind(&event.subject)
        .bind(at)
        .bind(event.sender_unverified)
        .bind(beyond_preview(&event.body))
        .bind(&event.account_id)
        .bind(&event.message_id)
        .bind(Status::Received.as_str())
        .bind("provider")
        .bind("")
        .bind(at)
        .bind(format!("received:{}", event.message_id))
        .execute(tx)
        .await?;
    Ok(())
}

static DELIVERY_UNKNOWN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH marked AS (UPDATE feed.messages SET delivery_unknown = true
                         WHERE message_id = $1 AND account_id = $2 AND NOT delivery_unknown
                         RETURNING account_id, message_id),
         {}",
        changes::record_from("marked")
    )
});

/// Marks a sent message whose delivery the provider cannot confirm; shown while it stays `sent`.
pub async fn delivery_unknown(tx: &mut PgConnection, event: DeliveryUnknown) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(DELIVERY_UNKNOWN.as_str()))
        .bind(&event.message_id)
        .bind(&event.account_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// The latest opt-out or opt-in by event time, for the manual composer's refusal.
pub async fn opt_out(tx: &mut PgConnection, event: OptOutChanged) -> sqlx::Result<()> {
    let Some(channel) = Channel::from_proto(event.channel) else { return Ok(()) };
    let address = match channel {
        Channel::Email => event.address.to_lowercase(),
        Channel::Sms => event.address.clone(),
    };
    sqlx::query(
        "INSERT INTO feed.opt_outs AS o (account_id, channel, address, opted_out, occurred_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id, channel, address) DO UPDATE SET opted_out = EXCLUDED.opted_out, occurred_at = EXCLUDED.occurred_at
         WHERE o.occurred_at < EXCLUDED.occurred_at",
    )
    .bind(&event.account_id)
    .bind(channel.as_str())
    .bind(address)
    .bind(event.opted_out)
    .bind(time(event.occurred_at))
    .execute(tx)
    .await?;
    Ok(())
}
