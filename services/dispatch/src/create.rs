//! Creates a batch's messages in a few statements: every recipient's opt-out looked up in one,
//! then the messages inserted in rounds that hold each recipient once, each round one statement
//! that also claims the numbers an account texts for the first time (that SMS carries the opt-out
//! notice). A message is written once, under its (request, channel) key.

use std::collections::HashMap;

use messaging_domain::sms::{Encoding, Segments, segments};
use messaging_domain::{Channel, MessageId, MessageType};
use messaging_platform::bus::in_rounds;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::handler::{OPTED_OUT, refusal_of};
use crate::render;
use crate::suppression::{self, Recipient};

/// One message a request asks for, rendered, before it is written.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The request it comes from (its place in the batch).
    pub request: usize,
    pub kind: MessageType,
    pub channel: Channel,
    pub message_id: MessageId,
    pub account_id: String,
    pub customer_id: String,
    /// `<request id>:<channel>`: the same request never makes a second message on a channel.
    pub idempotency_key: String,
    pub recipient: String,
    pub sender: String,
    pub subject: String,
    pub body: String,
    pub html: String,
    /// The account's template version it was worded by; `None` for the built-in wording.
    pub template_version: Option<i32>,
    /// Why the account's template could not word it (the built-in wording went instead).
    pub template_fallback: Option<String>,
    /// Why the message is recorded failed and never sent: the recipient opted out
    /// ([`OPTED_OUT`]), or the account's number is not registered to send SMS.
    pub refused: Option<&'static str>,
}

/// A planned message as written.
#[derive(Debug, Clone)]
pub struct Created {
    pub planned: Planned,
    /// The body as stored: with the opt-out notice when it is the account's first SMS to the number.
    pub body: String,
    pub segments: Option<Segments>,
    /// Written by this delivery, not found from an earlier one.
    pub fresh: bool,
}

/// Marks the planned messages whose recipient opted out, and writes those not written before
/// (under their key); returns them all as stored, in the order planned: a message an earlier
/// delivery of its request wrote comes back as that delivery wrote it, so its events can be
/// published again. A key another transaction is writing at the same moment is an error (the
/// delivery is retried, and then finds the message).
pub async fn create(tx: &mut PgConnection, mut planned: Vec<Planned>) -> sqlx::Result<Vec<Created>> {
    let recipients: Vec<Recipient> = planned
        .iter()
        .map(|p| Recipient { account_id: &p.account_id, channel: p.channel, address: &p.recipient })
        .collect();
    let suppressed = suppression::suppressed(tx, &recipients).await?;
    for (p, suppressed) in planned.iter_mut().zip(suppressed) {
        if suppressed && p.refused.is_none() {
            p.refused = Some(OPTED_OUT);
        }
    }
    let indexed: Vec<(usize, Planned)> = planned.into_iter().enumerate().collect();
    let key = |(_, p): &(usize, Planned)| (p.account_id.clone(), p.channel, p.recipient.clone());
    let mut created = Vec::new();
    for round in in_rounds(indexed, key) {
        created.extend(insert(tx, round).await?);
    }
    created.sort_by_key(|(n, _)| *n);
    Ok(created.into_iter().map(|(_, c)| c).collect())
}

/// One round (a recipient once in it): one statement.
async fn insert(tx: &mut PgConnection, round: Vec<(usize, Planned)>) -> sqlx::Result<Vec<(usize, Created)>> {
    let claims = |p: &Planned| p.channel == Channel::Sms && p.refused.is_none();
    let noticed: Vec<String> = round
        .iter()
        .map(|(_, p)| if claims(p) { render::with_opt_out_notice(&p.body) } else { String::new() })
        .collect();
    let sms = |p: &Planned, body: &str| (p.channel == Channel::Sms).then(|| segments(body));
    let plain: Vec<Option<Segments>> = round.iter().map(|(_, p)| sms(p, &p.body)).collect();
    let with_notice: Vec<Option<Segments>> = round.iter().zip(&noticed).map(|((_, p), n)| sms(p, n)).collect();
    let count = |s: &Option<Segments>| s.map_or(0, |c| c.count as i32);
    let encoding = |s: &Option<Segments>| s.map_or("", |c| c.encoding.as_str());
    let column = |f: fn(&Planned) -> &str| round.iter().map(|(_, p)| f(p)).collect::<Vec<&str>>();
    let rows = sqlx::query(
        "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int4[], $14::text[],
                 $15::bool[], $16::text[], $17::int4[], $18::text[], $19::int4[], $20::text[])
                 AS i (message_id, account_id, idempotency_key, customer_id, channel, message_type, recipient, sender,
                       subject, body, html_body, failure_reason, segments, encoding, claims, noticed,
                       noticed_segments, noticed_encoding, template_version, template_fallback)),
              fresh AS (SELECT * FROM input i
                        WHERE NOT EXISTS (SELECT 1 FROM dispatch.messages m WHERE m.idempotency_key = i.idempotency_key)),
              claimed AS (INSERT INTO dispatch.sms_recipients (account_id, address, first_message_id)
                          SELECT account_id, recipient, message_id FROM fresh WHERE claims
                          ON CONFLICT DO NOTHING RETURNING first_message_id),
              inserted AS (INSERT INTO dispatch.messages (message_id, account_id, idempotency_key, customer_id, channel,
                               message_type, recipient, sender, subject, body, html_body, failure_reason, segments, encoding,
                               template_version, template_fallback)
                           SELECT f.message_id, f.account_id, f.idempotency_key, f.customer_id, f.channel, f.message_type,
                                  f.recipient, f.sender, f.subject,
                                  CASE WHEN c.first_message_id IS NULL THEN f.body ELSE f.noticed END, f.html_body,
                                  NULLIF(f.failure_reason, ''),
                                  CASE WHEN c.first_message_id IS NULL THEN f.segments ELSE f.noticed_segments END,
                                  CASE WHEN c.first_message_id IS NULL THEN f.encoding ELSE f.noticed_encoding END,
                                  f.template_version, f.template_fallback
                           FROM fresh f LEFT JOIN claimed c ON c.first_message_id = f.message_id
                           ON CONFLICT (idempotency_key) DO NOTHING
                           RETURNING message_id, idempotency_key)
         SELECT i.idempotency_key, i.message_id, c.first_message_id IS NOT NULL AS first, false AS stored,
                NULL::text AS recipient, NULL::text AS sender, NULL::text AS subject, NULL::text AS body,
                NULL::text AS html_body, NULL::text AS failure_reason, NULL::int4 AS segments, NULL::text AS encoding,
                NULL::int4 AS template_version, NULL::text AS template_fallback
         FROM inserted i LEFT JOIN claimed c ON c.first_message_id = i.message_id
         UNION ALL
         SELECT m.idempotency_key, m.message_id, false, true, m.recipient, m.sender, m.subject, m.body, m.html_body,
                m.failure_reason, m.segments, m.encoding, m.template_version, m.template_fallback
         FROM dispatch.messages m WHERE m.idempotency_key IN (SELECT idempotency_key FROM input)",
    )
    .bind(round.iter().map(|(_, p)| p.message_id.as_str()).collect::<Vec<_>>())
    .bind(column(|p| &p.account_id))
    .bind(column(|p| &p.idempotency_key))
    .bind(column(|p| &p.customer_id))
    .bind(round.iter().map(|(_, p)| p.channel.as_str()).collect::<Vec<_>>())
    .bind(round.iter().map(|(_, p)| p.kind.as_str()).collect::<Vec<_>>())
    .bind(column(|p| &p.recipient))
    .bind(column(|p| &p.sender))
    .bind(column(|p| &p.subject))
    .bind(column(|p| &p.body))
    .bind(column(|p| &p.html))
    .bind(round.iter().map(|(_, p)| p.refused.unwrap_or("")).collect::<Vec<_>>())
    .bind(plain.iter().map(count).collect::<Vec<_>>())
    .bind(plain.iter().map(encoding).collect::<Vec<_>>())
    .bind(round.iter().map(|(_, p)| claims(p)).collect::<Vec<_>>())
    .bind(&noticed)
    .bind(with_notice.iter().map(count).collect::<Vec<_>>())
    .bind(with_notice.iter().map(encoding).collect::<Vec<_>>())
    .bind(round.iter().map(|(_, p)| p.template_version).collect::<Vec<_>>())
    .bind(round.iter().map(|(_, p)| p.template_fallback.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut written: HashMap<String, PgRow> = HashMap::with_capacity(rows.len());
    for row in rows {
        written.insert(row.try_get("idempotency_key")?, row);
    }
    let mut created = Vec::new();
    let counted = plain.into_iter().zip(with_notice);
    for (((n, planned), noticed), (plain, with_notice)) in round.into_iter().zip(noticed).zip(counted) {
        let Some(row) = written.remove(&planned.idempotency_key) else {
            return Err(sqlx::Error::Protocol(format!(
                "message {} is being written by another transaction",
                planned.idempotency_key
            )));
        };
        if row.try_get("stored")? {
            created.push((n, stored(planned, &row)?));
            continue;
        }
        let (body, segments) =
            if row.try_get("first")? { (noticed, with_notice) } else { (planned.body.clone(), plain) };
        created.push((n, Created { planned, body, segments, fresh: true }));
    }
    Ok(created)
}

/// A planned message as an earlier delivery of its request wrote it.
fn stored(mut planned: Planned, row: &PgRow) -> sqlx::Result<Created> {
    planned.message_id = MessageId::parse(row.try_get::<&str, _>("message_id")?).map_err(decode_error)?;
    planned.recipient = row.try_get("recipient")?;
    planned.sender = row.try_get("sender")?;
    planned.subject = row.try_get("subject")?;
    planned.html = row.try_get("html_body")?;
    planned.refused = row.try_get::<Option<&str>, _>("failure_reason")?.and_then(refusal_of);
    planned.template_version = row.try_get("template_version")?;
    planned.template_fallback = row.try_get("template_fallback")?;
    let body: String = row.try_get("body")?;
    let encoding = Encoding::parse(row.try_get("encoding")?);
    let count = row.try_get::<i32, _>("segments")? as u32;
    let segments = encoding.map(|encoding| Segments { encoding, count });
    Ok(Created { planned, body, segments, fresh: false })
}

fn decode_error(error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(error.to_string().into())
}
