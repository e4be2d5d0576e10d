//! Customer codes and phone search (spec L1, L3, manual ▼画面説明).
//!
//! Customers are shown as `#C15` and searched by `15` ("ex. #C15であれば15と入力"). Agents
//! type what they see, in whatever width their IME gives, so the search accepts `15`, `#C15`,
//! `C15`, `#15`, in either case and full-width (`＃Ｃ１５`). Phone numbers are searched by their
//! digits only, so `090-1234-5678`, `09012345678` and `０９０－１２３４－５６７８` all match.

use crate::normalize::fold_width_char;

/// `#C15` for customer 15.
pub fn format_code(id: i64) -> String {
    format!("#C{id}")
}

/// The customer id a search box entry means: digits, optionally preceded by `#`, `C`/`c` or
/// `#C`, full-width allowed, whitespace around ignored. `None` for anything else (including
/// numbers too large for an id).
pub fn parse_code_query(s: &str) -> Option<i64> {
    let folded: String = s.trim().chars().map(fold_width_char).collect();
    let rest = folded.strip_prefix('#').unwrap_or(&folded);
    let rest = rest
        .strip_prefix('C')
        .or_else(|| rest.strip_prefix('c'))
        .unwrap_or(rest);
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The digits of a phone number, full-width folded to ASCII; everything else (hyphens, spaces,
/// parentheses, `+`) dropped. Store and search phone numbers in this form.
pub fn normalize_phone_digits(s: &str) -> String {
    s.chars()
        .map(fold_width_char)
        .filter(char::is_ascii_digit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_manual() {
        assert_eq!(format_code(15), "#C15");
        assert_eq!(format_code(1), "#C1");
    }

    #[test]
    fn parses_what_agents_type() {
        for s in [
            "15",
            "#C15",
            "c15",
            "#c15",
            "C15",
            "#15",
            " 15 ",
            "１５",
            "＃Ｃ１５",
            "ｃ１５",
            "015",
        ] {
            assert_eq!(parse_code_query(s), Some(15), "{s:?}");
        }
        for s in [
            "",
            "#",
            "#C",
            "C",
            "#C-15",
            "15a",
            "1 5",
            "CC15",
            "C#15",
            "田中",
            "99999999999999999999",
        ] {
            assert_eq!(parse_code_query(s), None, "{s:?}");
        }
        assert_eq!(parse_code_query(&format_code(42)), Some(42));
    }

    #[test]
    fn phone_digits_with_or_without_hyphens() {
        assert_eq!(normalize_phone_digits("090-1234-5678"), "09012345678");
        assert_eq!(normalize_phone_digits("09012345678"), "09012345678");
        assert_eq!(
            normalize_phone_digits("０９０－１２３４－５６７８"),
            "09012345678"
        );
        assert_eq!(normalize_phone_digits("(03) 1234 5678"), "0312345678");
        assert_eq!(normalize_phone_digits("+81 90 1234 5678"), "819012345678");
        assert_eq!(normalize_phone_digits("なし"), "");
    }
}
