//! E.164 normalisation of human-typed phone numbers ("+1 (512) 555-0199", "512.555.0199").

use std::fmt;

use phonenumber::country::Id as Region;
use phonenumber::{Mode, PhoneNumber};

/// A phone number in E.164 form (`+15125550199`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct E164(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number {0:?} could not be parsed")]
    Unparseable(String),
    #[error("phone number {0:?} is not a possible number")]
    Impossible(String),
    #[error("{0:?} is not in E.164 form (+ and 8 to 15 digits)")]
    NotE164(String),
}

impl E164 {
    /// Normalises a human-typed number; numbers without a country code are read in `default_region`.
    pub fn normalize(input: &str, default_region: Region) -> Result<Self, PhoneError> {
        let shown: String = input.chars().take(40).collect();
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(PhoneError::Unparseable(shown));
        }
        let number =
            phonenumber::parse(Some(default_region), trimmed).map_err(|_| PhoneError::Unparseable(shown.clone()))?;
        if !is_possible(&number) {
            return Err(PhoneError::Impossible(shown));
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }

    /// Accepts only a number already in strict E.164 form, as providers require.
    pub fn parse_strict(input: &str) -> Result<Self, PhoneError> {
        let digits = input.strip_prefix('+').unwrap_or("");
        let well_formed =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if well_formed {
            Ok(Self(input.to_owned()))
        } else {
            Err(PhoneError::NotE164(input.chars().take(40).collect()))
        }
    }

    /// The region whose conventions a number follows, used as the default region for an account's customers.
    pub fn region(&self) -> Region {
        phonenumber::parse(None, &self.0).ok().and_then(|n| n.country().id()).unwrap_or(Region::US)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The number has a known country code and a national number of a length that country uses.
/// Validity against allocated ranges is deliberately not required: fictional 555-01xx numbers and
/// provider test numbers must pass, and the provider is the judge of whether a number exists.
fn is_possible(number: &PhoneNumber) -> bool {
    let national = number.national().value().to_string();
    let code = number.code().value();
    if number.country().id().is_none() {
        return false;
    }
    let total = national.len() + code.to_string().len();
    match code {
        1 => national.len() == 10 && !national.starts_with(['0', '1']),
        _ => (8..=15).contains(&total) && national.len() >= 4,
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use phonenumber::country::Id as PhoneRegion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_human_formats() {
        for input in
            ["+1 (512) 555-0199", "(512) 555-0199", "512.555.0199", "512-555-0199", "+15125550199", "1 512 555 0199"]
        {
            assert_eq!(E164::normalize(input, Region::US).map(|e| e.0), Ok("+15125550199".to_owned()), "{input}");
        }
    }

    #[test]
    fn other_regions() {
        assert_eq!(E164::normalize("020 7946 0018", Region::GB).map(|e| e.0), Ok("+442079460018".to_owned()));
        assert_eq!(E164::normalize("+44 20 7946 0018", Region::US).map(|e| e.0), Ok("+442079460018".to_owned()));
    }

    #[test]
    fn provider_test_numbers_pass() {
        assert!(E164::normalize("+15005550001", Region::US).is_ok());
    }

    #[test]
    fn refuses_garbage() {
        for input in ["", "call me", "12", "555-01", "+1 (512) 555-019", "+999 1234"] {
            assert!(E164::normalize(input, Region::US).is_err(), "{input}");
        }
    }

    #[test]
    fn strict_form() {
        assert!(E164::parse_strict("+15125550199").is_ok());
        assert!(E164::parse_strict("15125550199").is_err());
        assert!(E164::parse_strict("+1 512").is_err());
    }

    #[test]
    fn region_of_a_number() {
        let gb = E164::parse_strict("+442079460018").map(|e| e.region());
        assert_eq!(gb, Ok(Region::GB));
    }
}
