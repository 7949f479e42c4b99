//! A real job to preview a template with: the template variables' values an automatic message of
//! the account was worded from, as its `queued` event carried them (`feed.messages.template_values`).

use messaging_domain::{AccountId, MessageType};
use messaging_templates::{Values, catalogue};
use sqlx::{PgPool, Row};
use tonic::Status;

use crate::convert::internal;
use crate::scope::Scope;

/// The values of message `id` of `account`, which must be a `kind` message that carried them and
/// lie within the caller's `scope` (a technician previews with their own customers' jobs only).
pub async fn values(
    pool: &PgPool,
    account: &AccountId,
    scope: &Scope,
    kind: MessageType,
    id: &str,
) -> Result<Values, Status> {
    let row = sqlx::query(
        "SELECT message_type, customer_id, template_values::text AS template_values
         FROM feed.messages WHERE account_id = $1 AND message_id = $2",
    )
    .bind(account.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(internal)?;
    // Another account's message, or one outside the scope, is as absent as one that never existed.
    let row = row.filter(|row| row.try_get::<&str, _>("customer_id").is_ok_and(|c| scope.allows(c)));
    let Some(row) = row else { return Err(Status::not_found(format!("no message {id}"))) };
    let found: String = row.try_get("message_type").map_err(internal)?;
    if found != kind.as_str() {
        return Err(Status::invalid_argument(format!(
            "message {id} is a {found} message; preview a {kind} template with a {kind} message"
        )));
    }
    let stored: Option<String> = row.try_get("template_values").map_err(internal)?;
    let Some(stored) = stored else {
        return Err(Status::failed_precondition(format!(
            "message {id} carries no job data to preview with (it was sent before messages kept it)"
        )));
    };
    Ok(parse(&stored))
}

/// The catalogue's variables among `stored` (a JSON object of strings); anything else is dropped.
fn parse(stored: &str) -> Values {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(stored).unwrap_or_default();
    map.into_iter().filter_map(|(name, value)| catalogue::variable(&name).map(|v| (v.name, value))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalogue_variables_are_kept() {
        let values = parse(r#"{"customer_first_name":"Dana","{{ evil }}":"x","job_title":"Water heater"}"#);
        assert_eq!(
            values.into_iter().collect::<Vec<_>>(),
            [("customer_first_name", "Dana".to_owned()), ("job_title", "Water heater".to_owned())]
        );
        assert!(parse("not json").is_empty());
    }
}
