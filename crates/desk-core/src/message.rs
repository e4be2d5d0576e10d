//! What a stored message is, as far as the rules care.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownValue;

/// Who wrote a message. Stored as `messages.direction`: `"in"`, `"out"`, `"system"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer, through LINE's webhook.
    In,
    /// From an agent (or the desk's own answer, the passcode confirmation), to LINE.
    Out,
    /// A line the desk wrote into the chat for the agents ("#C15 山田花子 と関連付けました");
    /// never sent to LINE.
    System,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Self::In, Self::Out, Self::System];

    /// The database form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "message direction",
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
            assert_eq!(Direction::try_from(d.as_str().to_owned()), Ok(d));
        }
        assert!("IN".parse::<Direction>().is_err());
    }
}
