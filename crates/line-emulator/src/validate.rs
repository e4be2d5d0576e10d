//! Validation of the message objects in reply and push requests, after LINE's documented
//! limits (messaging-api.yml and the Messaging API reference):
//!
//! - 1 to 5 message objects per call (`maxItems: 5`, `minItems: 1`);
//! - text: not empty, at most 5,000 characters counted in UTF-16 code units
//!   (<https://developers.line.biz/en/docs/messaging-api/text-character-count/>);
//! - image and video: `originalContentUrl` and `previewImageUrl` required, HTTPS, at most
//!   2,000 characters; audio: `originalContentUrl` and `duration`;
//! - sticker: `packageId`, `stickerId`; location: `title` and `address` (at most 100
//!   characters), `latitude`, `longitude`;
//! - quick reply: at most 13 items; sender name at most 20 characters.
//!
//! Failures use LINE's error shape: `{"message": "The request body has N error(s)",
//! "details": [{"message", "property"}]}`.

use serde_json::{Value, json};

pub const MAX_MESSAGES: usize = 5;
pub const MAX_TEXT_UTF16: usize = 5000;
pub const MAX_URL_CHARS: usize = 2000;

/// The message types the Messaging API accepts (the `Message` discriminator in
/// messaging-api.yml).
pub const MESSAGE_TYPES: &[&str] = &[
    "text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template",
    "flex", "coupon",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub message: String,
    pub property: String,
}

/// Collects details; `error_body` renders them the way LINE does.
#[derive(Debug, Default)]
pub struct Problems {
    pub details: Vec<Detail>,
}

impl Problems {
    pub fn add(&mut self, message: impl Into<String>, property: impl Into<String>) {
        self.details.push(Detail {
            message: message.into(),
            property: property.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }

    pub fn error_body(&self) -> Value {
        json!({
            "message": format!("The request body has {} error(s)", self.details.len()),
            "details": self.details.iter().map(|d| json!({"message": d.message, "property": d.property})).collect::<Vec<_>>(),
        })
    }
}

pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Checks `body.messages`; returns the message objects (even when there are problems, so the
/// caller can decide).
pub fn check_messages(body: &Value, require_https: bool, problems: &mut Problems) -> Vec<Value> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            problems.add("May not be empty", "messages");
            return Vec::new();
        }
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            problems.add("Must be an array", "messages");
            return Vec::new();
        }
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        problems.add(
            format!("Size must be between 1 and {MAX_MESSAGES}"),
            "messages",
        );
    }
    for (i, message) in messages.iter().enumerate() {
        check_message(message, &format!("messages[{i}]"), require_https, problems);
    }
    messages
}

fn check_message(message: &Value, at: &str, require_https: bool, problems: &mut Problems) {
    let Some(object) = message.as_object() else {
        problems.add("Must be an object", at);
        return;
    };
    let kind = match object.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.as_str(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            problems.add("May not be empty", format!("{at}.type"));
            return;
        }
        Some(_) => {
            problems.add("Must be a string", format!("{at}.type"));
            return;
        }
    };
    match kind {
        "text" | "textV2" => {
            if let Some(text) = required_string(message, at, "text", problems) {
                if text.is_empty() {
                    problems.add("May not be empty", format!("{at}.text"));
                } else if utf16_len(text) > MAX_TEXT_UTF16 {
                    problems.add(
                        format!("Length must be between 0 and {MAX_TEXT_UTF16}"),
                        format!("{at}.text"),
                    );
                }
            }
        }
        "image" | "video" => {
            check_url(
                message,
                at,
                "originalContentUrl",
                require_https,
                true,
                problems,
            );
            check_url(
                message,
                at,
                "previewImageUrl",
                require_https,
                true,
                problems,
            );
        }
        "audio" => {
            check_url(
                message,
                at,
                "originalContentUrl",
                require_https,
                true,
                problems,
            );
            match message.get("duration") {
                None | Some(Value::Null) => {
                    problems.add("May not be empty", format!("{at}.duration"))
                }
                Some(d) if d.as_u64().is_some() => {}
                Some(_) => problems.add("Must be an integer", format!("{at}.duration")),
            }
        }
        "sticker" => {
            for field in ["packageId", "stickerId"] {
                if let Some(s) = required_string(message, at, field, problems)
                    && s.is_empty()
                {
                    problems.add("May not be empty", format!("{at}.{field}"));
                }
            }
        }
        "location" => {
            for field in ["title", "address"] {
                if let Some(s) = required_string(message, at, field, problems) {
                    if s.is_empty() {
                        problems.add("May not be empty", format!("{at}.{field}"));
                    } else if s.chars().count() > 100 {
                        problems.add("Length must be between 0 and 100", format!("{at}.{field}"));
                    }
                }
            }
            for field in ["latitude", "longitude"] {
                match message.get(field) {
                    None | Some(Value::Null) => {
                        problems.add("May not be empty", format!("{at}.{field}"))
                    }
                    Some(v) if v.is_number() => {}
                    Some(_) => problems.add("Must be a number", format!("{at}.{field}")),
                }
            }
        }
        "imagemap" | "template" | "flex" => {
            if let Some(alt) = required_string(message, at, "altText", problems) {
                if alt.is_empty() {
                    problems.add("May not be empty", format!("{at}.altText"));
                } else if alt.chars().count() > 1500 {
                    problems.add("Length must be between 0 and 1500", format!("{at}.altText"));
                }
            }
        }
        "coupon" => {
            required_string(message, at, "couponId", problems);
        }
        _ => {
            problems.add(
                format!(
                    "Must be one of the following values: [{}]",
                    MESSAGE_TYPES.join(", ")
                ),
                format!("{at}.type"),
            );
            return;
        }
    }
    if let Some(items) = message.pointer("/quickReply/items") {
        match items.as_array() {
            Some(items) if items.len() <= 13 => {}
            Some(_) => problems.add(
                "Size must be between 0 and 13",
                format!("{at}.quickReply.items"),
            ),
            None => problems.add("Must be an array", format!("{at}.quickReply.items")),
        }
    }
    if let Some(sender) = message.get("sender") {
        if let Some(name) = sender.get("name").and_then(Value::as_str)
            && name.chars().count() > 20
        {
            problems.add(
                "Length must be between 0 and 20",
                format!("{at}.sender.name"),
            );
        }
        if sender.get("iconUrl").is_some() {
            check_url(
                sender,
                &format!("{at}.sender"),
                "iconUrl",
                true,
                false,
                problems,
            );
        }
    }
}

fn required_string<'a>(
    message: &'a Value,
    at: &str,
    field: &str,
    problems: &mut Problems,
) -> Option<&'a str> {
    match message.get(field) {
        None | Some(Value::Null) => {
            problems.add("May not be empty", format!("{at}.{field}"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.add("Must be a string", format!("{at}.{field}"));
            None
        }
    }
}

fn check_url(
    message: &Value,
    at: &str,
    field: &str,
    require_https: bool,
    required: bool,
    problems: &mut Problems,
) {
    let property = format!("{at}.{field}");
    let url = match message.get(field) {
        None | Some(Value::Null) => {
            if required {
                problems.add("May not be empty", property);
            }
            return;
        }
        Some(Value::String(s)) => s,
        Some(_) => {
            problems.add("Must be a string", property);
            return;
        }
    };
    if url.is_empty() {
        problems.add("May not be empty", property);
        return;
    }
    if url.chars().count() > MAX_URL_CHARS {
        problems.add(
            format!("Length must be between 0 and {MAX_URL_CHARS}"),
            property,
        );
        return;
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" => {}
        Ok(parsed) if parsed.scheme() == "http" && !require_https => {}
        Ok(_) | Err(_) => problems.add("Must be a valid HTTPS URL", property),
    }
}

/// Whether the message type is one a user can quote (LINE returns a `quoteToken` in
/// `sentMessages` only for those; the webhook side requires `quoteToken` for text, image,
/// video and sticker messages, and the emulator uses the same set here).
pub fn is_quotable(kind: &str) -> bool {
    matches!(kind, "text" | "textV2" | "image" | "video" | "sticker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Value) -> Problems {
        let mut p = Problems::default();
        check_messages(&body, true, &mut p);
        p
    }

    #[test]
    fn text_limit_counts_utf16_units() {
        let ok = "a".repeat(5000);
        assert!(check(json!({"messages":[{"type":"text","text":ok}]})).is_empty());
        let long = "a".repeat(5001);
        let p = check(json!({"messages":[{"type":"text","text":long}]}));
        assert_eq!(p.details[0].property, "messages[0].text");
        // 2,500 apples are 5,000 UTF-16 units (each is a surrogate pair): allowed; one more is not.
        let apples = "🍎".repeat(2500);
        assert!(check(json!({"messages":[{"type":"text","text":apples}]})).is_empty());
        let too_many = format!("{}a", "🍎".repeat(2500));
        assert!(!check(json!({"messages":[{"type":"text","text":too_many}]})).is_empty());
    }

    #[test]
    fn count_and_types() {
        let six: Vec<Value> = (0..6)
            .map(|i| json!({"type":"text","text":format!("{i}")}))
            .collect();
        let p = check(json!({ "messages": six }));
        assert_eq!(p.details[0].message, "Size must be between 1 and 5");
        assert!(!check(json!({"messages":[]})).is_empty());
        assert!(!check(json!({})).is_empty());
        let p = check(json!({"messages":[{"type":"bogus"}]}));
        assert!(p.details[0].message.starts_with("Must be one of"));
        assert_eq!(p.error_body()["message"], "The request body has 1 error(s)");
    }

    #[test]
    fn image_urls() {
        let p = check(
            json!({"messages":[{"type":"image","originalContentUrl":"http://x/a.png","previewImageUrl":"https://x/b.png"}]}),
        );
        assert_eq!(p.details.len(), 1);
        assert_eq!(p.details[0].property, "messages[0].originalContentUrl");
        let mut loose = Problems::default();
        check_messages(
            &json!({"messages":[{"type":"image","originalContentUrl":"http://x/a.png","previewImageUrl":"http://x/b.png"}]}),
            false,
            &mut loose,
        );
        assert!(loose.is_empty());
        let p =
            check(json!({"messages":[{"type":"image","originalContentUrl":"https://x/a.png"}]}));
        assert_eq!(p.details[0].property, "messages[0].previewImageUrl");
        let long = format!("https://x/{}", "a".repeat(2000));
        let p = check(
            json!({"messages":[{"type":"image","originalContentUrl":long,"previewImageUrl":"https://x/b.png"}]}),
        );
        assert_eq!(p.details[0].message, "Length must be between 0 and 2000");
    }
}
