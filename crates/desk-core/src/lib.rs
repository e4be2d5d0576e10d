//! desk-core: the rules of the LINE chat desk, as pure synchronous functions.
//!
//! No I/O, no async, no database: the webhook handler, the services and the store call into
//! these functions, so every rule of the manual (restated in `docs/requirements.md`) has one obvious place.
//!
//! | rule | where |
//! | --- | --- |
//! | C3, C4 the handling lock (対応中 / 完了 / 未読) | [`status::change_status`], [`status::admin_release`] |
//! | C4 only the handling agent sends | [`status::can_send`] |
//! | C5 完了 → 未読 when the customer writes | [`status::status_after_customer_message`] |
//! | M1 Reply is the default mode | [`delivery::Mode`] |
//! | M3–M5, M7 which queued messages go out with which reply token | [`planner::plan_next`], [`planner::plan_reply`], [`planner::pick_token`] |
//! | one press of 送信 is one group, never split across tokens when it fits | [`planner::Outgoing::group`], [`planner::objects_needed`] |
//! | the handler's answer first, kept messages only along with it, the desk's answer on its own token | [`planner::Origin`], [`status::origin_of`] |
//! | who may take back (取消) a waiting message | [`status::may_cancel`] |
//! | why a message failed or waits (worded by the UI) | [`delivery::Problem`] |
//! | M2 push mode, one request per agent message | [`planner::plan_push`] |
//! | LINE limits: 5 objects per call, 5,000 UTF-16 units per text | [`planner::MAX_OBJECTS_PER_CALL`], [`planner::MAX_TEXT_UNITS`], [`planner::text_units`] |
//! | what an agent may type (non-blank, ≤ 5,000 units) | [`planner::check_agent_text`] |
//! | M4, M6, M7 the delivery marks (Unsent, sent, failed) | [`delivery::Delivery`] |
//! | L2 LINE passcodes: shape, expiry, guessing throttle | [`passcode`] |
//! | L3 customer codes `#C15`, phone search | [`customer_code`] |
//! | who may try a password, and when (issue 9) | [`login_throttle::judge`] |
//! | times are unix milliseconds from one clock | [`clock::Clock`] |
//! | who wrote a message: the customer, an agent, the desk | [`message::Direction`] |
//! | what a message is, where its bytes are | [`message::MessageKind`], [`message::MediaState`] |
//! | L1 what a customer's 変更履歴 records | [`history::HistoryAction`], [`history::LinkVia`] |
//!
//! Full-width input (what Japanese phones and IMEs type) is folded to ASCII in one place,
//! [`normalize::fold_width`].

pub mod clock;
pub mod customer_code;
pub mod delivery;
pub mod history;
pub mod login_throttle;
pub mod message;
pub mod normalize;
pub mod passcode;
pub mod planner;
pub mod status;

pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::{Delivery, Mode, OutboxState};
pub use history::{HistoryAction, LinkVia};
pub use message::{Direction, MediaState, MessageKind};
pub use passcode::AttemptOutcome;
pub use status::{Actor, ConversationState, ConversationStatus};

/// The text forms of the enums the store keeps in text columns and the API shows: each enum
/// has `ALL` and `as_str` (its one spelling); this gives it `Display`, an exact `FromStr`
/// (anything else is an [`UnknownValue`] naming what was parsed) and `TryFrom<String>` for
/// `#[sqlx(try_from = "String")]`, so rows carry these enums, never their strings.
macro_rules! text_enum {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = $crate::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::UnknownValue { what: $what, value: s.to_owned() })
            }
        }
        impl TryFrom<String> for $t {
            type Error = $crate::UnknownValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    )*};
}
text_enum!(
    status::ConversationStatus => "conversation status",
    delivery::Delivery => "delivery",
    delivery::OutboxState => "outbox state",
    message::Direction => "message direction",
    message::MessageKind => "message kind",
    message::MediaState => "media state",
    passcode::AttemptOutcome => "passcode attempt outcome",
    history::HistoryAction => "customer history action",
    history::LinkVia => "link way",
);

/// Mode reads more leniently (REPLY, Reply: see its `FromStr`); rows take it the same way.
impl TryFrom<String> for delivery::Mode {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A string that names none of an enum's values (from the `FromStr` impls of this crate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: {value:?}")]
pub struct UnknownValue {
    /// What was being parsed, e.g. `"conversation status"`.
    pub what: &'static str,
    /// The string that was given.
    pub value: String,
}
