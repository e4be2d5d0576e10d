//! UI strings in Japanese (the default, with the vendor manual's words) and English (B3).
//!
//! Every string a page shows comes from `locales/ja.ftl` or `locales/en.ftl`, in Project
//! Fluent's syntax (<https://projectfluent.org/fluent/guide/>), embedded in the binary with
//! `include_str!` and loaded by `fluent-bundle` on first use (nothing is read at run time):
//!
//! - one message per line, `id = text`; ids are the page that uses them, then what the
//!   string is, joined by `-` (`chats-list-heading`, `common-status-in_progress`): Fluent ids
//!   cannot hold dots, and `_` stays so that ids built from codes (`chats-wait-{code}`,
//!   `common-status-{status}`) need no conversion;
//! - `{ $name }` is a variable, filled by [`I18n::tf`]; [`I18n::t`] shows it as `{name}`,
//!   which is how page scripts fill the strings they are given (`PageCtx::strings_json`);
//! - Fluent's bidi isolation marks (U+2068/U+2069 around each variable) are off: the UI is
//!   Japanese and English only, and the marks would end up in HTML, titles and tests.
//!
//! Unit tests keep the two files parsing, with the same ids, the same variables per id and
//! no empty text, and check that every id the templates and `src/` name exists, so adding a
//! string to one file alone, or using an id no file has, fails the tests.

use std::collections::HashMap;
use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::resolver::ResolverError;
use fluent_bundle::resolver::errors::ReferenceKind;
use fluent_bundle::{FluentArgs, FluentError, FluentResource};
use fluent_syntax::ast;

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

const JA_SOURCE: &str = include_str!("../locales/ja.ftl");
const EN_SOURCE: &str = include_str!("../locales/en.ftl");

/// One language: its Fluent bundle, and each message as [`I18n::t`] shows it.
struct Strings {
    bundle: FluentBundle<FluentResource>,
    /// id → the message's text with its variables left as `{name}`, formatted once.
    plain: HashMap<String, String>,
    /// id → the message's variables, sorted (the tests compare the languages').
    #[cfg_attr(not(test), allow(dead_code))]
    variables: HashMap<String, Vec<String>>,
}

impl Strings {
    /// Parses `source` (an FTL file) for `locale`. Errors name the line.
    fn load(locale: Locale, source: &str) -> Result<Strings, String> {
        let resource = FluentResource::try_new(source.to_owned()).map_err(|(_, errors)| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| {
                    // The broken entry's first line (where the parser gave up may be past it).
                    let at = e.slice.as_ref().map_or(e.pos.start, |s| s.start);
                    let before = &source[..at.min(source.len())];
                    let line = before.matches('\n').count() + 1;
                    format!("line {line}: {:?}", e.kind)
                })
                .collect();
            lines.join("; ")
        })?;
        let ids: Vec<String> = resource
            .entries()
            .filter_map(|entry| match entry {
                ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect();
        let lang = locale
            .as_str()
            .parse()
            .map_err(|e| format!("language tag: {e}"))?;
        let mut bundle = FluentBundle::new_concurrent(vec![lang]);
        bundle.set_use_isolating(false);
        bundle.add_resource(resource).map_err(|errors| {
            let ids: Vec<String> = errors
                .iter()
                .map(|e| match e {
                    FluentError::Overriding { id, .. } => format!("duplicate id {id}"),
                    other => other.to_string(),
                })
                .collect();
            ids.join("; ")
        })?;
        let mut plain = HashMap::new();
        let mut variables = HashMap::new();
        for id in ids {
            let pattern = bundle
                .get_message(&id)
                .and_then(|m| m.value())
                .ok_or_else(|| format!("{id} has no text"))?;
            // Formatting without arguments names each variable the text uses (as an error).
            let mut errors = Vec::new();
            bundle.format_pattern(pattern, None, &mut errors);
            let mut vars = Vec::new();
            for e in errors {
                match e {
                    FluentError::ResolverError(ResolverError::Reference(
                        ReferenceKind::Variable { id },
                    )) => vars.push(id),
                    other => return Err(format!("{id}: {other}")),
                }
            }
            vars.sort();
            vars.dedup();
            let mut args = FluentArgs::new();
            for v in &vars {
                args.set(v.clone(), format!("{{{v}}}"));
            }
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
            if let Some(e) = errors.first() {
                return Err(format!("{id}: {e}"));
            }
            plain.insert(id.clone(), text.into_owned());
            variables.insert(id, vars);
        }
        Ok(Strings {
            bundle,
            plain,
            variables,
        })
    }
}

static JA: LazyLock<Strings> = LazyLock::new(|| {
    Strings::load(Locale::Ja, JA_SOURCE).unwrap_or_else(|e| panic!("locales/ja.ftl: {e}"))
});
static EN: LazyLock<Strings> = LazyLock::new(|| {
    Strings::load(Locale::En, EN_SOURCE).unwrap_or_else(|e| panic!("locales/en.ftl: {e}"))
});

fn strings(locale: Locale) -> &'static Strings {
    match locale {
        Locale::Ja => &JA,
        Locale::En => &EN,
    }
}

/// The string tables.
pub struct I18n;

impl I18n {
    /// The string `key` (a Fluent message id) in `locale`, variables shown as `{name}`; a
    /// missing key shows as the key itself.
    pub fn t(locale: Locale, key: &str) -> &'static str {
        match strings(locale).plain.get(key) {
            Some(v) => v.as_str(),
            None => missing(locale, key),
        }
    }

    /// [`I18n::t`] with its variables (`{ $name }`) filled from `args`.
    pub fn tf(locale: Locale, key: &str, args: &[(&str, &str)]) -> String {
        let s = strings(locale);
        let Some(pattern) = s.bundle.get_message(key).and_then(|m| m.value()) else {
            return missing(locale, key).to_owned();
        };
        let mut fluent_args = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            fluent_args.set(*name, *value);
        }
        let mut errors = Vec::new();
        let text = s
            .bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors)
            .into_owned();
        if !errors.is_empty() {
            // A variable the caller did not give shows as `{$name}`; the page still works.
            tracing::warn!(
                key,
                locale = locale.as_str(),
                ?errors,
                "UI string not filled"
            );
        }
        text
    }

    /// Every key of a locale, sorted, for tests and tooling.
    pub fn keys(locale: Locale) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> =
            strings(locale).plain.keys().map(String::as_str).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(locale: Locale) -> Strings {
        let (name, source) = match locale {
            Locale::Ja => ("ja.ftl", JA_SOURCE),
            Locale::En => ("en.ftl", EN_SOURCE),
        };
        Strings::load(locale, source).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn locale_files_have_the_same_keys_and_no_empty_values() {
        let ja = load(Locale::Ja);
        let en = load(Locale::En);
        let mut only_ja: Vec<_> = ja
            .plain
            .keys()
            .filter(|k| !en.plain.contains_key(*k))
            .collect();
        let mut only_en: Vec<_> = en
            .plain
            .keys()
            .filter(|k| !ja.plain.contains_key(*k))
            .collect();
        only_ja.sort();
        only_en.sort();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "ids only in ja.ftl: {only_ja:?}; ids only in en.ftl: {only_en:?}"
        );
        for (name, strings) in [("ja", &ja), ("en", &en)] {
            let mut empty: Vec<_> = strings
                .plain
                .iter()
                .filter(|(_, v)| v.trim().is_empty())
                .map(|(k, _)| k)
                .collect();
            empty.sort();
            assert!(empty.is_empty(), "empty values in {name}.ftl: {empty:?}");
        }
        // Variables must match too, or a translation would print a raw `{$name}`.
        for (k, vars) in &ja.variables {
            assert_eq!(vars, &en.variables[k], "variables of {k}");
        }
    }

    #[test]
    fn a_broken_file_fails_to_load() {
        assert!(
            Strings::load(Locale::En, "a = one\nb = \n").is_err(),
            "an empty text"
        );
        assert!(
            Strings::load(Locale::En, "a = one\na = two\n").is_err(),
            "a duplicate"
        );
        assert!(
            Strings::load(Locale::En, "a.b = dotted\n").is_err(),
            "a dotted id"
        );
        assert!(
            Strings::load(Locale::En, "a = { $open\n").is_err(),
            "an open brace"
        );
        let err = Strings::load(Locale::En, "a = fine\n\nb = { nope\n")
            .err()
            .unwrap();
        assert!(err.contains("line 3"), "{err}");
    }

    /// Every id the templates and `src/` name exists: in `src/` each string literal that
    /// starts like an id (`"chats-list-heading"`), in templates each literal given to
    /// `ctx.t(…)` and its kin. A literal ending in `-` or followed by `{`
    /// (`format!("chats-wait-{}", …)`) is the start of ids. A mistyped id would otherwise
    /// only show as itself on a page.
    #[test]
    fn every_key_the_code_uses_exists() {
        let keys = I18n::keys(Locale::Ja);
        let groups: std::collections::BTreeSet<&str> =
            keys.iter().filter_map(|k| k.split('-').next()).collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut literals = Vec::new();
        let mut stack = vec![dir.join("src"), dir.join("templates")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let text = || std::fs::read_to_string(&path).unwrap();
                match path.extension().and_then(|e| e.to_str()) {
                    _ if path.is_dir() => stack.push(path),
                    Some("rs") => literals.extend(rust_literals(&text())),
                    Some("html") => literals.extend(template_ids(&text())),
                    _ => {}
                }
            }
        }
        let mut checked = 0;
        let mut unknown = Vec::new();
        for literal in literals {
            let id = literal.split('{').next().unwrap_or("");
            let Some((group, _)) = id.split_once('-') else {
                continue;
            };
            if !groups.contains(group)
                || NOT_IDS.contains(&id)
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                continue;
            }
            checked += 1;
            let known = if id.len() < literal.len() || id.ends_with('-') {
                keys.iter().any(|k| k.starts_with(id))
            } else {
                keys.binary_search(&id).is_ok()
            };
            if !known {
                unknown.push(literal);
            }
        }
        assert!(
            checked > 300,
            "found only {checked} ids: is the scan broken?"
        );
        assert!(unknown.is_empty(), "ids no locale file has: {unknown:?}");
    }

    /// Literals in `src/` that look like ids but are not.
    const NOT_IDS: &[&str] = &["sec-fetch-site"];

    /// The string literals of Rust source (escapes kept, `'"'` skipped).
    fn rust_literals(text: &str) -> Vec<String> {
        let text = text.replace("'\"'", "");
        let mut out = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut literal = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        literal.push(c);
                        literal.extend(chars.next());
                    }
                    '"' => break,
                    c => literal.push(c),
                }
            }
            out.push(literal);
        }
        out
    }

    /// The literals a template gives to `ctx.t(…)`, `ctx.tf(…)`, `ctx.tf1(…)` and
    /// `ctx.strings_json([…])` (only those: an HTML id like `chats-strings` is no string id).
    fn template_ids(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for call in ["ctx.t(", "ctx.tf(", "ctx.tf1(", "strings_json(["] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let args = if call.ends_with('[') {
                    rest.split(']').next().unwrap_or("")
                } else {
                    rest.split([',', ')']).next().unwrap_or("")
                };
                // Only literals: `ctx.t(error)` passes an id made in src/.
                out.extend(args.split('"').skip(1).step_by(2).map(str::to_owned));
            }
        }
        out
    }

    /// Issue 10: what the chat screen says about errors, waiting and failed deliveries is
    /// Japanese in ja — no ASCII-only sentence (an English one) among them.
    #[test]
    fn agent_facing_errors_are_japanese() {
        let prefixes = [
            "send-",
            "status-",
            "delivery-",
            "chats-wait-",
            "chats-error-",
            "list-error-",
            "chats-unsent-",
            "chats-lock-",
            "customers-error-",
            "line_settings-error-",
        ];
        let english: Vec<_> = I18n::keys(Locale::Ja)
            .into_iter()
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .filter(|k| I18n::t(Locale::Ja, k).is_ascii())
            .collect();
        assert!(
            english.is_empty(),
            "ASCII-only Japanese strings: {english:?}"
        );
    }

    #[test]
    fn the_manuals_terms_are_used() {
        assert_eq!(I18n::t(Locale::Ja, "nav-chats"), "LINEチャット");
        assert_eq!(I18n::t(Locale::Ja, "nav-admin"), "管理設定");
        assert_eq!(I18n::t(Locale::Ja, "nav-line_settings"), "LINE設定");
        assert_eq!(I18n::t(Locale::Ja, "common-save"), "変更を保存");
        assert_eq!(I18n::t(Locale::Ja, "common-status-in_progress"), "対応中");
        assert_eq!(I18n::t(Locale::En, "nav-chats"), "LINE chats");
    }

    /// What the pages rely on: variables filled without Fluent's isolation marks, shown as
    /// `{name}` by `t` (page scripts fill those), quotes kept, a missing id shown as itself.
    #[test]
    fn variables_and_missing_ids() {
        assert_eq!(
            I18n::tf(Locale::En, "users-msg-created", &[("login", "sato")]),
            "Added the user \"sato\"."
        );
        assert_eq!(
            I18n::t(Locale::En, "users-msg-created"),
            "Added the user \"{login}\"."
        );
        assert!(
            !I18n::tf(Locale::Ja, "login-throttled", &[("minutes", "5")])
                .contains(['\u{2068}', '\u{2069}'])
        );
        assert_eq!(I18n::t(Locale::Ja, "no-such-id"), "no-such-id");
        assert_eq!(I18n::tf(Locale::En, "no-such-id", &[]), "no-such-id");
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
        assert!(I18n::tf(Locale::Ja, "login-throttled", &[("minutes", "5")]).contains('5'));
    }
}
