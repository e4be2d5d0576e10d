//! 顧客管理 (spec L1–L4): customers, their change history (変更履歴), and linking LINE users
//! to them — by an agent (the 顧客 button) or by the LINE user sending a passcode.
//!
//! * A LINE user (one conversation) is linked to at most one customer
//!   (`conversations.customer_id`); a customer may have several LINE users.
//! * Every change to a customer (field, old value, new value, who, when) and every link and
//!   unlink is a `customer_history` row, written in the transaction that makes the change.
//!   The history outlives a deleted customer.
//! * Passcodes (`@105-908`, desk_core::passcode): one active per customer (issuing again
//!   replaces it), unique among the active ones, single use. A passcode-shaped customer
//!   message gets a `passcode` job in the webhook's transaction (ingest.rs);
//!   [`Store::check_passcodes`] runs it: the chat's pending attempts are checked in the order
//!   the LINE user sent them, wrong ones are recorded and throttle the user
//!   (desk_core::passcode::attempt_allowed), a right one links, uses the passcode up, writes
//!   the history and adds a system line to the chat.
//!
//! On PostgreSQL, the rows a change reads before writing (the customer, the conversation) are
//! locked with `FOR UPDATE`; SQLite's write transactions are serialised anyway.
//!
//! One file per part: `records.rs` (the customers), `history.rs` (変更履歴), `links.rs`
//! (linking chats) and `passcodes.rs`. Everything public is re-exported here, so callers
//! write `desk_store::customers::…`.

mod history;
mod links;
mod passcodes;
mod records;

pub use history::{FIELDS, HistoryRow, tags_text};
pub use links::{LinkOutcome, LinkedChat, UnlinkOutcome};
pub use passcodes::{ActivePasscode, Attempt, PASSCODE_BUDGET_REFUSED};
pub use records::{CustomerFields, CustomerFilter, CustomerPatch, CustomerRow};
