//! What a reply email says, without the earlier messages it quotes: text up to the first quote
//! marker ("On … wrote:", "-----Original Message-----", a "From:" header block, or "> " lines).

/// The most of an inbound email's text (after quoted history is stripped) that is kept and shown;
/// the rest is cut with a marker, so one huge email cannot outgrow the bus or the page.
pub const MAX_INBOUND_TEXT_CHARS: usize = 20_000;

/// The most of an inbound email's subject that is kept.
pub const MAX_INBOUND_SUBJECT_CHARS: usize = 300;

/// `text` cut to `max` characters, marked when cut.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}\n[… cut: the message was longer than {max} characters]", &text[..at]),
    }
}

/// The new text of a reply, trimmed.
pub fn strip_quoted(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let quote_starts = trimmed.starts_with('>')
            || (trimmed.starts_with("On ") && trimmed.ends_with("wrote:"))
            || trimmed.starts_with("-----Original Message-----")
            || (trimmed.starts_with("From:") && !kept.is_empty());
        if quote_starts {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_new_text_and_drops_what_it_quotes() {
        let reply = "Yes, 10 works.\nThanks!\n\nOn Fri, Nov 27, 2026 at 9:00 AM Ace Plumbing <office@ace.example> wrote:\n> Your appointment is confirmed.\n";
        assert_eq!(strip_quoted(reply), "Yes, 10 works.\nThanks!");
        assert_eq!(strip_quoted("Sure\n-----Original Message-----\nFrom: Ace"), "Sure");
        assert_eq!(strip_quoted("> quoted only"), "");
        assert_eq!(strip_quoted("Plain note, no quote."), "Plain note, no quote.");
        assert_eq!(strip_quoted("See you\n\nFrom: Ace Plumbing\nSent: Friday"), "See you");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn stripping_never_panics_and_never_adds_text(text in any::<String>()) {
            let kept = strip_quoted(&text);
            prop_assert!(kept.len() <= text.len());
            prop_assert!(!kept.lines().any(|l| l.trim_start().starts_with('>')));
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        assert_eq!(super::bounded("short", 10), "short");
        let cut = super::bounded(&"é".repeat(30), 10);
        assert!(cut.starts_with(&"é".repeat(10)) && cut.contains("cut"), "{cut}");
        assert!(!cut.starts_with(&"é".repeat(11)));
    }
}
