//! What the desk says about an agent message's delivery — why it still waits (未送信), why it
//! failed — shared by the JSON API and the chat screen (neither imports the other).
//!
//! The reasons are codes; people see them worded by the locale files (`chats-wait-<code>`,
//! `delivery-problem-<code>`), and LINE's own words only quoted, labelled as LINE's.

use desk_core::delivery::{Problem, ProblemCode};
use desk_core::{ConversationState, Delivery, Mode};
use desk_store::messages::MessageRow;

use crate::i18n::{I18n, Locale};

/// Why a message shows 未送信, and what will happen to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// A request carrying it is under way.
    Sending,
    /// Reply mode: it goes with the customer's next message (no usable reply token now).
    NextCustomerMessage,
    /// Reply mode: LINE refused the reply token; it goes with the next one.
    InvalidReplyToken,
    /// Kept from an earlier handling; nobody handles the chat: it goes along with the answer
    /// of whoever takes the chat next (who may cancel it).
    KeptForNextHandler,
    /// Kept from an earlier handling; another agent handles the chat now: it goes along with
    /// their answer (they may cancel it).
    KeptForHandler,
    /// Push mode (or a reply LINE never took): tried again at `at`.
    Retry { at: i64 },
    /// About to be sent.
    Queued,
    /// LINE refused the Channel Access Token: it waits until an admin fixes LINE設定.
    Unauthorized,
    /// No Channel Access Token is set (LINE設定).
    NoAccessToken,
}

impl WaitReason {
    /// Every [`WaitReason::code`] (the API document lists them).
    pub const CODES: [&'static str; 9] = [
        "sending",
        "next_customer_message",
        "invalid_reply_token",
        "kept_for_next_handler",
        "kept_for_handler",
        "retry",
        "queued",
        "unauthorized",
        "no_access_token",
    ];

    /// The code: the API's `waiting_reason` and the locale key's last part.
    pub fn code(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::NextCustomerMessage => "next_customer_message",
            Self::InvalidReplyToken => "invalid_reply_token",
            Self::KeptForNextHandler => "kept_for_next_handler",
            Self::KeptForHandler => "kept_for_handler",
            Self::Retry { .. } => "retry",
            Self::Queued => "queued",
            Self::Unauthorized => "unauthorized",
            Self::NoAccessToken => "no_access_token",
        }
    }
}

/// Why `m` waits (`None` unless it is 未送信), in a chat in `state`, with the desk in `mode`.
pub fn wait_reason(
    m: &MessageRow,
    mode: Mode,
    state: &ConversationState,
    now_ms: i64,
) -> Option<WaitReason> {
    if m.delivery != Delivery::Unsent {
        return None;
    }
    if m.waiting() == Some(desk_core::OutboxState::Sending) {
        return Some(WaitReason::Sending);
    }
    let problem = m.outbox_error.as_deref().map(Problem::from_stored);
    match problem.as_ref().map(|p| p.code) {
        Some(ProblemCode::Unauthorized) => return Some(WaitReason::Unauthorized),
        Some(ProblemCode::NoAccessToken) => return Some(WaitReason::NoAccessToken),
        _ => {}
    }
    // A retry after a failure that LINE never took (push, or a reply not sent at all).
    let retry_at = m
        .outbox_next_at
        .filter(|at| *at > now_ms && *at < i64::MAX / 8);
    if let (Some(at), Some(_)) = (retry_at, &problem) {
        return Some(WaitReason::Retry { at });
    }
    Some(match mode {
        Mode::Push => WaitReason::Queued,
        Mode::Reply => {
            use desk_core::planner::Origin;
            match desk_core::status::origin_of(m.agent_id, state) {
                Origin::Kept if state.holder().is_some() => WaitReason::KeptForHandler,
                Origin::Kept => WaitReason::KeptForNextHandler,
                _ if problem.as_ref().map(|p| p.code) == Some(ProblemCode::InvalidReplyToken) => {
                    WaitReason::InvalidReplyToken
                }
                _ => WaitReason::NextCustomerMessage,
            }
        }
    })
}

/// The stored problem of a failed or uncertain message, if any.
pub fn problem(m: &MessageRow) -> Option<Problem> {
    m.delivery_error.as_deref().map(Problem::from_stored)
}

/// A problem in `locale`: the desk's own sentence (LINE's status filled in). LINE's words
/// are not part of it; show them apart, quoted ([`Problem::line_message`]).
pub fn problem_text(p: &Problem, locale: Locale) -> String {
    let status = p.status.map(|s| s.to_string()).unwrap_or_default();
    I18n::tf(
        locale,
        &format!("delivery-problem-{}", p.code.as_str()),
        &[("status", status.as_str())],
    )
}

/// The API's `delivery_error` (docs/interface.md: LINE's answer when delivery failed), in English:
/// the desk's sentence (for an uncertain one, first that it may or may not have arrived),
/// then LINE's words.
pub fn problem_english(p: &Problem, uncertain: bool) -> String {
    let mut text = problem_text(p, Locale::En);
    if uncertain {
        text = format!(
            "{} {text}",
            I18n::t(Locale::En, "chats-delivery-uncertain_title")
        );
    }
    match &p.line_message {
        Some(line) => format!("{text} LINE: {line}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_and_reason_is_worded_in_both_languages() {
        for code in ProblemCode::ALL {
            for locale in Locale::ALL {
                let text = problem_text(&Problem::new(code), locale);
                assert!(!text.starts_with("delivery-"), "{locale} {code:?}: {text}");
            }
        }
        let reasons = [
            WaitReason::Sending,
            WaitReason::NextCustomerMessage,
            WaitReason::InvalidReplyToken,
            WaitReason::KeptForNextHandler,
            WaitReason::KeptForHandler,
            WaitReason::Retry { at: 0 },
            WaitReason::Queued,
            WaitReason::Unauthorized,
            WaitReason::NoAccessToken,
        ];
        // The API document's list is this one (a new reason goes into CODES too).
        let codes: Vec<&str> = reasons.iter().map(|r| r.code()).collect();
        assert_eq!(codes, WaitReason::CODES);
        for r in reasons {
            for locale in Locale::ALL {
                let key = format!("chats-wait-{}", r.code());
                assert_ne!(I18n::t(locale, &key), key, "{locale}");
            }
        }
    }
}
