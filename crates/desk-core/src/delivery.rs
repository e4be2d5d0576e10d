//! Delivery marks of messages (M4, M6, M7) and the sending mode (M1).
//!
//! Every message row carries a [`Delivery`]. Customer messages are `Received`. An agent
//! message starts `Unsent` (未送信 / "Unsent" in the history, M4) and becomes `Sent` once LINE
//! accepted it (M6). Nothing an agent wrote is dropped (M7): a delivery that definitely failed
//! is `Failed`, and one whose outcome is unknown (a timeout or 5xx on a reply call, whose token
//! cannot be used twice) is `Uncertain` — never resent automatically, because the customer may
//! already have it.

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
}

impl Delivery {
    pub const ALL: [Delivery; 5] = [
        Self::Received,
        Self::Sent,
        Self::Unsent,
        Self::Failed,
        Self::Uncertain,
    ];

    /// The database form: `"received"`, `"sent"`, `"unsent"`, `"failed"`, `"uncertain"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Sent => "sent",
            Self::Unsent => "unsent",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
        }
    }

    /// The form the public API shows (contract.md knows `received | sent | unsent | failed`):
    /// `Uncertain` shows as `"failed"`; the API may add a flag to tell them apart.
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

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Delivery {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "delivery",
                value: s.to_owned(),
            })
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
    fn reply_is_the_default_mode() {
        assert_eq!(Mode::default(), Mode::Reply);
        assert_eq!("push".parse::<Mode>().unwrap(), Mode::Push);
        assert_eq!("REPLY".parse::<Mode>().unwrap(), Mode::Reply);
        assert!("pull".parse::<Mode>().is_err());
        assert_eq!(serde_json::to_string(&Mode::Push).unwrap(), "\"push\"");
    }
}
