//! Who must not get automated messages: opt-outs from delivery-status (`message.<account>.opt_out`:
//! STOP replies, unsubscribes, the provider's 21610), kept per account, channel and address, moving
//! only forward in event time so a late opt-in never undoes a newer opt-out.

use chrono::{DateTime, Utc};
use messaging_domain::Channel;
use messaging_platform::bus::{Delivery, Handler, Outcome};
use messaging_proto::bus::OptOutChanged;
use sqlx::{PgConnection, PgPool};

/// Addresses compare case-insensitively for email, exactly (E.164) for SMS.
pub fn address_key(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Email => address.trim().to_ascii_lowercase(),
        Channel::Sms => address.trim().to_owned(),
    }
}

/// An address a message is for.
pub struct Recipient<'a> {
    pub account_id: &'a str,
    pub channel: Channel,
    pub address: &'a str,
}

/// Whether each recipient has opted out of its channel for its account: one statement.
pub async fn suppressed(tx: &mut PgConnection, recipients: &[Recipient<'_>]) -> sqlx::Result<Vec<bool>> {
    let keys: Vec<(&str, &str, String)> =
        recipients.iter().map(|r| (r.account_id, r.channel.as_str(), address_key(r.channel, r.address))).collect();
    let opted_out: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT account_id, channel, address FROM dispatch.suppressions
         WHERE (account_id, channel, address) IN (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])) AND opted_out",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    let opted_out: std::collections::HashSet<(String, String, String)> = opted_out.into_iter().collect();
    Ok(keys
        .into_iter()
        .map(|(account, channel, address)| opted_out.contains(&(account.to_owned(), channel.to_owned(), address)))
        .collect())
}

/// Records an opt-out or opt-in unless a newer one is already stored.
pub async fn record(
    pool: &PgPool,
    account_id: &str,
    channel: Channel,
    address: &str,
    opted_out: bool,
    source: &str,
    as_of: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "INSERT INTO dispatch.suppressions AS s (account_id, channel, address, reason, opted_out, as_of)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, channel, address) DO UPDATE
             SET reason = EXCLUDED.reason, opted_out = EXCLUDED.opted_out, as_of = EXCLUDED.as_of
         WHERE s.as_of <= EXCLUDED.as_of",
    )
    .bind(account_id)
    .bind(channel.as_str())
    .bind(address_key(channel, address))
    .bind(source)
    .bind(opted_out)
    .bind(as_of)
    .execute(pool)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// Consumes `message.*.opt_out`.
pub struct OptOutHandler {
    pub pool: PgPool,
}

impl Handler for OptOutHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match delivery.decode::<OptOutChanged>() {
            Ok(event) => event,
            Err(dead) => return dead,
        };
        let Some(channel) = Channel::from_proto(event.channel) else {
            return Outcome::DeadLetter(format!("opt-out for an unknown channel ({})", event.channel));
        };
        if event.address.trim().is_empty() {
            return Outcome::DeadLetter("opt-out without an address".into());
        }
        let as_of = messaging_proto::time::datetime(event.occurred_at.as_ref()).unwrap_or_else(Utc::now);
        match record(&self.pool, &event.account_id, channel, &event.address, event.opted_out, &event.source, as_of)
            .await
        {
            Ok(changed) => {
                tracing::info!(account_id = %event.account_id, channel = %channel, opted_out = event.opted_out,
                    source = %event.source, changed, "opt-out recorded");
                Outcome::Ack
            }
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}
