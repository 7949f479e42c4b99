//! GetAccount: the account as its directory listing last described it, with the A2P 10DLC
//! registration its SMS needs, so the page can say up front why texts are not going out.

use messaging_domain::AccountId;
use messaging_domain::registration::sends_sms;
use messaging_proto::v1 as api;
use sqlx::PgPool;

type Row = (String, String, String, Option<String>, Option<String>);

pub async fn get(pool: &PgPool, account: &AccountId) -> sqlx::Result<api::GetAccountResponse> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT name, sms_number, email_from, sms_registration, sms_registration_reason
         FROM feed.accounts WHERE account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(pool)
    .await?;
    let (name, sms_number, email_from, status, reason) = row.unwrap_or_default();
    Ok(api::GetAccountResponse {
        account_id: account.to_string(),
        name,
        sms_number,
        email_from,
        sms_registration: Some(api::SmsRegistration {
            sends_sms: sends_sms(status.as_deref()),
            status: status.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
        }),
    })
}
