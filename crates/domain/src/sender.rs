//! Whether an inbound email comes from the address its From header names, judged from the verdicts
//! SendGrid's inbound parse reports: a DKIM signature that passed for the From address's domain, or
//! SPF that passed for an envelope sender in that domain (DMARC's two routes, with relaxed
//! alignment: the same domain or one inside the other). Anything else is unverified: kept and
//! shown, but attributed to no customer.

/// The verdict on one inbound email's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderCheck {
    /// Authenticated, by `"dkim"` or `"spf"`.
    Verified(&'static str),
    /// Not authenticated, and why (the verdicts seen, for the record).
    Unverified(String),
}

impl SenderCheck {
    pub fn verified(&self) -> bool {
        matches!(self, Self::Verified(_))
    }
}

/// What SendGrid reported about one inbound email.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verdicts<'a> {
    /// The From header's address.
    pub from: &'a str,
    /// The SMTP envelope's sender (the return path), when the envelope was given.
    pub envelope_from: Option<&'a str>,
    /// SendGrid's `SPF` field: `pass`, `fail`, `softfail`, `neutral`, `none`, …
    pub spf: &'a str,
    /// SendGrid's `dkim` field: `{@example.com : pass, @other.example : fail}` or `none`.
    pub dkim: &'a str,
}

/// Checks `verdicts`' From address against its DKIM and SPF results.
pub fn check(verdicts: Verdicts<'_>) -> SenderCheck {
    let Some(from_domain) = domain_of(verdicts.from) else {
        return SenderCheck::Unverified("no From address".into());
    };
    let dkim_passed = dkim_results(verdicts.dkim)
        .any(|(domain, result)| result.eq_ignore_ascii_case("pass") && aligned(&domain, &from_domain));
    if dkim_passed {
        return SenderCheck::Verified("dkim");
    }
    let spf = verdicts.spf.split_whitespace().next().unwrap_or("none").to_ascii_lowercase();
    let envelope_domain = verdicts.envelope_from.and_then(domain_of);
    if spf == "pass" && envelope_domain.as_deref().is_some_and(|domain| aligned(domain, &from_domain)) {
        return SenderCheck::Verified("spf");
    }
    let dkim = if verdicts.dkim.trim().is_empty() { "none" } else { verdicts.dkim.trim() };
    let envelope = verdicts.envelope_from.unwrap_or("none");
    SenderCheck::Unverified(format!("spf={spf} (envelope {envelope}), dkim={dkim}, from domain {from_domain}"))
}

/// The lowercased domain of a bare address.
fn domain_of(address: &str) -> Option<String> {
    let (local, domain) = address.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!local.is_empty() && domain.contains('.')).then_some(domain)
}

/// Each `(domain, result)` of a SendGrid `dkim` field.
fn dkim_results(field: &str) -> impl Iterator<Item = (String, &str)> {
    let inner = field.trim().trim_start_matches('{').trim_end_matches('}');
    inner.split(',').filter_map(|part| {
        let (domain, result) = part.split_once(':')?;
        let domain = domain.trim().trim_start_matches('@').trim_end_matches('.').to_ascii_lowercase();
        domain.contains('.').then(|| (domain, result.trim()))
    })
}

/// Relaxed alignment: the same domain, or one a subdomain of the other (never a bare suffix).
fn aligned(a: &str, b: &str) -> bool {
    let inside = |child: &str, parent: &str| child.strip_suffix(parent).is_some_and(|rest| rest.ends_with('.'));
    a == b || inside(a, b) || inside(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_dana<'a>(envelope_from: Option<&'a str>, spf: &'a str, dkim: &'a str) -> SenderCheck {
        check(Verdicts { from: "Dana@Example.com", envelope_from, spf, dkim })
    }

    #[test]
    fn dkim_that_passed_for_the_from_domain_verifies() {
        assert_eq!(from_dana(None, "none", "{@example.com : pass}"), SenderCheck::Verified("dkim"));
        assert_eq!(from_dana(None, "fail", "{@mail.example.com : pass}"), SenderCheck::Verified("dkim"));
        assert_eq!(from_dana(None, "", "{@other.example : fail, @EXAMPLE.COM : pass}"), SenderCheck::Verified("dkim"));
    }

    #[test]
    fn spf_verifies_only_for_an_envelope_sender_in_the_from_domain() {
        assert_eq!(from_dana(Some("bounce@example.com"), "pass", "none"), SenderCheck::Verified("spf"));
        assert_eq!(
            from_dana(Some("b@bounces.example.com"), "Pass (sender permitted)", ""),
            SenderCheck::Verified("spf")
        );
        // The attacker's own domain passes SPF, but it is not Dana's.
        assert!(!from_dana(Some("x@attacker.example"), "pass", "none").verified());
        assert!(!from_dana(None, "pass", "none").verified(), "no envelope, nothing to align");
    }

    #[test]
    fn failing_missing_or_unaligned_verdicts_do_not_verify() {
        for (envelope, spf, dkim) in [
            (Some("dana@example.com"), "fail", "none"),
            (Some("dana@example.com"), "softfail", "{@example.com : fail}"),
            (Some("dana@example.com"), "neutral", ""),
            (None, "", ""),
            (Some("dana@example.com"), "none", "{@attacker.example : pass}"),
            (Some("dana@example.com"), "none", "{@com : pass}"),
            (Some("dana@example.com"), "none", "{@xample.com : pass}"),
            (Some("dana@notexample.com"), "pass", "none"),
        ] {
            let check = from_dana(envelope, spf, dkim);
            assert!(!check.verified(), "{envelope:?} {spf} {dkim}: {check:?}");
        }
        let SenderCheck::Unverified(why) = from_dana(Some("x@attacker.example"), "pass", "") else { unreachable!() };
        assert_eq!(why, "spf=pass (envelope x@attacker.example), dkim=none, from domain example.com");
        assert!(!check(Verdicts { from: "no-address", ..Verdicts::default() }).verified());
    }
}
