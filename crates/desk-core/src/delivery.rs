//! Delivery marks of messages (M4, M6, M7) and the sending mode (M1).
//!
//! Every message row carries a [`Delivery`]. Customer messages are `Received`. An agent
//! message starts `Unsent` (未送信 / "Unsent" in the history, M4) and becomes `Sent` once LINE
//! accepted it (M6). Nothing an agent wrote is dropped (M7): a delivery that definitely failed
//! is `Failed`, and one whose outcome is unknown (a timeout or 5xx on a reply call, whose token
//! cannot be used twice) is `Uncertain` — never resent automatically, because the customer may
//! already have it. A waiting message the agent took back is `Cancelled` (取消): it stays in the
//! history and is never sent afterwards.
//!
//! Why a message failed, may not have arrived, or still waits is a [`Problem`]: a code the UI
//! words from its locale files, and LINE's own message (English) kept apart so it is only ever
//! shown quoted, as LINE's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A customer's message.
    Received,
    /// LINE accepted the agent's message.
    Sent,
    /// Waiting for a reply token (reply mode) or for the outbox worker (push mode).
    Unsent,
    /// LINE refused it for good (e.g. the user blocked the account, or a 4xx other than an
    /// expired reply token).
    Failed,
    /// Sent, but the answer never came (timeout, 5xx): it may or may not have arrived.
    Uncertain,
    /// Taken back while it waited (取消): never sent afterwards, still shown in the history.
    Cancelled,
}

impl Delivery {
    pub const ALL: [Delivery; 6] = [
        Self::Received,
        Self::Sent,
        Self::Unsent,
        Self::Failed,
        Self::Uncertain,
        Self::Cancelled,
    ];

    /// The database form: `"received"`, `"sent"`, `"unsent"`, `"failed"`, `"uncertain"`,
    /// `"cancelled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Sent => "sent",
            Self::Unsent => "unsent",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
            Self::Cancelled => "cancelled",
        }
    }

    /// The form the public API shows (docs/interface.md knows `received | sent | unsent | failed`;
    /// `cancelled` is an extension): `Uncertain` shows as `"failed"` (the API's
    /// `delivery_state` tells them apart).
    pub fn api_str(self) -> &'static str {
        match self {
            Self::Uncertain => "failed",
            other => other.as_str(),
        }
    }

    /// Still waiting to go out: the only mark the outbox picks up.
    pub fn is_pending(self) -> bool {
        self == Self::Unsent
    }
}

/// Why a message failed, may not have reached the customer, or still waits. Stored as JSON in
/// `messages.delivery_error` (failed, uncertain) and `outbox.last_error` (waiting); shown to
/// agents from the locale files (`delivery-problem-<code>`), with `line_message` quoted and
/// labelled as LINE's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: ProblemCode,
    /// LINE's HTTP status, when LINE answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// LINE's own words (its `message` and `details`), or a text stored by an older version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// LINE refused the message for good (a 4xx other than those below).
    LineRefused,
    /// LINE failed (5xx): a reply is uncertain, a push is retried with its key.
    LineServerError,
    /// No answer from LINE in time.
    LineTimeout,
    /// LINE could not be reached.
    Network,
    /// LINE's rate limit (429): retried later.
    RateLimited,
    /// LINE refused the reply token (expired or used): the message waits for the next one.
    InvalidReplyToken,
    /// LINE refused the Channel Access Token: waits until an admin fixes LINE設定.
    Unauthorized,
    /// No Channel Access Token is set (LINE設定).
    NoAccessToken,
    /// The desk stopped while the reply was under way.
    DeskStopped,
    /// More than one LINE call's objects (over 5 × 5,000 units): can never be sent.
    TooLong,
    /// An empty text, which LINE refuses.
    EmptyText,
    /// A text stored by an older version of the desk (kept in `line_message`).
    Other,
}

impl ProblemCode {
    pub const ALL: [ProblemCode; 12] = [
        Self::LineRefused,
        Self::LineServerError,
        Self::LineTimeout,
        Self::Network,
        Self::RateLimited,
        Self::InvalidReplyToken,
        Self::Unauthorized,
        Self::NoAccessToken,
        Self::DeskStopped,
        Self::TooLong,
        Self::EmptyText,
        Self::Other,
    ];

    /// `"line_refused"`, … (the locale key's last part).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LineRefused => "line_refused",
            Self::LineServerError => "line_server_error",
            Self::LineTimeout => "line_timeout",
            Self::Network => "network",
            Self::RateLimited => "rate_limited",
            Self::InvalidReplyToken => "invalid_reply_token",
            Self::Unauthorized => "unauthorized",
            Self::NoAccessToken => "no_access_token",
            Self::DeskStopped => "desk_stopped",
            Self::TooLong => "too_long",
            Self::EmptyText => "empty_text",
            Self::Other => "other",
        }
    }
}

impl Problem {
    pub fn new(code: ProblemCode) -> Problem {
        Problem {
            code,
            status: None,
            line_message: None,
        }
    }

    /// The stored form (JSON).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a Problem serializes")
    }

    /// Reads a stored problem; a plain text from an older version becomes [`ProblemCode::Other`]
    /// with the text kept (shown quoted, never as the desk's own words).
    pub fn from_stored(s: &str) -> Problem {
        serde_json::from_str(s).unwrap_or_else(|_| Problem {
            code: ProblemCode::Other,
            status: None,
            line_message: Some(s.to_owned()).filter(|s| !s.trim().is_empty()),
        })
    }
}

/// Where a waiting agent message is in the outbox. Stored as `outbox.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its turn (a reply token, a retry time, the message before it).
    Queued,
    /// A request carrying it is under way: it can no longer be cancelled, and a desk that
    /// stopped here cannot know whether LINE took it.
    Sending,
}

impl OutboxState {
    pub const ALL: [OutboxState; 2] = [Self::Queued, Self::Sending];

    /// The database form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
        }
    }
}

/// LINE設定 > Mode (S2, M1). Reply is the default: every LINE plan supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Answer with the reply token of a customer message (M3–M5).
    #[default]
    Reply,
    /// Send at once with the push API (M2).
    Push,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Self::Reply, Self::Push];

    /// `"reply"` or `"push"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Push => "push",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = UnknownValue;

    /// Accepts `reply` / `push` in any case (the manual writes REPLY, Reply; env vars vary).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownValue {
                what: "mode",
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_strings_round_trip() {
        for d in Delivery::ALL {
            assert_eq!(d.as_str().parse::<Delivery>().unwrap(), d);
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.as_str())
            );
        }
        assert!("Sent".parse::<Delivery>().is_err());
    }

    #[test]
    fn the_api_shows_uncertain_as_failed() {
        assert_eq!(Delivery::Uncertain.api_str(), "failed");
        assert_eq!(Delivery::Unsent.api_str(), "unsent");
        assert!(Delivery::Unsent.is_pending());
        assert!(!Delivery::Uncertain.is_pending());
    }

    #[test]
    fn problems_round_trip_and_old_texts_are_kept_as_quotes() {
        let p = Problem {
            code: ProblemCode::LineRefused,
            status: Some(400),
            line_message: Some("The request body has 1 error(s)".into()),
        };
        assert_eq!(Problem::from_stored(&p.to_stored()), p);
        assert_eq!(
            Problem::new(ProblemCode::DeskStopped).to_stored(),
            r#"{"code":"desk_stopped"}"#
        );
        let old = Problem::from_stored("LINE rejected the request (400): bad");
        assert_eq!(old.code, ProblemCode::Other);
        assert_eq!(
            old.line_message.as_deref(),
            Some("LINE rejected the request (400): bad")
        );
        for c in ProblemCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(Delivery::Cancelled.api_str(), "cancelled");
        assert!(!Delivery::Cancelled.is_pending());
    }

    #[test]
    fn reply_is_the_default_mode() {
        assert_eq!(Mode::default(), Mode::Reply);
        assert_eq!("push".parse::<Mode>().unwrap(), Mode::Push);
        assert_eq!("REPLY".parse::<Mode>().unwrap(), Mode::Reply);
        assert!("pull".parse::<Mode>().is_err());
        assert_eq!(serde_json::to_string(&Mode::Push).unwrap(), "\"push\"");
    }
}
