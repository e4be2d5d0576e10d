//! What a stored message is, as far as the rules care.

use serde::{Deserialize, Serialize};

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
