//! Carrier keywords in inbound SMS: a single word, any case, surrounding punctuation ignored.
//! "STOP" opts out; "please stop calling" is a message, not a keyword.

/// What an inbound SMS asks for, when it is a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Opt out of SMS from this business number.
    Stop,
    /// Opt back in.
    Start,
    /// Ask who is texting and how to stop it.
    Help,
}

const STOP: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
const START: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// The keyword `body` is, if it is one.
pub fn classify(body: &str) -> Option<Keyword> {
    let word = body.trim().trim_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() || word.chars().any(|c| !c.is_ascii_alphabetic()) {
        return None;
    }
    let word = word.to_ascii_uppercase();
    if STOP.contains(&word.as_str()) {
        Some(Keyword::Stop)
    } else if START.contains(&word.as_str()) {
        Some(Keyword::Start)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_words_in_any_case_with_punctuation_around() {
        for body in [
            "STOP",
            "stop",
            " Stop! ",
            "\"stop.\"",
            "StopAll",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT",
            "revoke",
            "OptOut",
        ] {
            assert_eq!(classify(body), Some(Keyword::Stop), "{body:?}");
        }
        for body in ["START", "yes", "Unstop!"] {
            assert_eq!(classify(body), Some(Keyword::Start), "{body:?}");
        }
        assert_eq!(classify("help?"), Some(Keyword::Help));
    }

    #[test]
    fn sentences_and_near_misses_are_messages() {
        for body in
            ["please stop calling", "stop it", "STOPP", "st op", "", "   ", "!!!", "yes please", "s.t.o.p", "ストップ"]
        {
            assert_eq!(classify(body), None, "{body:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_is_classified_without_panicking(body in any::<String>()) {
            let keyword = classify(&body);
            // A keyword is always a single word: no inner whitespace survives in one.
            if keyword.is_some() {
                prop_assert!(!body.trim().trim_matches(|c: char| !c.is_alphanumeric()).contains(char::is_whitespace));
            }
        }

        #[test]
        fn a_keyword_with_any_punctuation_around_it_is_still_that_keyword(
            before in "[ .!?\"']{0,4}", after in "[ .!?\"']{0,4}", upper in any::<bool>(),
        ) {
            let word = if upper { "STOP" } else { "stop" };
            prop_assert_eq!(classify(&format!("{before}{word}{after}")), Some(Keyword::Stop));
        }
    }
}
