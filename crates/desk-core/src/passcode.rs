//! LINE passcodes: the customer links their LINE account to their customer record (spec L2).
//!
//! An agent issues a passcode on the customer detail screen (パスコード登録 / 更新) with an expiry
//! (パスコード有効期限); the customer sends it from LINE to the account, and the LINE user is
//! linked to that customer. The manual's example is `@105-908`: an `@`, three digits, a hyphen,
//! three digits.
//!
//! # Rules and decisions
//!
//! * **Shape** `@ddd-ddd` ([`Passcode`]). [`generate`] turns caller-supplied randomness into one;
//!   the caller also makes sure no other *valid* passcode has the same digits (a unique index
//!   on the active passcode, retry on conflict).
//! * **Recognising an attempt** ([`parse_candidate`]): the whole message, after trimming
//!   whitespace and folding what Japanese phones type (full-width `＠１０５－９０８`, `ー`, dashes, see
//!   [`crate::normalize`]), must be exactly the shape. **Decision:** the hyphen may be left
//!   out (`@105908`) — unambiguous, and easy to do on a phone; the `@` may not, since it is what
//!   marks a message as a passcode rather than, say, a phone number fragment. A message with
//!   other words around the code is an ordinary chat message.
//! * **Validity** ([`is_valid`]): issued, not yet expired, not used, not replaced by a newer
//!   passcode for the same customer (issuing again replaces, docs/interface.md). Default validity
//!   [`DEFAULT_VALIDITY_MS`] (7 days), at most [`MAX_VALIDITY_MS`] (90 days), see
//!   [`valid_until`]. **Decision:** a passcode is single-use: once it linked a LINE user, it is
//!   used; linking a second LINE account needs a new passcode, so a leaked code links at most one
//!   stranger.
//! * **Guessing throttle** ([`attempt_allowed`]): there are only a million codes, so a LINE user
//!   gets at most [`MAX_FAILED_ATTEMPTS`] (5) wrong passcode-shaped messages per
//!   [`THROTTLE_WINDOW_MS`] (1 hour, sliding). Further attempts are silently ignored — not
//!   checked at all, right or wrong, and not recorded — until the oldest failure leaves the
//!   window. The order in the handler is: [`parse_candidate`] → [`attempt_allowed`] → look the
//!   code up → link, or record a failure. "Unknown", "expired", "used" and "replaced" are all
//!   failures, and the customer is not told which.
//! * **Desk-wide guessing budget** ([`budget_allows`], issue 9 item 6): the per-user limit
//!   alone let 20 LINE users make 100 guesses an hour. At most [`GLOBAL_FAILURE_BUDGET`]
//!   wrong passcodes per [`THROTTLE_WINDOW_MS`] are checked on the whole desk; beyond that
//!   every passcode attempt waits unchecked (`throttled`, like the per-user limit) until the
//!   hour has room again, and admins are alerted (`/metrics`, LINE設定). **Decision:** the
//!   code space stays the manual's six digits (`@105-908`: agents read codes out on the
//!   phone, digits are what customers type easily). With the budget, a guesser gets 20
//!   tries an hour against 10⁶ codes: with 100 codes valid at once, one hit in about 500
//!   hours of continuous guessing — during which the alert stands. Legitimate customers
//!   rarely mistype 20 times an hour; while the budget is exhausted, their right code is
//!   not checked either (they are told nothing, as with the per-user limit) — the price of
//!   a bound that a crowd of accounts cannot exceed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownValue;
use crate::normalize::{fold_width_char, is_hyphen_like};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Validity of a passcode issued without an explicit expiry: 7 days.
pub const DEFAULT_VALIDITY_MS: i64 = 7 * DAY_MS;
/// The longest validity an agent may choose: 90 days.
pub const MAX_VALIDITY_MS: i64 = 90 * DAY_MS;
/// Wrong passcode attempts a LINE user may make within [`THROTTLE_WINDOW_MS`].
pub const MAX_FAILED_ATTEMPTS: usize = 5;
/// The sliding window of the guessing throttle: 1 hour.
pub const THROTTLE_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Wrong passcodes checked per [`THROTTLE_WINDOW_MS`] on the whole desk, from all LINE
/// users together.
pub const GLOBAL_FAILURE_BUDGET: usize = 20;
/// How many different passcodes exist (six digits).
pub const CODE_SPACE: u32 = 1_000_000;

/// A passcode in its canonical form `@ddd-ddd`, e.g. `@105-908`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Passcode(String);

impl Passcode {
    /// `@ddd-ddd`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six digits as a number (`@105-908` → 105908).
    pub fn number(&self) -> u32 {
        self.0
            .bytes()
            .filter(u8::is_ascii_digit)
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    }

    fn from_number(n: u32) -> Passcode {
        let n = n % CODE_SPACE;
        Passcode(format!("@{:03}-{:03}", n / 1000, n % 1000))
    }
}

impl fmt::Display for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Strict: only the canonical `@ddd-ddd` (for values read back from the database or an API).
/// Customer messages go through [`parse_candidate`] instead.
impl FromStr for Passcode {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let canonical = b.len() == 8
            && b[0] == b'@'
            && b[4] == b'-'
            && b[1..4].iter().chain(&b[5..8]).all(u8::is_ascii_digit);
        if canonical {
            Ok(Passcode(s.to_owned()))
        } else {
            Err(UnknownValue {
                what: "passcode",
                value: s.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for Passcode {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Passcode> for String {
    fn from(p: Passcode) -> String {
        p.0
    }
}

/// What came of one passcode a LINE user sent. Stored as `passcode_attempts.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The code was valid: the LINE user is now linked to its customer.
    Linked,
    /// Unknown, expired, used or replaced (all the same to the sender: never say which).
    Failed,
    /// Not checked: the user's own limit or the desk-wide budget was exhausted.
    Throttled,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 3] = [Self::Linked, Self::Failed, Self::Throttled];

    /// The database form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linked => "linked",
            Self::Failed => "failed",
            Self::Throttled => "throttled",
        }
    }
}

/// A passcode from caller-supplied randomness: the six digits are `random % 1_000_000`.
///
/// Uniformity is the caller's business: `u32 % 1_000_000` favours the values below 967,296 by
/// one part in 4,294 (harmless here); a caller wanting exact uniformity draws from
/// `0..1_000_000` (e.g. `rng.gen_range(0..1_000_000)`), which this maps to itself.
pub fn generate(random: u32) -> Passcode {
    Passcode::from_number(random)
}

/// The passcode a customer's message is, if the whole message is one (see the
/// [module docs](self) for what is accepted).
pub fn parse_candidate(text: &str) -> Option<Passcode> {
    let mut chars = text.trim().chars().map(fold_width_char).peekable();
    if !matches!(chars.next(), Some('@' | '\u{FE6B}')) {
        return None;
    }
    let mut digits = 0u32;
    let mut count = 0;
    while count < 6 {
        match chars.next()? {
            c @ '0'..='9' => {
                digits = digits * 10 + (c as u32 - '0' as u32);
                count += 1;
            }
            c if count == 3 && is_hyphen_like(c) => {
                // One separator, only between the two halves.
                if !chars.peek().is_some_and(char::is_ascii_digit) {
                    return None;
                }
            }
            _ => return None,
        }
    }
    match chars.next() {
        None => Some(Passcode::from_number(digits)),
        Some(_) => None,
    }
}

/// Whether a customer's message is a passcode attempt (and counts for the throttle when wrong).
pub fn looks_like_passcode(text: &str) -> bool {
    parse_candidate(text).is_some()
}

/// Whether a stored passcode links now: `issued_at_ms <= now_ms < valid_until_ms`, not used,
/// not replaced by a newer one.
pub fn is_valid(
    issued_at_ms: i64,
    valid_until_ms: i64,
    used: bool,
    replaced: bool,
    now_ms: i64,
) -> bool {
    !used && !replaced && issued_at_ms <= now_ms && now_ms < valid_until_ms
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidUntilError {
    #[error("the passcode expiry must be in the future")]
    InThePast,
    #[error("a passcode can be valid for at most 90 days")]
    TooFar,
}

/// The expiry of a passcode issued at `now_ms`: `requested` if given (it must be in the future
/// and at most [`MAX_VALIDITY_MS`] away), else `now_ms + DEFAULT_VALIDITY_MS`.
pub fn valid_until(now_ms: i64, requested: Option<i64>) -> Result<i64, ValidUntilError> {
    match requested {
        None => Ok(now_ms + DEFAULT_VALIDITY_MS),
        Some(t) if t <= now_ms => Err(ValidUntilError::InThePast),
        Some(t) if t - now_ms > MAX_VALIDITY_MS => Err(ValidUntilError::TooFar),
        Some(t) => Ok(t),
    }
}

/// The throttle: may a LINE user with these recorded wrong attempts (unix ms) try now?
/// Failures within the last [`THROTTLE_WINDOW_MS`] count; fewer than [`MAX_FAILED_ATTEMPTS`]
/// allows the attempt.
pub fn attempt_allowed(recent_failures_ms: &[i64], now_ms: i64) -> bool {
    let counted = recent_failures_ms
        .iter()
        .filter(|&&t| failure_counts(t, now_ms))
        .count();
    counted < MAX_FAILED_ATTEMPTS
}

/// The desk-wide budget: may any passcode be checked, with `failures_in_window` wrong ones
/// (from all LINE users) within the last [`THROTTLE_WINDOW_MS`]?
pub fn budget_allows(failures_in_window: usize) -> bool {
    failures_in_window < GLOBAL_FAILURE_BUDGET
}

/// Whether a failure at `failed_at_ms` still counts at `now_ms` (failures older than the window
/// may be deleted). Failures stamped after `now_ms` (another instance's clock) count.
pub fn failure_counts(failed_at_ms: i64, now_ms: i64) -> bool {
    failed_at_ms > now_ms - THROTTLE_WINDOW_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_500_000_000_000;
    const HOUR: i64 = THROTTLE_WINDOW_MS;

    fn p(s: &str) -> Option<String> {
        parse_candidate(s).map(String::from)
    }

    #[test]
    fn generates_the_manuals_shape() {
        assert_eq!(generate(105_908).as_str(), "@105-908");
        assert_eq!(generate(0).as_str(), "@000-000");
        assert_eq!(generate(7).as_str(), "@000-007");
        assert_eq!(generate(999_999).as_str(), "@999-999");
        assert_eq!(generate(1_105_908).as_str(), "@105-908");
        assert_eq!(generate(u32::MAX).as_str(), "@967-295");
        assert_eq!(generate(105_908).number(), 105_908);
    }

    #[test]
    fn accepts_what_customers_type() {
        for s in [
            "@105-908",
            "  @105-908\n",
            "＠１０５－９０８",
            "＠１０５ー９０８",
            "@105ー908",
            "@105ｰ908",
            "@105‐908",
            "@105–908",
            "@105−908",
            "@105908",
            "　＠105-908　",
            "\u{FE6B}105-908",
        ] {
            assert_eq!(p(s).as_deref(), Some("@105-908"), "{s:?}");
        }
    }

    #[test]
    fn rejects_anything_else() {
        for s in [
            "",
            "@",
            "105-908",
            "@105-90",
            "@105-9088",
            "@10-5908",
            "@105--908",
            "@105 908",
            "@105-908です",
            "パスコードは@105-908",
            "@105-908 @105-908",
            "@abc-def",
            "@105-908-",
            "@-105908",
            "@105_908",
            "@105一908",
        ] {
            assert_eq!(p(s), None, "{s:?}");
            assert!(!looks_like_passcode(s));
        }
    }

    #[test]
    fn strict_parse_for_stored_values() {
        assert_eq!("@105-908".parse::<Passcode>().unwrap(), generate(105_908));
        assert!("＠105-908".parse::<Passcode>().is_err());
        assert!("@105908".parse::<Passcode>().is_err());
        let json = serde_json::to_string(&generate(105_908)).unwrap();
        assert_eq!(json, "\"@105-908\"");
        assert!(serde_json::from_str::<Passcode>("\"@1-2\"").is_err());
    }

    #[test]
    fn validity() {
        let until = valid_until(T0, None).unwrap();
        assert_eq!(until, T0 + DEFAULT_VALIDITY_MS);
        assert!(is_valid(T0, until, false, false, T0));
        assert!(is_valid(T0, until, false, false, until - 1));
        assert!(!is_valid(T0, until, false, false, until), "expired");
        assert!(!is_valid(T0, until, true, false, T0 + 1), "used");
        assert!(!is_valid(T0, until, false, true, T0 + 1), "replaced");
        assert!(!is_valid(T0, until, false, false, T0 - 1), "not yet issued");
    }

    #[test]
    fn chosen_expiry_must_be_in_the_next_90_days() {
        assert_eq!(valid_until(T0, Some(T0 + 1)), Ok(T0 + 1));
        assert_eq!(valid_until(T0, Some(T0)), Err(ValidUntilError::InThePast));
        assert_eq!(
            valid_until(T0, Some(T0 + MAX_VALIDITY_MS)),
            Ok(T0 + MAX_VALIDITY_MS)
        );
        assert_eq!(
            valid_until(T0, Some(T0 + MAX_VALIDITY_MS + 1)),
            Err(ValidUntilError::TooFar)
        );
    }

    #[test]
    fn five_wrong_attempts_per_hour() {
        let mut failures = vec![];
        for i in 0..5 {
            let now = T0 + i * 60_000;
            assert!(attempt_allowed(&failures, now), "attempt {}", i + 1);
            failures.push(now);
        }
        // The sixth within the hour is ignored...
        assert!(!attempt_allowed(&failures, T0 + 10 * 60_000));
        assert!(!attempt_allowed(&failures, T0 + HOUR - 1));
        // ...until the first failure is an hour old.
        assert!(attempt_allowed(&failures, T0 + HOUR));
        assert!(!failure_counts(T0, T0 + HOUR));
        assert!(failure_counts(T0 + 1, T0 + HOUR));
    }

    #[test]
    fn twenty_wrong_passcodes_an_hour_on_the_whole_desk() {
        assert!(budget_allows(0));
        assert!(budget_allows(GLOBAL_FAILURE_BUDGET - 1));
        assert!(!budget_allows(GLOBAL_FAILURE_BUDGET));
        assert!(!budget_allows(1_000));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn generated_codes_parse_back(r in any::<u32>()) {
            let code = generate(r);
            prop_assert_eq!(code.number(), r % CODE_SPACE);
            prop_assert_eq!(parse_candidate(code.as_str()), Some(code.clone()));
            prop_assert_eq!(code.as_str().parse::<Passcode>().ok(), Some(code.clone()));
            let wide: String = code
                .as_str()
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
                .collect();
            prop_assert_eq!(parse_candidate(&wide), Some(code));
        }

        #[test]
        fn parse_candidate_never_panics_and_yields_canonical_codes(s in "\\PC{0,12}") {
            if let Some(code) = parse_candidate(&s) {
                prop_assert!(code.as_str().parse::<Passcode>().is_ok());
            }
        }
    }
}
