//! Feed search terms: a customer name folded to lower case without accents (so "José" finds
//! "jose" and "JOSE"), a phone number reduced to its digits (so "(512) 555-0199", "512.555.0199"
//! and "+15125550199" all find the same customer), and the bounds a search must respect.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The shortest name search: shorter terms would match most of an account.
pub const MIN_NAME_CHARS: usize = 3;
/// The fewest digits a phone search needs (the last four of a number).
pub const MIN_PHONE_DIGITS: usize = 4;
/// The longest search term accepted.
pub const MAX_CHARS: usize = 100;

/// A name lower-cased with its accents removed, whitespace collapsed.
pub fn fold(name: &str) -> String {
    let stripped: String = name.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    stripped.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The digits of a phone number in any format.
pub fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// What a search term asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Part of a customer's folded name.
    Name(String),
    /// Part of a phone number's digits.
    Phone(String),
}

/// Why a term cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    #[error("query is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("a phone search needs at least {MIN_PHONE_DIGITS} digits")]
    TooFewDigits,
    #[error("a name search needs at least {MIN_NAME_CHARS} characters")]
    TooShort,
}

/// Reads a search term: a phone number when it holds only digits and phone punctuation, else a
/// name. `None` for a blank term (no search).
pub fn parse(query: &str) -> Result<Option<Term>, TermError> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(None);
    }
    if query.chars().count() > MAX_CHARS {
        return Err(TermError::TooLong);
    }
    if query.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        let digits = digits(query);
        if digits.len() < MIN_PHONE_DIGITS {
            return Err(TermError::TooFewDigits);
        }
        return Ok(Some(Term::Phone(digits)));
    }
    let name = fold(query);
    if name.chars().count() < MIN_NAME_CHARS {
        return Err(TermError::TooShort);
    }
    Ok(Some(Term::Name(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_and_accents() {
        assert_eq!(fold("José  Núñez"), "jose nunez");
        assert_eq!(fold("ZOË Brontë"), "zoe bronte");
        assert_eq!(fold("Ångström"), "angstrom");
    }

    #[test]
    fn phone_terms_in_any_format_give_the_same_digits() {
        for query in ["(512) 555-0199", "512.555.0199", "+15125550199", "512-555-0199"] {
            let Ok(Some(Term::Phone(digits))) = parse(query) else { panic!("{query} is a phone search") };
            assert!("15125550199".contains(&digits), "{query} → {digits}");
        }
        assert_eq!(parse("0199"), Ok(Some(Term::Phone("0199".into()))));
    }

    #[test]
    fn short_long_and_blank_terms() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("019"), Err(TermError::TooFewDigits));
        assert_eq!(parse("Jo"), Err(TermError::TooShort));
        assert_eq!(parse(&"a".repeat(101)), Err(TermError::TooLong));
        assert_eq!(parse("Réyes"), Ok(Some(Term::Name("reyes".into()))));
    }
}
