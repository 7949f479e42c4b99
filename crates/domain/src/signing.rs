//! Webhook signatures: Twilio's X-Twilio-Signature and our own signed, opaque tokens
//! (the message reference in a status-callback URL). Comparisons are constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::{AccountId, MessageId};

mod sendgrid;
pub use sendgrid::SendgridKey;

/// X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value,
/// sorted by name)).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a Twilio signature against `url` as given and with its default port added or removed,
/// as Twilio's own validators do.
pub fn twilio_signature_matches(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    url_variants(url).iter().any(|candidate| {
        let expected = twilio_signature(auth_token, candidate, params);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
    })
}

/// The URL, plus the same URL with the scheme's default port toggled.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https://", ":443")
    } else if url.starts_with("http://") {
        ("http://", ":80")
    } else {
        return variants;
    };
    let rest = &url[scheme.len()..];
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if let Some(host) = authority.strip_suffix(default_port) {
        variants.push(format!("{scheme}{host}{path}"));
    } else if !authority.contains(':') {
        variants.push(format!("{scheme}{authority}{default_port}{path}"));
    }
    variants
}

fn token_mac(secret: &[u8], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
}

/// The opaque token of a message's one-click unsubscribe link: a keyed hash of the message id, so
/// it names nothing a reader can see and nobody without the secret can make one. The holder of the
/// secret finds the message by recomputing it for messages it knows.
pub fn unsubscribe_token(secret: &[u8], message: &MessageId) -> String {
    token_mac(secret, &format!("unsubscribe:{message}"))
}

/// A URL-safe token binding a message to its account: `<account>.<message>.<mac>`.
pub fn message_token(secret: &[u8], account: &AccountId, message: &MessageId) -> String {
    bound_token(secret, "", account, message)
}

/// Verifies a token from [`message_token`]; `None` for anything forged, altered or malformed.
pub fn verify_message_token(secret: &[u8], token: &str) -> Option<(AccountId, MessageId)> {
    verify_bound_token(secret, "", token)
}

/// The token of a message's open-tracking pixel: like [`message_token`], but bound to that one
/// purpose, so the URL every reader of the email can see never attributes anything else (such as a
/// provider's event) to the message.
pub fn open_token(secret: &[u8], account: &AccountId, message: &MessageId) -> String {
    bound_token(secret, "open:", account, message)
}

/// Verifies a token from [`open_token`].
pub fn verify_open_token(secret: &[u8], token: &str) -> Option<(AccountId, MessageId)> {
    verify_bound_token(secret, "open:", token)
}

/// `<account>.<message>.<mac>`, the MAC taken over the purpose and the rest.
fn bound_token(secret: &[u8], purpose: &str, account: &AccountId, message: &MessageId) -> String {
    let payload = format!("{account}.{message}");
    let mac = token_mac(secret, &format!("{purpose}{payload}"));
    format!("{payload}.{mac}")
}

fn verify_bound_token(secret: &[u8], purpose: &str, token: &str) -> Option<(AccountId, MessageId)> {
    let (payload, mac) = token.rsplit_once('.')?;
    let expected = token_mac(secret, &format!("{purpose}{payload}"));
    if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
        return None;
    }
    let (account, message) = payload.split_once('.')?;
    Some((AccountId::parse(account).ok()?, MessageId::parse(message).ok()?))
}

/// A short token naming one message, for places with tight length limits (an email local part
/// may hold 64 characters): `<message>.<mac>`, about 48 characters for our message ids.
pub fn message_ref_token(secret: &[u8], message: &MessageId) -> String {
    let mac = token_mac(secret, message.as_str());
    format!("{message}.{}", &mac[..11])
}

/// Verifies a token from [`message_ref_token`].
pub fn verify_message_ref_token(secret: &[u8], token: &str) -> Option<MessageId> {
    let (message, mac) = token.rsplit_once('.')?;
    let expected = token_mac(secret, message);
    if mac.len() != 11 || !bool::from(expected.as_bytes()[..11].ct_eq(mac.as_bytes())) {
        return None;
    }
    MessageId::parse(message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [("To", "+15125550199"), ("From", "+15125550100"), ("Body", "hi"), ("CallSid", "CA1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn matches_twilios_documented_example() {
        // The example from Twilio's security documentation.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(twilio_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn accepts_with_and_without_the_default_port() {
        let signed = twilio_signature("secret", "https://hooks.example.com:443/twilio", &params());
        assert!(twilio_signature_matches("secret", "https://hooks.example.com/twilio", &params(), &signed));
        let signed = twilio_signature("secret", "https://hooks.example.com/twilio", &params());
        assert!(twilio_signature_matches("secret", "https://hooks.example.com:443/twilio", &params(), &signed));
    }

    #[test]
    fn refuses_altered_requests() {
        let url = "http://127.0.0.1:8080/twilio";
        let signed = twilio_signature("secret", url, &params());
        let mut altered = params();
        altered[2].1 = "hi!".into();
        assert!(!twilio_signature_matches("secret", url, &altered, &signed));
        assert!(!twilio_signature_matches("other", url, &params(), &signed));
        assert!(!twilio_signature_matches("secret", "http://127.0.0.1:8081/twilio", &params(), &signed));
    }

    #[test]
    fn message_tokens_round_trip_and_resist_forgery() {
        let account = AccountId::parse("acc_ace").expect("id");
        let message = MessageId::parse("msg_1").expect("id");
        let token = message_token(b"k", &account, &message);
        assert_eq!(verify_message_token(b"k", &token), Some((account.clone(), message)));
        assert_eq!(verify_message_token(b"other", &token), None);
        let forged = token.replace("acc_ace", "acc_evil");
        assert_eq!(verify_message_token(b"k", &forged), None);
        assert_eq!(verify_message_token(b"k", "garbage"), None);
    }

    #[test]
    fn reply_tokens_fit_an_email_local_part() {
        let message = MessageId::from_u128(u128::MAX);
        let token = message_ref_token(b"k", &message);
        assert!(format!("reply+{token}").len() <= 64, "{token}");
        assert_eq!(verify_message_ref_token(b"k", &token), Some(message.clone()));
        assert_eq!(verify_message_ref_token(b"other", &token), None);
        assert_eq!(verify_message_ref_token(b"k", &token.replace("msg_f", "msg_e")), None);
    }

    #[test]
    fn unsubscribe_tokens_are_opaque_and_keyed() {
        let message = MessageId::parse("msg_0123456789abcdef0123456789abcdef").expect("id");
        let token = unsubscribe_token(b"secret", &message);
        assert_eq!(token.len(), 22);
        assert!(!token.contains("msg_") && !token.contains('.'), "names nothing: {token}");
        assert_eq!(token, unsubscribe_token(b"secret", &message));
        assert_ne!(token, unsubscribe_token(b"another secret", &message));
    }

    #[test]
    fn an_open_token_attributes_an_open_and_nothing_else() {
        let account = AccountId::parse("acc_ace").expect("id");
        let message = MessageId::parse("msg_1").expect("id");
        let open = open_token(b"k", &account, &message);
        assert_eq!(verify_open_token(b"k", &open), Some((account.clone(), message.clone())));
        assert_eq!(verify_message_token(b"k", &open), None, "a pixel's token is no event token");
        assert_eq!(verify_open_token(b"k", &message_token(b"k", &account, &message)), None);
        assert_eq!(verify_open_token(b"k", &open.replace("acc_ace", "acc_evil")), None);
    }
}
