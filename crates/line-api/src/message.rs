//! Outgoing message objects, serialized exactly as LINE's `Message` schema wants them
//! (`{"type":"text","text":…}`, `{"type":"image","originalContentUrl":…,"previewImageUrl":…}`).
//!
//! Deserialize is there too, so the emulator can read what the desk sends with the same type.

use serde::{Deserialize, Serialize};

/// A message the account sends (reply or push). Only the kinds the desk sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum OutMessage {
    /// Text; LINE allows at most 5,000 UTF-16 code units (checked by the caller, not here).
    Text { text: String },
    /// An image LINE fetches from our public URLs (HTTPS, JPEG or PNG; original ≤ 10 MB,
    /// preview ≤ 1 MB).
    Image {
        original_content_url: String,
        preview_image_url: String,
    },
    Sticker {
        package_id: String,
        sticker_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape() {
        let text = OutMessage::Text {
            text: "こんにちは".into(),
        };
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            json!({"type": "text", "text": "こんにちは"})
        );
        let image = OutMessage::Image {
            original_content_url: "https://x/o.jpg".into(),
            preview_image_url: "https://x/p.jpg".into(),
        };
        assert_eq!(
            serde_json::to_value(&image).unwrap(),
            json!({"type": "image", "originalContentUrl": "https://x/o.jpg", "previewImageUrl": "https://x/p.jpg"})
        );
        let sticker = OutMessage::Sticker {
            package_id: "446".into(),
            sticker_id: "1988".into(),
        };
        assert_eq!(
            serde_json::to_value(&sticker).unwrap(),
            json!({"type": "sticker", "packageId": "446", "stickerId": "1988"})
        );
        for m in [text, image, sticker] {
            let back: OutMessage =
                serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, m);
        }
    }
}
