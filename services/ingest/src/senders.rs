//! A business number or send address belongs to one account at a time: an `account.updated` that
//! names one another account holds is refused, never taken over — else the newest listing would
//! get the other account's replies and STOPs. The refusal is dead-lettered with a `conflict:`
//! reason, which `bus_errors_total{class="conflict"}` counts.

use messaging_domain::AccountId;
use messaging_domain::event::AccountSettings;
use sqlx::{PgConnection, Row};

/// The business number or send address another account holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conflict: {field} {value} is already held by account {holder}; release it there first")]
pub struct Taken {
    pub field: &'static str,
    pub value: String,
    pub holder: String,
}

/// Whether `settings` name a number or address held by an account other than `account`. Holds
/// both until the transaction ends, so two accounts claiming one number at once are serialised
/// and the second sees the first.
pub async fn check(
    tx: &mut PgConnection,
    account: &AccountId,
    settings: &AccountSettings,
) -> sqlx::Result<Option<Taken>> {
    let number = settings.sms_number.as_str();
    let address = settings.email_from.to_lowercase();
    let mut keys = [format!("sender:{number}"), format!("sender:{address}")];
    keys.sort();
    for key in &keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut *tx).await?;
    }
    let row = sqlx::query(
        "SELECT account_id, sms_number = $2 AS same_number FROM ingest.accounts
         WHERE account_id <> $1 AND (sms_number = $2 OR lower(email_from) = $3)
         ORDER BY account_id LIMIT 1",
    )
    .bind(account.as_str())
    .bind(number)
    .bind(&address)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let holder: String = row.try_get("account_id")?;
    Ok(Some(if row.try_get("same_number")? {
        Taken { field: "sms_number", value: number.to_owned(), holder }
    } else {
        Taken { field: "email_from", value: address, holder }
    }))
}
