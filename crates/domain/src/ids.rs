//! Typed identifiers. Every external id is a subject-safe token: `[A-Za-z0-9_-]{1,64}`.

use std::fmt;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than 64 characters")]
    TooLong { kind: &'static str },
    #[error("{kind} {value:?} may contain only letters, digits, '_' and '-'")]
    BadCharacter { kind: &'static str, value: String },
}

/// Checks the token rule shared by every id.
pub fn check_token(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > 64 {
        return Err(IdError::TooLong { kind });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(IdError::BadCharacter { kind, value: value.chars().take(80).collect() });
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_token($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_id!(
    /// A business using the platform; every row and subject is scoped by it.
    AccountId, "account_id"
);
token_id!(
    /// A customer of one business.
    CustomerId, "customer id"
);
token_id!(
    /// A job (appointment) of one business.
    JobId, "job id"
);
token_id!(
    /// A technician (a user of the business who works jobs).
    TechnicianId, "technician id"
);
token_id!(
    /// A job event from the scheduling system; the unit of deduplication.
    EventId, "event_id"
);
token_id!(
    /// One outbound or inbound message.
    MessageId, "message id"
);

impl MessageId {
    /// A new message id from a 128-bit value (for example a UUID v7, which sorts by time).
    pub fn from_u128(value: u128) -> Self {
        Self(format!("msg_{value:032x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subject_safe_tokens() {
        assert!(AccountId::parse("acc_ace-01").is_ok());
        assert_eq!(AccountId::parse("a".repeat(64)).map(|id| id.as_str().len()), Ok(64));
    }

    #[test]
    fn rejects_what_would_break_a_subject() {
        assert_eq!(AccountId::parse(""), Err(IdError::Empty { kind: "account_id" }));
        assert!(matches!(AccountId::parse("a".repeat(65)), Err(IdError::TooLong { .. })));
        for bad in ["acc.ace", "acc ace", "acc>", "acc*", "äcc"] {
            assert!(matches!(AccountId::parse(bad), Err(IdError::BadCharacter { .. })), "{bad}");
        }
    }

    #[test]
    fn deserializes_with_validation() {
        let ok: Result<AccountId, _> = serde_json::from_str("\"acc_1\"");
        assert!(ok.is_ok());
        let bad: Result<AccountId, _> = serde_json::from_str("\"acc.1\"");
        assert!(bad.is_err());
    }

    #[test]
    fn message_ids_are_tokens() {
        let id = MessageId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert!(check_token("message id", id.as_str()).is_ok());
    }
}
