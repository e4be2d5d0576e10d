//! UI strings in Japanese (the default, with the vendor manual's words) and English (B3).
//!
//! Every string a page shows comes from `locales/ja.yml` or `locales/en.yml`, embedded in
//! the binary. The files use a flat subset of YAML, parsed here (no YAML crate needed):
//!
//! - one `key: value` per line; keys are dotted names (`[A-Za-z0-9_.-]+`), grouped by the
//!   page that uses them (`common.`, `nav.`, `login.`, `users.`, `chats.`, …);
//! - the value is a double-quoted string with the escapes `\"`, `\\` and `\n`, or a plain
//!   scalar up to the end of the line (no quotes, no `#` in it);
//! - blank lines and lines starting with `#` are comments; no nesting, lists or multi-line
//!   values.
//!
//! Placeholders are `{name}` and filled by [`I18n::tf`]. A unit test keeps the two files'
//! keys equal and their values non-empty, so adding a key to one file alone fails the build's
//! tests.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A UI language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Locale {
    #[default]
    Ja,
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::Ja, Locale::En];

    /// The code stored in `users.locale` and used in `<html lang>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ja => "ja",
            Locale::En => "en",
        }
    }

    /// `ja`/`en` (also `ja-JP`, `en-US`, …); anything else is `None`.
    pub fn parse(s: &str) -> Option<Locale> {
        let primary = s.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "ja" => Some(Locale::Ja),
            "en" => Some(Locale::En),
            _ => None,
        }
    }

    /// A stored locale; unknown values fall back to Japanese.
    pub fn from_code(s: &str) -> Locale {
        Locale::parse(s).unwrap_or_default()
    }

    /// The login page's language from `Accept-Language`: Japanese unless the browser
    /// prefers English over Japanese (by q-value, then by order).
    pub fn from_accept_language(header: Option<&str>) -> Locale {
        let Some(header) = header else {
            return Locale::Ja;
        };
        let mut best: Option<(f32, Locale)> = None;
        for part in header.split(',') {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim();
            let q = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(locale) = Locale::parse(tag)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Locale::Ja)
    }

    /// The other language (for the language switch).
    pub fn other(self) -> Locale {
        match self {
            Locale::Ja => Locale::En,
            Locale::En => Locale::Ja,
        }
    }

    /// The language's own name, for the switch ("日本語", "English").
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::Ja => "日本語",
            Locale::En => "English",
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const JA_SOURCE: &str = include_str!("../locales/ja.yml");
const EN_SOURCE: &str = include_str!("../locales/en.yml");

type Table = HashMap<String, String>;

static JA: LazyLock<Table> =
    LazyLock::new(|| parse_flat_yaml(JA_SOURCE).unwrap_or_else(|e| panic!("locales/ja.yml: {e}")));
static EN: LazyLock<Table> =
    LazyLock::new(|| parse_flat_yaml(EN_SOURCE).unwrap_or_else(|e| panic!("locales/en.yml: {e}")));

/// The string tables.
pub struct I18n;

impl I18n {
    /// The string for `key` in `locale`; a missing key shows as the key itself.
    pub fn t(locale: Locale, key: &str) -> &'static str {
        let table: &'static Table = match locale {
            Locale::Ja => &JA,
            Locale::En => &EN,
        };
        match table.get(key) {
            Some(v) => v.as_str(),
            None => missing(locale, key),
        }
    }

    /// [`I18n::t`] with `{name}` placeholders filled from `args`.
    pub fn tf(locale: Locale, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = I18n::t(locale, key).to_owned();
        for (name, value) in args {
            s = s.replace(&format!("{{{name}}}"), value);
        }
        s
    }

    /// Every key of a locale, for tests and tooling.
    pub fn keys(locale: Locale) -> Vec<&'static str> {
        let table: &'static Table = match locale {
            Locale::Ja => &JA,
            Locale::En => &EN,
        };
        let mut keys: Vec<&'static str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }
}

/// A missing key shows as the key itself (logged once), so a forgotten string is visible
/// on the page instead of breaking it. Keys are few and fixed, so keeping them is bounded.
#[cold]
fn missing(locale: Locale, key: &str) -> &'static str {
    static SEEN: LazyLock<std::sync::Mutex<HashMap<String, &'static str>>> =
        LazyLock::new(Default::default);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(key) {
        return s;
    }
    tracing::warn!(key, locale = locale.as_str(), "missing UI string");
    let leaked: &'static str = Box::leak(key.to_owned().into_boxed_str());
    seen.insert(key.to_owned(), leaked);
    leaked
}

/// Parses the flat YAML subset described in the module docs. Errors name the line.
pub fn parse_flat_yaml(src: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (i, raw) in src.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.len() != line.len() {
            return Err(format!("line {n}: indentation (nesting) is not supported"));
        }
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("line {n}: expected `key: value`"))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(format!("line {n}: bad key {key:?}"));
        }
        let rest = rest.trim();
        let value = if let Some(body) = rest.strip_prefix('"') {
            unquote(body).map_err(|e| format!("line {n}: {e}"))?
        } else {
            if rest.contains(['"', '#']) {
                return Err(format!("line {n}: quote the value (it holds `\"` or `#`)"));
            }
            rest.to_owned()
        };
        if out.insert(key.to_owned(), value).is_some() {
            return Err(format!("line {n}: duplicate key {key:?}"));
        }
    }
    Ok(out)
}

/// The inside of a double-quoted value (after the opening quote) up to its closing quote.
fn unquote(body: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let tail = chars.as_str().trim();
                if !tail.is_empty() && !tail.starts_with('#') {
                    return Err(format!("text after the closing quote: {tail:?}"));
                }
                return Ok(out);
            }
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
            },
            c => out.push(c),
        }
    }
    Err("missing closing quote".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_files_have_the_same_keys_and_no_empty_values() {
        let ja = parse_flat_yaml(JA_SOURCE).expect("ja.yml parses");
        let en = parse_flat_yaml(EN_SOURCE).expect("en.yml parses");
        let mut only_ja: Vec<_> = ja.keys().filter(|k| !en.contains_key(*k)).collect();
        let mut only_en: Vec<_> = en.keys().filter(|k| !ja.contains_key(*k)).collect();
        only_ja.sort();
        only_en.sort();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "keys only in ja.yml: {only_ja:?}; keys only in en.yml: {only_en:?}"
        );
        for (name, table) in [("ja", &ja), ("en", &en)] {
            let mut empty: Vec<_> = table
                .iter()
                .filter(|(_, v)| v.trim().is_empty())
                .map(|(k, _)| k)
                .collect();
            empty.sort();
            assert!(empty.is_empty(), "empty values in {name}.yml: {empty:?}");
        }
        // Placeholders must match too, or a translation would print a raw `{name}`.
        for (k, v) in &ja {
            assert_eq!(placeholders(v), placeholders(&en[k]), "placeholders of {k}");
        }
    }

    fn placeholders(s: &str) -> Vec<String> {
        let mut out: Vec<String> = s
            .split('{')
            .skip(1)
            .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        out.sort();
        out
    }

    /// Issue 10: what the chat screen says about errors, waiting and failed deliveries is
    /// Japanese in ja — no ASCII-only sentence (an English one) among them.
    #[test]
    fn agent_facing_errors_are_japanese() {
        let ja = parse_flat_yaml(JA_SOURCE).unwrap();
        let prefixes = [
            "send.",
            "status.",
            "delivery.",
            "chats.wait.",
            "chats.error.",
            "list.error.",
            "chats.unsent.",
            "chats.lock.",
            "customers.error.",
            "line_settings.error.",
        ];
        let mut english = Vec::new();
        for (k, v) in &ja {
            if prefixes.iter().any(|p| k.starts_with(p)) && v.is_ascii() {
                english.push(k.clone());
            }
        }
        english.sort();
        assert!(
            english.is_empty(),
            "ASCII-only Japanese strings: {english:?}"
        );
    }

    #[test]
    fn the_manuals_terms_are_used() {
        assert_eq!(I18n::t(Locale::Ja, "nav.chats"), "LINEチャット");
        assert_eq!(I18n::t(Locale::Ja, "nav.admin"), "管理設定");
        assert_eq!(I18n::t(Locale::Ja, "nav.line_settings"), "LINE設定");
        assert_eq!(I18n::t(Locale::Ja, "common.save"), "変更を保存");
        assert_eq!(I18n::t(Locale::Ja, "common.status.in_progress"), "対応中");
        assert_eq!(I18n::t(Locale::En, "nav.chats"), "LINE chats");
    }

    #[test]
    fn parser_subset() {
        let t = parse_flat_yaml(
            "# comment\n\na.b: \"x \\\"y\\\" \\\\ {n}\"  # trailing\nplain: hello world\n",
        )
        .unwrap();
        assert_eq!(t["a.b"], "x \"y\" \\ {n}");
        assert_eq!(t["plain"], "hello world");
        assert!(parse_flat_yaml("a: 1\na: 2\n").is_err());
        assert!(parse_flat_yaml("a:\n  b: 1\n").is_err());
        assert!(parse_flat_yaml("a: \"open\n").is_err());
        assert!(parse_flat_yaml("bad key: x\n").is_err());
    }

    #[test]
    fn accept_language() {
        assert_eq!(Locale::from_accept_language(None), Locale::Ja);
        assert_eq!(
            Locale::from_accept_language(Some("en-US,en;q=0.9")),
            Locale::En
        );
        assert_eq!(
            Locale::from_accept_language(Some("ja,en-US;q=0.8")),
            Locale::Ja
        );
        assert_eq!(
            Locale::from_accept_language(Some("en;q=0.5,ja;q=0.9")),
            Locale::Ja
        );
        assert_eq!(Locale::from_accept_language(Some("fr-FR,de")), Locale::Ja);
        assert_eq!(
            Locale::from_accept_language(Some("fr-FR,en;q=0.3")),
            Locale::En
        );
        assert_eq!(Locale::from_accept_language(Some("en;q=0")), Locale::Ja);
        assert!(I18n::tf(Locale::Ja, "login.throttled", &[("minutes", "5")]).contains('5'));
    }
}
