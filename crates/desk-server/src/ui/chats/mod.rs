//! CRM > LINEチャット: the chat list (LINEチャット一覧, V1) and the chat detail
//! (LINEチャット詳細, V2) of the vendor manual, server-rendered with askama.
//!
//! The pages read the store directly; every change (status, sending, resending, marking
//! read) goes through the JSON API from `assets/chats.js`, so the UI and integrators share
//! one set of rules. Live updates (B2): the script listens to `/api/v1/events` and
//! re-fetches the parts that changed as fragments rendered from the same templates
//! (`/chats/rows`, `/chats/{id}/header`, `/chats/{id}/history`) — the data is escaped here,
//! never assembled into HTML in the browser (display names are chosen by LINE users).
//!
//! One file per part: `list.rs` (the list and its live rows), `detail.rs` (the detail page
//! and its fragments, the history range, the notification text), `head.rs` (the detail's
//! header: who, which customer, who handles it, how messages go out) and `messages.rs` (one
//! message as the history shows it).

mod detail;
mod head;
mod list;
mod messages;

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chats", get(list::list_page))
        .route("/chats/rows", get(list::list_rows))
        .route("/chats/{id}", get(detail::detail_page))
        .route("/chats/{id}/header", get(detail::detail_header))
        .route("/chats/{id}/history", get(detail::detail_history))
        .route("/chats/{id}/notice/{message_id}", get(detail::notice))
}
