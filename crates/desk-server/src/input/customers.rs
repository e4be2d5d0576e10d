//! Customers (L1–L4) as typed: the fields of a customer, a passcode's expiry and the
//! customer search.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use desk_core::customer_code::{normalize_phone_digits, parse_code_query};
use desk_core::normalize::{fold_width_char, is_hyphen_like};
use desk_store::customers::{CustomerFields, CustomerFilter};
use serde::Deserialize;

use super::{InputError, err, non_empty};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PHONE_CHARS: usize = 30;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_NOTES_CHARS: usize = 2000;
pub const MAX_TAG_CHARS: usize = 30;
pub const MAX_TAGS: usize = 20;
/// History rows returned (newest first).
pub const HISTORY_LIMIT: i64 = 500;

fn has_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

pub fn clean_name(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_NAME_CHARS || has_control(s, false) {
        return Err(err(
            "customers-error-name",
            "name is required (at most 100 characters)",
        ));
    }
    Ok(s.to_owned())
}

/// Digits, hyphens (any of the dashes Japanese input gives), spaces, `+` and parentheses,
/// full-width too; at least one digit. Kept as typed; searched by its digits.
pub fn clean_phone(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let allowed = s.chars().all(|c| {
        let f = fold_width_char(c);
        f.is_ascii_digit() || is_hyphen_like(c) || matches!(f, ' ' | '+' | '(' | ')')
    });
    if !allowed || s.chars().count() > MAX_PHONE_CHARS || normalize_phone_digits(s).is_empty() {
        return Err(err(
            "customers-error-phone",
            "phone may hold digits, hyphens, spaces, + and parentheses (at most 30 characters)",
        ));
    }
    Ok(s.to_owned())
}

pub fn clean_email(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let ok = s.chars().count() <= MAX_EMAIL_CHARS
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !ok {
        return Err(err(
            "customers-error-email",
            "email must look like name@example.com",
        ));
    }
    Ok(s.to_owned())
}

pub fn clean_notes(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.chars().count() > MAX_NOTES_CHARS || has_control(s, true) {
        return Err(err(
            "customers-error-notes",
            "notes may be at most 2000 characters",
        ));
    }
    Ok(s.replace("\r\n", "\n"))
}

/// Trimmed, empty ones dropped, duplicates dropped (first kept).
pub fn clean_tags<S: AsRef<str>>(tags: &[S]) -> Result<Vec<String>, InputError> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.as_ref().trim();
        if t.is_empty() || out.iter().any(|o| o == t) {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS || has_control(t, false) {
            return Err(err(
                "customers-error-tag",
                "a tag may be at most 30 characters",
            ));
        }
        out.push(t.to_owned());
    }
    if out.len() > MAX_TAGS {
        return Err(err("customers-error-tags", "at most 20 tags"));
    }
    Ok(out)
}

/// Tags typed in one field: separated by commas (`,` `、` `，`) or new lines.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([',', '、', '，', '\n'])
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// All fields of a customer, checked.
pub fn clean_fields<S: AsRef<str>>(
    name: &str,
    phone: &str,
    email: &str,
    notes: &str,
    tags: &[S],
) -> Result<CustomerFields, InputError> {
    Ok(CustomerFields {
        name: clean_name(name)?,
        phone: clean_phone(phone)?,
        email: clean_email(email)?,
        notes: clean_notes(notes)?,
        tags: clean_tags(tags)?,
    })
}

/// A passcode expiry as typed: RFC 3339 (`2024-01-08T10:00:00+09:00`), a local date and
/// time in the desk's time zone (`2024-01-08T10:00`, `2024-01-08 10:00`, as a
/// `datetime-local` field sends it), or a date (valid through that day).
pub fn parse_valid_until(s: &str, tz: Tz) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(s, fmt) {
            return tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(crate::time::day_start_ms(date.succ_opt()?, tz))
}

/// The expiry a passcode issued now gets: `requested` (checked: in the future, within 90
/// days) or the default 7 days.
pub fn passcode_expiry(requested: Option<&str>, now_ms: i64, tz: Tz) -> Result<i64, InputError> {
    let requested = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_valid_until(s, tz).ok_or(err(
            "customers-error-valid_until",
            "valid_until must be a date and time (RFC 3339, or YYYY-MM-DDTHH:MM in the desk's time zone)",
        ))?),
        None => None,
    };
    desk_core::passcode::valid_until(now_ms, requested).map_err(|e| match e {
        desk_core::passcode::ValidUntilError::InThePast => err(
            "customers-error-valid_until_past",
            "valid_until must be in the future",
        ),
        desk_core::passcode::ValidUntilError::TooFar => err(
            "customers-error-valid_until_far",
            "a passcode can be valid for at most 90 days",
        ),
    })
}

/// The customer search as typed (`?id=&name=&phone=`).
#[derive(Deserialize, Default, Clone, Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Customer ID: 15, #C15, C15 (full-width too).
    pub id: Option<String>,
    /// Part of the name, as typed (spaces, letter case and full-width letters do not matter).
    pub name: Option<String>,
    /// Part of the phone number; only its digits count (with or without hyphens).
    pub phone: Option<String>,
    /// Page size, default 50; taken as 1–500 (a number outside, as the nearer bound).
    #[param(default = 50)]
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
    /// Paging back: the customers just newer than this id (the `prev` cursor).
    #[serde(default)]
    pub after: Option<String>,
}

impl SearchQuery {
    /// Empty fields are no filter. `id` takes `15`, `#C15`, `C15` (full-width too); `phone`
    /// matches by digits, with or without hyphens.
    pub fn to_filter(&self, default_limit: i64) -> Result<CustomerFilter, InputError> {
        let id = match non_empty(&self.id) {
            Some(s) => Some(parse_code_query(s).ok_or(err(
                "customers-error-search_id",
                "id must be a customer ID like 15 or #C15",
            ))?),
            None => None,
        };
        let phone_digits = match non_empty(&self.phone) {
            Some(s) => {
                let d = normalize_phone_digits(s);
                if d.is_empty() {
                    return Err(err(
                        "customers-error-search_phone",
                        "phone must contain digits",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let before_id = match non_empty(&self.before) {
            Some(s) => Some(s.parse().map_err(|_| {
                err(
                    "customers-error-search_id",
                    "before is not a cursor from a previous page",
                )
            })?),
            None => None,
        };
        let after_id = match non_empty(&self.after) {
            Some(s) => Some(s.parse().map_err(|_| {
                err(
                    "customers-error-search_id",
                    "after is not a cursor from a previous page",
                )
            })?),
            None => None,
        };
        Ok(CustomerFilter {
            id,
            name: non_empty(&self.name).map(str::to_owned),
            phone_digits,
            before_id,
            after_id,
            limit: self.limit.unwrap_or(default_limit).clamp(1, 500),
        })
    }

    pub fn is_empty(&self) -> bool {
        non_empty(&self.id).is_none()
            && non_empty(&self.name).is_none()
            && non_empty(&self.phone).is_none()
    }
}

/// A customer's tag, as the API document describes it (`crate::schema` says why by hand).
pub struct TagSchema;

impl utoipa::PartialSchema for TagSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(MAX_TAG_CHARS))
            .description(Some("A tag (at most 30 characters)"))
            .into()
    }
}

impl utoipa::ToSchema for TagSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Tag")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(clean_name("  山田 花子 ").unwrap(), "山田 花子");
        assert!(clean_name(" ").is_err());
        assert!(clean_name(&"あ".repeat(101)).is_err());
        assert_eq!(clean_phone(" 090-1234-5678 ").unwrap(), "090-1234-5678");
        assert_eq!(
            clean_phone("０９０ー１２３４ー５６７８").unwrap(),
            "０９０ー１２３４ー５６７８"
        );
        assert_eq!(
            clean_phone("+81 (90) 1234 5678").unwrap(),
            "+81 (90) 1234 5678"
        );
        assert_eq!(clean_phone("").unwrap(), "");
        assert!(clean_phone("090-abcd").is_err());
        assert!(clean_phone("--").is_err());
        assert_eq!(clean_email("a@example.jp").unwrap(), "a@example.jp");
        assert!(clean_email("a@").is_err());
        assert!(clean_email("a b@example.jp").is_err());
        assert_eq!(clean_notes("a\r\nb").unwrap(), "a\nb");
        assert_eq!(
            clean_tags(&split_tags("VIP、 要注意, VIP,\n法人")).unwrap(),
            vec!["VIP", "要注意", "法人"]
        );
        assert!(clean_tags(&["x".repeat(31)]).is_err());
    }

    #[test]
    fn expiries() {
        let tz = chrono_tz::Asia::Tokyo;
        let now = tz
            .with_ymd_and_hms(2024, 1, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let day = 86_400_000;
        assert_eq!(passcode_expiry(None, now, tz), Ok(now + 7 * day));
        assert_eq!(passcode_expiry(Some(" "), now, tz), Ok(now + 7 * day));
        assert_eq!(
            passcode_expiry(Some("2024-01-02T10:00"), now, tz),
            Ok(now + day)
        );
        assert_eq!(
            passcode_expiry(Some("2024-01-02T10:00:00+09:00"), now, tz),
            Ok(now + day)
        );
        assert_eq!(
            passcode_expiry(Some("2024-01-02T01:00:00Z"), now, tz),
            Ok(now + day)
        );
        // A date: through the end of that day.
        assert_eq!(
            passcode_expiry(Some("2024-01-02"), now, tz),
            Ok(now + day + 14 * 3_600_000)
        );
        assert_eq!(
            passcode_expiry(Some("2023-12-31"), now, tz)
                .unwrap_err()
                .key,
            "customers-error-valid_until_past"
        );
        assert_eq!(
            passcode_expiry(Some("2024-06-01"), now, tz)
                .unwrap_err()
                .key,
            "customers-error-valid_until_far"
        );
        assert_eq!(
            passcode_expiry(Some("soon"), now, tz).unwrap_err().key,
            "customers-error-valid_until"
        );
    }

    #[test]
    fn searches() {
        let q = SearchQuery {
            id: Some("＃Ｃ１５".into()),
            phone: Some("090-1234".into()),
            name: Some("  ".into()),
            ..Default::default()
        };
        let f = q.to_filter(50).unwrap();
        assert_eq!(
            (f.id, f.phone_digits.as_deref(), f.name),
            (Some(15), Some("0901234"), None)
        );
        let bad = SearchQuery {
            id: Some("山田".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.to_filter(50).unwrap_err().key,
            "customers-error-search_id"
        );
        let bad = SearchQuery {
            phone: Some("なし".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.to_filter(50).unwrap_err().key,
            "customers-error-search_phone"
        );
    }
}
