//! Full-width → ASCII folding, the one place for it.
//!
//! Japanese phones and IMEs often type full-width forms: `１０５`, `＠`, `＃Ｃ１５`, and an
//! ideographic space `　`. Customers sending a passcode (L2), agents searching by customer ID
//! (L3) or phone number all mean the ASCII characters, so those parsers fold first.

/// Folds one full-width character (U+FF01–U+FF5E, and the ideographic space U+3000) to its
/// ASCII twin; every other character is returned unchanged.
pub fn fold_width_char(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// [`fold_width_char`] over a whole string.
pub fn fold_width(s: &str) -> String {
    s.chars().map(fold_width_char).collect()
}

/// True for the characters a Japanese user may type where a hyphen is meant: the ASCII
/// hyphen-minus, the Unicode hyphens and dashes, the minus sign, the full-width hyphen-minus,
/// and the katakana prolonged sound marks `ー` / `ｰ` (the key next to the digits on a Japanese
/// kana keyboard, and what an IME often produces for `-`).
pub fn is_hyphen_like(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}' // hyphen
            | '\u{2011}' // non-breaking hyphen
            | '\u{2012}' // figure dash
            | '\u{2013}' // en dash
            | '\u{2014}' // em dash
            | '\u{2015}' // horizontal bar
            | '\u{2212}' // minus sign
            | '\u{FE63}' // small hyphen-minus
            | '\u{FF0D}' // full-width hyphen-minus
            | '\u{30FC}' // katakana prolonged sound mark
            | '\u{FF70}' // half-width katakana prolonged sound mark
    )
}

/// How a name is compared in searches (L3): full-width ASCII folded, lower case, spaces
/// dropped. "山田花子", "山田 花子" and "山田　花子" are the same key; kana and kanji are
/// compared as typed (no reading conversion). The store keeps it beside each name
/// (`customers.name_key`) and searches it with `LIKE`.
pub fn name_key(s: &str) -> String {
    fold_width(s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_ignore_width_case_and_spaces() {
        assert_eq!(name_key("山田 花子"), "山田花子");
        assert_eq!(name_key("山田　花子"), "山田花子");
        assert_eq!(name_key(" Ｙａｍａｄａ Hanako "), "yamadahanako");
        assert_eq!(name_key("やまだ"), "やまだ");
        assert_ne!(name_key("ヤマダ"), name_key("やまだ"));
    }

    #[test]
    fn folds_full_width_digits_letters_and_symbols() {
        assert_eq!(fold_width("＠１０５－９０８"), "@105-908");
        assert_eq!(fold_width("＃Ｃ１５"), "#C15");
        assert_eq!(fold_width("ｃ１５"), "c15");
        assert_eq!(fold_width("　a　"), " a ");
    }

    #[test]
    fn leaves_everything_else_alone() {
        assert_eq!(
            fold_width("あいう 漢字 abc 123 😀"),
            "あいう 漢字 abc 123 😀"
        );
    }

    #[test]
    fn hyphen_variants() {
        for c in ['-', 'ー', '－', '‐', '–', '—', '−', 'ｰ'] {
            assert!(is_hyphen_like(c), "{c:?}");
        }
        for c in ['_', '一', '~', '=', ' '] {
            assert!(!is_hyphen_like(c), "{c:?}");
        }
    }
}
