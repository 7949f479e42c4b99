//! A2P 10DLC: US carriers block application SMS from a 10-digit number that is not registered to
//! an approved campaign. An account's registration state arrives with its `account.updated`
//! events; only an `active` registration sends SMS. An account whose events never report one is
//! not tracked here (its numbers are registered elsewhere, or are not US numbers) and sends.
//! Twilio's error codes, the registration ones among them, map to failure reasons in one table.

/// Where an account's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    NotStarted,
    BrandPending,
    BrandApproved,
    CampaignPending,
    CampaignApproved,
    Active,
    Rejected,
}

/// An account's registration as its events report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRegistration {
    pub state: Registration,
    /// Why it was rejected (may be empty), at most [`MAX_REASON_CHARS`].
    pub reason: String,
}

/// The failure reason of an SMS never sent because its sender is not registered.
pub const SMS_NOT_REGISTERED: &str = "sms_not_registered";

/// The longest rejection reason kept.
pub const MAX_REASON_CHARS: usize = 500;

impl Registration {
    pub const ALL: &'static [Registration] = &[
        Registration::NotStarted,
        Registration::BrandPending,
        Registration::BrandApproved,
        Registration::CampaignPending,
        Registration::CampaignApproved,
        Registration::Active,
        Registration::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Registration::NotStarted => "not_started",
            Registration::BrandPending => "brand_pending",
            Registration::BrandApproved => "brand_approved",
            Registration::CampaignPending => "campaign_pending",
            Registration::CampaignApproved => "campaign_approved",
            Registration::Active => "active",
            Registration::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == text)
    }

    /// Whether SMS may go from the account's number.
    pub fn sends_sms(self) -> bool {
        self == Registration::Active
    }
}

/// Whether an account whose registration is `state` (as stored; `None` or empty: not tracked) may send SMS.
pub fn sends_sms(state: Option<&str>) -> bool {
    match state.filter(|s| !s.is_empty()) {
        None => true,
        Some(state) => Registration::parse(state).is_some_and(Registration::sends_sms),
    }
}

/// The normalised failure reason for a Twilio error code, from the create call or a status
/// callback; `None` for a code this table does not know.
pub fn twilio_failure_reason(code: &str) -> Option<&'static str> {
    Some(match code {
        "21211" => "invalid_number",
        "21614" => "not_sms_capable",
        "21610" => "opted_out",
        "21635" | "30006" => "landline",
        "21408" | "21612" => "unreachable_region",
        "21606" | "21212" | "21660" => "invalid_sender",
        "30001" => "queue_overflow",
        "30002" => "account_suspended",
        "30003" => "unreachable",
        "30004" => "blocked",
        "30005" => "unknown_number",
        "30007" => "carrier_filtered",
        "30008" => "carrier_error",
        "30010" => "price_exceeds_max",
        "30017" => "carrier_congestion",
        "30018" => "sender_not_registered_with_carrier",
        "30019" => "too_long_for_carrier",
        "30022" => "a2p_rate_limited",
        "30023" | "30027" => "a2p_daily_cap",
        "30024" => "sender_not_provisioned",
        "30032" => "toll_free_not_verified",
        "30033" => "a2p_campaign_suspended",
        "30034" => SMS_NOT_REGISTERED,
        "30035" => "a2p_number_pool_limit",
        "30036" => "expired",
        "30037" => "sending_disabled",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_active_registration_sends_and_an_untracked_account_sends() {
        assert!(sends_sms(None) && sends_sms(Some("")) && sends_sms(Some("active")));
        for state in
            ["not_started", "brand_pending", "brand_approved", "campaign_pending", "campaign_approved", "rejected"]
        {
            assert!(!sends_sms(Some(state)), "{state}");
            assert_eq!(Registration::parse(state).map(Registration::as_str), Some(state));
        }
        assert!(!sends_sms(Some("ACTIVE")), "an unknown state is not active");
    }

    #[test]
    fn twilio_registration_errors_have_reasons_of_their_own() {
        assert_eq!(twilio_failure_reason("30034"), Some(SMS_NOT_REGISTERED));
        assert_eq!(twilio_failure_reason("30032"), Some("toll_free_not_verified"));
        assert_eq!(twilio_failure_reason("30035"), Some("a2p_number_pool_limit"));
        assert_eq!(twilio_failure_reason("30006"), twilio_failure_reason("21635"));
        assert_eq!(twilio_failure_reason("99999"), None);
    }
}
