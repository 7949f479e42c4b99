//! What a reply email says, without the earlier messages it quotes: text up to the first quote
//! marker ("On … wrote:", "-----Original Message-----", a "From:" header block, or "> " lines).

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
}
