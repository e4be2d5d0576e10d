//! Conversation status and the handling lock (spec C3–C5, manual ▼ステータスについて).
//!
//! A conversation is 未読 ([`Unread`](ConversationStatus::Unread)), 対応中
//! ([`InProgress`](ConversationStatus::InProgress)) or 完了 ([`Done`](ConversationStatus::Done)).
//! The manual's point is that "two agents never answer one customer at the same time": the
//! agent who presses 対応中 holds the conversation, only they can send (C4), and nobody else can
//! change its status until it is released.
//!
//! # The rules
//!
//! * **The lock is `status == InProgress`** and its holder is `agent_id`
//!   ([`ConversationState::holder`]). Nothing else locks.
//! * **対応中** (C3): allowed when the conversation is not in progress, or the actor already holds
//!   it. The actor becomes the handling agent; 対応開始日時 (`started_at`) is `now`, except that
//!   pressing 対応中 again on one's own conversation keeps the original start time.
//! * **完了**: allowed to the holder, or to anyone when nobody holds it. It releases the lock and
//!   changes *only* the status: `agent_id` and `started_at` stay, so the list and the detail
//!   screen can still show who handled the conversation last and since when. **Decision:** a
//!   `Done` conversation's `agent_id` is "the last handler", not "the handling agent". The
//!   対応中エージェント column shows the holder, or the last handler labelled as such
//!   (前回の対応); its filter finds the same agent the column shows (`agent_id = …`), so column and
//!   filter agree; ステータス 対応中 narrows it to chats held now.
//! * **未読**: allowed to the holder, or to anyone when nobody holds it. The conversation goes
//!   back to the queue as if new: status `Unread`, `agent_id` and `started_at` cleared.
//! * **Another agent** pressing any of the three on a conversation someone else holds gets
//!   [`StatusError::HeldBy`] (the service answers 409 "held by X").
//! * **Admins** ([`Actor::is_admin`]) may press 完了 or 未読 on a conversation someone else holds —
//!   that forcibly releases it, and the caller records it (compare
//!   [`ConversationState::holder`] with the actor before the change to tell). [`admin_release`]
//!   is the explicit form of that (未読, and an error when nothing was held). Admins may *not*
//!   take over with 対応中 in one step: they release first, so the holder sees that they lost it.
//! * **A customer message** turns `Done` into `Unread` (C5, [`state_after_customer_message`]);
//!   `Unread` and `InProgress` stay as they are (a held conversation stays with its agent).
//!   Like 完了, it changes only the status: a reopened conversation still names its last
//!   handler, which helps whoever picks it up (and is what the store's ingest SQL does).
//!
//! So outside `InProgress`, `agent_id` is only "the last handler" (or `None`): display, never a
//! lock. Invariants kept by every function here: `status == InProgress` ⇒ `agent_id` and
//! `started_at` are both `Some`; otherwise they are both `Some` or both `None`. (The store may
//! enforce the first with `CHECK (status <> 'in_progress' OR agent_id IS NOT NULL)`.)
//!
//! # The same rule in SQL
//!
//! Under concurrency the winner is decided by the database, not by reading the row first and
//! calling [`change_status`]: two agents pressing 対応中 in the same instant would both see
//! "unread". The store runs **one conditional UPDATE** whose affected-row count decides (docs/architecture.md):
//!
//! ```sql
//! -- 対応中 (to = 'in_progress'); SET expressions see the old row, so CASE keeps a re-press's start
//! UPDATE conversations
//!    SET status = 'in_progress', agent_id = $me,
//!        started_at = CASE WHEN status = 'in_progress' AND agent_id = $me THEN started_at ELSE $now END
//!  WHERE id = $id AND (status <> 'in_progress' OR agent_id = $me);
//! -- 完了
//! UPDATE conversations SET status = 'done'
//!  WHERE id = $id AND (status <> 'in_progress' OR agent_id = $me OR $is_admin);
//! -- 未読
//! UPDATE conversations SET status = 'unread', agent_id = NULL, started_at = NULL
//!  WHERE id = $id AND (status <> 'in_progress' OR agent_id = $me OR $is_admin);
//! ```
//!
//! **[`change_status`] and those statements express the same rule**: the `WHERE` clause is
//! [`lock_allows`], the `SET` clause is the returned state. Zero rows affected means
//! [`StatusError::HeldBy`]; the service then reads the row to name the holder. If you change
//! one, change the other (the tests below spell out the table).
//!
//! Sending (C4, [`can_send`]) is checked inside the transaction that writes the message, against
//! the row as it is then: `… WHERE id = $id AND status = 'in_progress' AND agent_id = $me`.
//!
//! Why one file of ~600 lines: half of it is the unit tests of the lock; the rules themselves
//! (who may press which button, who may send, who may take back) read best together.

use serde::{Deserialize, Serialize};

/// 未読 / 対応中 / 完了. Serialised as `"unread"`, `"in_progress"`, `"done"` (docs/interface.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// 未読 — new or waiting; nobody handles it.
    #[default]
    Unread,
    /// 対応中 — an agent handles it and holds the lock.
    InProgress,
    /// 完了 — handled; reopens as [`Unread`](Self::Unread) when the customer writes again.
    Done,
}

impl ConversationStatus {
    /// All values, in the order of the manual's buttons.
    pub const ALL: [ConversationStatus; 3] = [Self::Unread, Self::InProgress, Self::Done];

    /// The wire and database form: `"unread"`, `"in_progress"`, `"done"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unread => "unread",
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }
}

/// The status columns of a conversation: what the lock reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConversationState {
    pub status: ConversationStatus,
    /// The handling agent while `InProgress`; otherwise the last handler, if any (display only).
    pub agent_id: Option<i64>,
    /// 対応開始日時, unix milliseconds; kept and cleared together with `agent_id`.
    pub started_at: Option<i64>,
}

impl ConversationState {
    /// A new conversation: unread, nobody handling it.
    pub const UNREAD: ConversationState = ConversationState {
        status: ConversationStatus::Unread,
        agent_id: None,
        started_at: None,
    };

    /// The agent holding the lock (対応中エージェント): `Some` only while in progress.
    pub fn holder(&self) -> Option<i64> {
        match self.status {
            ConversationStatus::InProgress => self.agent_id,
            _ => None,
        }
    }
}

/// Who presses a status button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub agent_id: i64,
    pub is_admin: bool,
}

impl Actor {
    pub fn agent(agent_id: i64) -> Self {
        Actor {
            agent_id,
            is_admin: false,
        }
    }

    pub fn admin(agent_id: i64) -> Self {
        Actor {
            agent_id,
            is_admin: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Another agent holds the conversation (C4). The service answers 409 "held by X".
    #[error("the conversation is held by agent {agent_id}")]
    HeldBy { agent_id: i64 },
    /// [`admin_release`] by someone who is not an admin.
    #[error("only an admin can release a conversation held by another agent")]
    NotAdmin,
    /// [`admin_release`] of a conversation nobody holds: nothing to release or record.
    #[error("the conversation is not held by anyone")]
    NotHeld,
    /// In progress without an agent: a broken row. The SQL lock refuses it too
    /// (`agent_id = $me` is not true for NULL); an admin can release it.
    #[error("the conversation is in progress without a handling agent")]
    InconsistentState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Nobody has pressed 対応中 (or the conversation is done): press 対応中 first.
    #[error("press 対応中 (in progress) before sending")]
    NotInProgress,
    /// Another agent handles the conversation.
    #[error("the conversation is held by agent {agent_id}")]
    HeldBy { agent_id: i64 },
}

/// The `WHERE` clause of the status UPDATE: may `actor` move `state` to `to`?
///
/// `status <> 'in_progress' OR agent_id = $me`, plus `OR $is_admin` when `to` releases.
pub fn lock_allows(state: &ConversationState, actor: Actor, to: ConversationStatus) -> bool {
    let free_or_mine =
        state.status != ConversationStatus::InProgress || state.agent_id == Some(actor.agent_id);
    free_or_mine || (actor.is_admin && to != ConversationStatus::InProgress)
}

/// Presses the status button `to` (C3–C5); see the [module docs](self) for the rules and
/// the SQL that must agree with this function.
pub fn change_status(
    state: &ConversationState,
    actor: Actor,
    to: ConversationStatus,
    now_ms: i64,
) -> Result<ConversationState, StatusError> {
    if !lock_allows(state, actor, to) {
        return Err(match state.agent_id {
            Some(agent_id) => StatusError::HeldBy { agent_id },
            None => StatusError::InconsistentState,
        });
    }
    Ok(match to {
        ConversationStatus::InProgress => {
            let already_mine = state.holder() == Some(actor.agent_id);
            ConversationState {
                status: ConversationStatus::InProgress,
                agent_id: Some(actor.agent_id),
                started_at: match (already_mine, state.started_at) {
                    (true, Some(started)) => Some(started),
                    _ => Some(now_ms),
                },
            }
        }
        ConversationStatus::Done => ConversationState {
            status: ConversationStatus::Done,
            ..*state
        },
        ConversationStatus::Unread => ConversationState::UNREAD,
    })
}

/// An admin releases a conversation another agent holds (or a broken in-progress row): it goes
/// back to 未読 with nobody handling it. The caller records who released whom.
///
/// The SQL: `UPDATE … SET status = 'unread', agent_id = NULL, started_at = NULL
/// WHERE id = $id AND status = 'in_progress'` (zero rows: [`StatusError::NotHeld`]).
pub fn admin_release(
    state: &ConversationState,
    actor: Actor,
) -> Result<ConversationState, StatusError> {
    if !actor.is_admin {
        return Err(StatusError::NotAdmin);
    }
    if state.status != ConversationStatus::InProgress {
        return Err(StatusError::NotHeld);
    }
    // Exactly what 未読 produces (the time is not used by 未読).
    change_status(state, actor, ConversationStatus::Unread, 0)
}

/// C4: only the handling agent of an in-progress conversation may send.
pub fn can_send(state: &ConversationState, agent_id: i64) -> Result<(), SendError> {
    match state.holder() {
        Some(holder) if holder == agent_id => Ok(()),
        Some(holder) => Err(SendError::HeldBy { agent_id: holder }),
        None => Err(SendError::NotInProgress),
    }
}

/// 取消: who may take back a message that still waits. Its author at any time (even after
/// completing the chat); the agent handling the chat now (who inherits what an earlier
/// handler kept); an admin. The store's cancel UPDATE states the same in SQL. Whether it still
/// waits (not already being sent) is the store's to check, atomically with the sender.
pub fn may_cancel(actor: &Actor, author: Option<i64>, state: &ConversationState) -> bool {
    actor.is_admin || author == Some(actor.agent_id) || state.holder() == Some(actor.agent_id)
}

/// The planner's [`Origin`](crate::planner::Origin) of a waiting message by `author` (`None`:
/// the desk itself): the handler's while its author holds the chat, otherwise kept from an
/// earlier handling. The store's outbox query states the same in SQL.
pub fn origin_of(author: Option<i64>, state: &ConversationState) -> crate::planner::Origin {
    use crate::planner::Origin;
    match author {
        None => Origin::Desk,
        Some(a) if state.holder() == Some(a) => Origin::Handler,
        Some(_) => Origin::Kept,
    }
}

/// C5: a customer message reopens a done conversation (完了 → 未読); others are unchanged.
pub fn status_after_customer_message(status: ConversationStatus) -> ConversationStatus {
    match status {
        ConversationStatus::Done => ConversationStatus::Unread,
        other => other,
    }
}

/// C5 on the whole state: only the status changes; a reopened conversation keeps its last
/// handler for display. SQL: `status = CASE WHEN status = 'done' THEN 'unread' ELSE status END`.
pub fn state_after_customer_message(state: &ConversationState) -> ConversationState {
    ConversationState {
        status: status_after_customer_message(state.status),
        ..*state
    }
}

#[cfg(test)]
mod tests {
    use super::ConversationStatus::*;
    use super::*;

    const T0: i64 = 1_500_000_000_000;
    const ALICE: i64 = 1;
    const BOB: i64 = 2;
    const ROOT: i64 = 9;

    fn held_by(agent: i64, since: i64) -> ConversationState {
        ConversationState {
            status: InProgress,
            agent_id: Some(agent),
            started_at: Some(since),
        }
    }

    fn done_by(agent: i64, since: i64) -> ConversationState {
        ConversationState {
            status: Done,
            agent_id: Some(agent),
            started_at: Some(since),
        }
    }

    #[test]
    fn strings_round_trip() {
        for s in ConversationStatus::ALL {
            assert_eq!(s.as_str().parse::<ConversationStatus>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("InProgress".parse::<ConversationStatus>().is_err());
        assert!("".parse::<ConversationStatus>().is_err());
    }

    #[test]
    fn pressing_in_progress_on_an_unread_chat_makes_the_agent_handle_it() {
        // Manual 使い方 5: 「対応中」をクリックして対応を開始します。
        let s = change_status(
            &ConversationState::UNREAD,
            Actor::agent(ALICE),
            InProgress,
            T0,
        )
        .unwrap();
        assert_eq!(s, held_by(ALICE, T0));
        assert_eq!(s.holder(), Some(ALICE));
    }

    #[test]
    fn pressing_in_progress_again_keeps_the_start_time() {
        let s = change_status(
            &held_by(ALICE, T0),
            Actor::agent(ALICE),
            InProgress,
            T0 + 60_000,
        )
        .unwrap();
        assert_eq!(s, held_by(ALICE, T0));
    }

    #[test]
    fn another_agent_cannot_take_or_change_a_held_chat() {
        // 完了ボタンが押されるまで他のエージェントから送信することはできません。
        for to in ConversationStatus::ALL {
            assert_eq!(
                change_status(&held_by(ALICE, T0), Actor::agent(BOB), to, T0 + 1),
                Err(StatusError::HeldBy { agent_id: ALICE }),
                "{to}"
            );
        }
    }

    #[test]
    fn done_releases_the_lock_and_keeps_the_last_handler() {
        let s = change_status(&held_by(ALICE, T0), Actor::agent(ALICE), Done, T0 + 5).unwrap();
        assert_eq!(s, done_by(ALICE, T0));
        assert_eq!(s.holder(), None);
        // Anyone may now take it.
        let s = change_status(&s, Actor::agent(BOB), InProgress, T0 + 9).unwrap();
        assert_eq!(s, held_by(BOB, T0 + 9));
    }

    #[test]
    fn unread_by_the_holder_releases_and_clears() {
        let s = change_status(&held_by(ALICE, T0), Actor::agent(ALICE), Unread, T0 + 5).unwrap();
        assert_eq!(s, ConversationState::UNREAD);
    }

    #[test]
    fn a_free_chat_can_be_marked_by_anyone() {
        let s = change_status(&ConversationState::UNREAD, Actor::agent(BOB), Done, T0).unwrap();
        assert_eq!(s.status, Done);
        assert_eq!(s.agent_id, None);
        let s = change_status(&done_by(ALICE, T0), Actor::agent(BOB), Unread, T0).unwrap();
        assert_eq!(s, ConversationState::UNREAD);
        let s = change_status(&done_by(ALICE, T0), Actor::agent(BOB), Done, T0 + 1).unwrap();
        assert_eq!(s, done_by(ALICE, T0));
    }

    #[test]
    fn admins_may_release_but_not_take_over() {
        let held = held_by(ALICE, T0);
        assert_eq!(
            change_status(&held, Actor::admin(ROOT), InProgress, T0),
            Err(StatusError::HeldBy { agent_id: ALICE })
        );
        assert_eq!(
            change_status(&held, Actor::admin(ROOT), Done, T0).unwrap(),
            done_by(ALICE, T0)
        );
        assert_eq!(
            change_status(&held, Actor::admin(ROOT), Unread, T0).unwrap(),
            ConversationState::UNREAD
        );
        assert_eq!(
            admin_release(&held, Actor::admin(ROOT)).unwrap(),
            ConversationState::UNREAD
        );
        assert_eq!(
            admin_release(&held, Actor::agent(BOB)),
            Err(StatusError::NotAdmin)
        );
        assert_eq!(
            admin_release(&ConversationState::UNREAD, Actor::admin(ROOT)),
            Err(StatusError::NotHeld)
        );
    }

    #[test]
    fn a_broken_in_progress_row_is_refused_like_the_sql_refuses_it() {
        let broken = ConversationState {
            status: InProgress,
            agent_id: None,
            started_at: None,
        };
        assert_eq!(
            change_status(&broken, Actor::agent(ALICE), InProgress, T0),
            Err(StatusError::InconsistentState)
        );
        assert_eq!(can_send(&broken, ALICE), Err(SendError::NotInProgress));
        assert_eq!(
            admin_release(&broken, Actor::admin(ROOT)).unwrap(),
            ConversationState::UNREAD
        );
    }

    #[test]
    fn who_may_cancel_a_waiting_message_and_whose_it_is() {
        use crate::planner::Origin;
        let held_by_b = ConversationState {
            status: ConversationStatus::InProgress,
            agent_id: Some(2),
            started_at: Some(1),
        };
        let done_by_a = ConversationState {
            status: ConversationStatus::Done,
            agent_id: Some(1),
            started_at: Some(1),
        };
        // A wrote it: A may cancel it always; B, handling now, may too; C may not.
        assert!(may_cancel(&Actor::agent(1), Some(1), &held_by_b));
        assert!(may_cancel(&Actor::agent(2), Some(1), &held_by_b));
        assert!(!may_cancel(&Actor::agent(3), Some(1), &held_by_b));
        assert!(may_cancel(&Actor::admin(3), Some(1), &held_by_b));
        assert!(may_cancel(&Actor::agent(1), Some(1), &done_by_a));
        assert!(!may_cancel(&Actor::agent(2), Some(1), &done_by_a));
        // A's message is kept once B holds the chat, or once A completed it.
        assert_eq!(origin_of(Some(1), &held_by_b), Origin::Kept);
        assert_eq!(origin_of(Some(2), &held_by_b), Origin::Handler);
        assert_eq!(origin_of(Some(1), &done_by_a), Origin::Kept);
        assert_eq!(origin_of(None, &done_by_a), Origin::Desk);
    }

    #[test]
    fn only_the_handler_of_an_in_progress_chat_can_send() {
        assert_eq!(can_send(&held_by(ALICE, T0), ALICE), Ok(()));
        assert_eq!(
            can_send(&held_by(ALICE, T0), BOB),
            Err(SendError::HeldBy { agent_id: ALICE })
        );
        assert_eq!(
            can_send(&ConversationState::UNREAD, ALICE),
            Err(SendError::NotInProgress)
        );
        // The last handler of a done chat cannot send without pressing 対応中 again.
        assert_eq!(
            can_send(&done_by(ALICE, T0), ALICE),
            Err(SendError::NotInProgress)
        );
    }

    #[test]
    fn a_customer_message_reopens_done_chats_only() {
        // ステータスが「完了」になっているものは新規メッセージ受信時に自動で「新規」に変更されます。
        assert_eq!(status_after_customer_message(Done), Unread);
        assert_eq!(status_after_customer_message(Unread), Unread);
        assert_eq!(status_after_customer_message(InProgress), InProgress);
        let reopened = state_after_customer_message(&done_by(ALICE, T0));
        assert_eq!(reopened.status, Unread);
        assert_eq!(
            reopened.agent_id,
            Some(ALICE),
            "the last handler stays for display"
        );
        assert_eq!(reopened.holder(), None);
        assert_eq!(can_send(&reopened, ALICE), Err(SendError::NotInProgress));
        // Anyone may take it; the new handler starts a new handling.
        let taken = change_status(&reopened, Actor::agent(BOB), InProgress, T0 + 7).unwrap();
        assert_eq!(taken, held_by(BOB, T0 + 7));
        assert_eq!(
            state_after_customer_message(&held_by(ALICE, T0)),
            held_by(ALICE, T0)
        );
    }

    /// The truth table of the SQL `WHERE` clause in the module docs.
    #[test]
    fn lock_allows_matches_the_sql_where_clause() {
        let states = [
            ConversationState::UNREAD,
            held_by(ALICE, T0),
            held_by(BOB, T0),
            done_by(ALICE, T0),
        ];
        for state in states {
            for actor in [Actor::agent(ALICE), Actor::admin(ALICE), Actor::admin(ROOT)] {
                for to in ConversationStatus::ALL {
                    let status_ne_in_progress = state.status.as_str() != "in_progress";
                    let agent_is_me = state.agent_id == Some(actor.agent_id);
                    let sql = if to == InProgress {
                        status_ne_in_progress || agent_is_me
                    } else {
                        status_ne_in_progress || agent_is_me || actor.is_admin
                    };
                    assert_eq!(
                        lock_allows(&state, actor, to),
                        sql,
                        "{state:?} {actor:?} {to}"
                    );
                    assert_eq!(change_status(&state, actor, to, T0).is_ok(), sql);
                }
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = ConversationStatus> {
        prop::sample::select(ConversationStatus::ALL.to_vec())
    }

    proptest! {
        /// Any sequence of presses by several agents keeps the invariants, and while someone
        /// holds the conversation nobody else (short of an admin release) gets it.
        #[test]
        fn presses_keep_the_invariants(
            presses in prop::collection::vec((1i64..4, any::<bool>(), status()), 1..40),
            customer_writes in prop::collection::vec(any::<bool>(), 40),
        ) {
            let mut state = ConversationState::UNREAD;
            for (i, ((agent, admin, to), writes)) in presses.into_iter().zip(customer_writes).enumerate() {
                let now = i as i64 * 1000;
                let actor = Actor { agent_id: agent, is_admin: admin };
                let before = state;
                match change_status(&state, actor, to, now) {
                    Ok(next) => {
                        prop_assert_eq!(next.status, to);
                        if let Some(holder) = before.holder() {
                            prop_assert!(holder == agent || (admin && to != ConversationStatus::InProgress));
                        }
                        state = next;
                    }
                    Err(StatusError::HeldBy { agent_id }) => {
                        prop_assert_eq!(before.holder(), Some(agent_id));
                        prop_assert_ne!(agent_id, agent);
                        prop_assert_eq!(can_send(&before, agent), Err(SendError::HeldBy { agent_id }));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
                if writes {
                    state = state_after_customer_message(&state);
                }
                match state.status {
                    ConversationStatus::InProgress => {
                        prop_assert!(state.agent_id.is_some() && state.started_at.is_some());
                        prop_assert!(can_send(&state, state.agent_id.unwrap()).is_ok());
                    }
                    ConversationStatus::Unread | ConversationStatus::Done => {
                        prop_assert_eq!(state.agent_id.is_some(), state.started_at.is_some());
                        prop_assert_eq!(state.holder(), None);
                    }
                }
            }
        }
    }
}
