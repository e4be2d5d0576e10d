//! What a stored message is, as far as the rules care: who wrote it, what kind it is, and
//! where its bytes are.

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

/// What a message is. Stored as `messages.type`; LINE's own name for each kind, and
/// `other` for a kind the desk does not know (a future LINE type: kept, shown as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    Video,
    Audio,
    File,
    Location,
    Sticker,
    Other,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        Self::Text,
        Self::Image,
        Self::Video,
        Self::Audio,
        Self::File,
        Self::Location,
        Self::Sticker,
        Self::Other,
    ];

    /// The database form (LINE's `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
            Self::Location => "location",
            Self::Sticker => "sticker",
            Self::Other => "other",
        }
    }

    /// LINE's `type` of a webhook message; `Other` for one the desk does not know.
    pub fn from_line_type(t: &str) -> MessageKind {
        t.parse().unwrap_or(Self::Other)
    }

    /// Whether LINE keeps the bytes (fetched by the desk: image, video, audio, file).
    pub fn has_content(self) -> bool {
        matches!(self, Self::Image | Self::Video | Self::Audio | Self::File)
    }
}

/// Where a message's bytes are. Stored as `messages.media_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    /// The message has no bytes (text, sticker, location…).
    None,
    /// Being fetched from LINE.
    Pending,
    /// Stored; the message shows them.
    Ok,
    /// LINE did not give them (expired, or the fetch kept failing).
    Failed,
}

impl MediaState {
    pub const ALL: [MediaState; 4] = [Self::None, Self::Pending, Self::Ok, Self::Failed];

    /// The database form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_media_states_round_trip() {
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>(), Ok(k));
            assert_eq!(MessageKind::from_line_type(k.as_str()), k);
        }
        assert_eq!(MessageKind::from_line_type("flex"), MessageKind::Other);
        assert!(
            "flex".parse::<MessageKind>().is_err(),
            "a row never holds an unknown kind"
        );
        for m in MediaState::ALL {
            assert_eq!(MediaState::try_from(m.as_str().to_owned()), Ok(m));
        }
    }

    #[test]
    fn round_trips() {
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
            assert_eq!(Direction::try_from(d.as_str().to_owned()), Ok(d));
        }
        assert!("IN".parse::<Direction>().is_err());
    }
}
