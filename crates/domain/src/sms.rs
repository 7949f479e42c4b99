//! SMS segment counting: GSM-7 when every character is in the GSM 03.38 alphabet (extension
//! characters cost two septets), UCS-2 otherwise; long messages split into concatenated parts.

/// How the text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// The encoding [`Encoding::as_str`] names.
    pub fn parse(name: &str) -> Option<Self> {
        [Encoding::Gsm7, Encoding::Ucs2].into_iter().find(|e| e.as_str() == name)
    }
}

/// What the first SMS a business sends a number ends with, whoever worded the rest.
pub const OPT_OUT_NOTICE: &str = "Reply STOP to opt out.";

/// `text` with the opt-out notice appended.
pub fn with_opt_out_notice(text: &str) -> String {
    format!("{} {OPT_OUT_NOTICE}", text.trim_end())
}

/// The encoding and number of parts a text is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    pub count: u32,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets a character costs in GSM-7, or `None` outside the alphabet.
fn gsm_septets(c: char) -> Option<u32> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// How `text` is sent: encoding and segment count. A character never straddles two parts.
pub fn segments(text: &str) -> Segments {
    let costs: Option<Vec<u32>> = text.chars().map(gsm_septets).collect();
    let (encoding, costs, single, part) = match costs {
        Some(costs) => (Encoding::Gsm7, costs, 160, 153),
        None => (Encoding::Ucs2, text.chars().map(|c| c.len_utf16() as u32).collect(), 70, 67),
    };
    let total: u32 = costs.iter().sum();
    if total <= single {
        return Segments { encoding, count: 1 };
    }
    let mut count = 1;
    let mut used = 0;
    for cost in costs {
        if used + cost > part {
            count += 1;
            used = 0;
        }
        used += cost;
    }
    Segments { encoding, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoding_reads_back_from_its_stored_name() {
        for encoding in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(Encoding::parse(encoding.as_str()), Some(encoding));
        }
        assert_eq!(Encoding::parse(""), None);
    }

    fn gsm(count: u32) -> Segments {
        Segments { encoding: Encoding::Gsm7, count }
    }

    fn ucs2(count: u32) -> Segments {
        Segments { encoding: Encoding::Ucs2, count }
    }

    #[test]
    fn gsm_boundaries() {
        assert_eq!(segments(""), gsm(1));
        assert_eq!(segments(&"a".repeat(160)), gsm(1));
        assert_eq!(segments(&"a".repeat(161)), gsm(2));
        assert_eq!(segments(&"a".repeat(306)), gsm(2));
        assert_eq!(segments(&"a".repeat(307)), gsm(3));
    }

    #[test]
    fn extension_characters_cost_two_and_never_straddle() {
        assert_eq!(segments(&"€".repeat(80)), gsm(1));
        assert_eq!(segments(&"€".repeat(81)), gsm(2));
        // 152 septets then a two-septet character: it moves whole to the next part.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(segments(&text), gsm(2));
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&text), gsm(3));
    }

    #[test]
    fn anything_outside_gsm_is_ucs2() {
        assert_eq!(segments("Hi José, see you at 9"), gsm(1), "é is GSM; É too");
        assert_eq!(segments("Hi Zoë"), ucs2(1), "ë is not GSM");
        assert_eq!(segments(&"ë".repeat(70)), ucs2(1));
        assert_eq!(segments(&"ë".repeat(71)), ucs2(2));
        assert_eq!(segments("On my way 🚐"), ucs2(1));
        // 66 units then an emoji (2 units): it moves whole to the next part.
        let text = format!("{}🚐{}", "ë".repeat(66), "ë".repeat(10));
        assert_eq!(segments(&text), ucs2(2));
    }
}
