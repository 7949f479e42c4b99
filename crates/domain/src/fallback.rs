//! SMS→email fallback: which failures of an automatic SMS mean the customer will never get it by
//! text, so the same notification goes by email instead. Only a permanent failure counts: an
//! ambiguous (`unknown`) or transient one (congestion, an unreachable handset, a rate limit) might
//! still have arrived or arrive on a later try, and an email then would say it twice.

use crate::registration::SMS_NOT_REGISTERED;

/// The failure reasons that make an SMS permanently undeliverable to its recipient: the number
/// cannot take texts (a landline, not SMS-capable, invalid, unknown to the carrier), the customer
/// opted out of texts, or the business number may not send them (not registered, its campaign
/// suspended, its toll-free number not verified).
pub const PERMANENT_SMS_FAILURES: &[&str] = &[
    "landline",
    "not_sms_capable",
    "invalid_number",
    "unknown_number",
    "opted_out",
    SMS_NOT_REGISTERED,
    "a2p_campaign_suspended",
    "toll_free_not_verified",
];

/// Whether an automatic SMS that failed with `reason` goes by email instead.
pub fn falls_back_to_email(reason: &str) -> bool {
    PERMANENT_SMS_FAILURES.contains(&reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::twilio_failure_reason;

    #[test]
    fn permanent_failures_fall_back_and_transient_or_ambiguous_ones_never() {
        for (code, falls_back) in [
            ("30006", true),  // landline
            ("21614", true),  // not SMS-capable
            ("21211", true),  // invalid number
            ("30005", true),  // unknown number
            ("21610", true),  // the recipient texted STOP
            ("30034", true),  // unregistered 10DLC number
            ("30033", true),  // campaign suspended
            ("30032", true),  // toll-free not verified
            ("30003", false), // handset unreachable now
            ("30008", false), // carrier error
            ("30017", false), // carrier congestion
            ("30022", false), // rate limited
            ("30001", false), // queue overflow
            ("30036", false), // validity expired
            ("30007", false), // carrier filtered: the wording, not the number
        ] {
            let reason = twilio_failure_reason(code).expect("a known code");
            assert_eq!(falls_back_to_email(reason), falls_back, "{code} ({reason})");
        }
        for reason in ["", "undelivered", "unknown", "provider_rejected", "LANDLINE"] {
            assert!(!falls_back_to_email(reason), "{reason:?}");
        }
    }
}
