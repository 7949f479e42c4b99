//! SendGrid's signed event webhook: an ECDSA P-256 / SHA-256 signature, base64 DER, over the
//! timestamp header followed by the raw body, checked with the account's base64 DER public key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

/// A configured verification key.
#[derive(Debug, Clone)]
pub struct SendgridKey(VerifyingKey);

impl SendgridKey {
    /// Parses the key as SendGrid shows it (base64 of the DER public key).
    pub fn parse(base64_der: &str) -> Option<Self> {
        let der = STANDARD.decode(base64_der.trim()).ok()?;
        VerifyingKey::from_public_key_der(&der).ok().map(Self)
    }

    /// Whether `signature` (base64 DER) signs `timestamp` + `body`.
    pub fn verifies(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Ok(der) = STANDARD.decode(signature.trim()) else { return false };
        let Ok(signature) = Signature::from_der(&der) else { return false };
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.0.verify(&signed, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;

    use super::*;

    fn keys() -> (SigningKey, SendgridKey) {
        let signing = SigningKey::from_slice(&[7u8; 32]).expect("a scalar");
        // SubjectPublicKeyInfo for a P-256 key: the fixed algorithm header, then the uncompressed point.
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("hex");
        der.extend_from_slice(signing.verifying_key().to_encoded_point(false).as_bytes());
        let key = SendgridKey::parse(&STANDARD.encode(&der)).expect("parses");
        (signing, key)
    }

    fn sign(signing: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let signature: Signature = signing.sign(&[timestamp.as_bytes(), body].concat());
        STANDARD.encode(signature.to_der().as_bytes())
    }

    proptest::proptest! {
        #[test]
        fn garbage_signatures_and_keys_are_refused_without_panicking(
            signature in proptest::prelude::any::<String>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            key in proptest::prelude::any::<String>(),
        ) {
            let (_, good) = keys();
            proptest::prop_assert!(!good.verifies("1700000000", &body, &signature));
            proptest::prop_assert!(SendgridKey::parse(&key).is_none());
        }
    }

    #[test]
    fn accepts_what_was_signed_and_nothing_else() {
        let (signing, key) = keys();
        let body = br#"[{"event":"bounce","sg_event_id":"e1"}]"#;
        let signature = sign(&signing, "1700000000", body);
        assert!(key.verifies("1700000000", body, &signature));
        assert!(!key.verifies("1700000001", body, &signature), "another timestamp");
        assert!(!key.verifies("1700000000", br#"[{"event":"delivered","sg_event_id":"e1"}]"#, &signature));
        assert!(!key.verifies("1700000000", body, "not base64 !"));
        assert!(!key.verifies("1700000000", body, &STANDARD.encode(b"not der")));
        assert!(SendgridKey::parse("garbage").is_none());
    }
}
