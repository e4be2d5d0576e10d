//! What the store's test modules share.

use desk_store::Store;
use desk_store::ingest::{InboundAction, InboundEvent, InboundMessage};

/// A customer's text message as the webhook hands it to the store.
pub fn text_event(
    event_id: &str,
    user: &str,
    message_id: &str,
    text: &str,
    ts: i64,
) -> InboundEvent {
    InboundEvent {
        webhook_event_id: Some(event_id.into()),
        event_type: "message".into(),
        line_user_id: Some(user.into()),
        timestamp: ts,
        raw: format!(r#"{{"type":"message","webhookEventId":"{event_id}"}}"#),
        action: InboundAction::Message(InboundMessage {
            line_message_id: Some(message_id.into()),
            kind: desk_core::MessageKind::from_line_type("text"),
            text: Some(text.into()),
            payload: None,
            fetch_content: false,
            reply_token: Some(format!("rt-{message_id}")),
        }),
    }
}

/// The backend's name, for assertion messages.
pub fn backend(s: &Store) -> &'static str {
    if s.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    }
}
