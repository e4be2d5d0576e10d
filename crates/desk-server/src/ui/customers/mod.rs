//! CRM > 顧客管理 (L1–L4): the customer list with its search (ID, 名称, 電話番号) and a form
//! to register one; the customer detail (edit, LINE accounts, パスコード登録、更新, 削除する,
//! 変更履歴); and the 顧客 dialog of the chat detail as its own page, `/chats/{id}/customer`
//! (search, pick one, 実行 links, 戻る returns; 関連付けを解除 unlinks).
//!
//! Plain forms with POST-redirect-GET; result messages travel as `?msg=<known key>`. The
//! checks and the store calls are the JSON API's (`api/customers.rs`), so both behave alike.
//! Linking and unlinking announce the chat's change, so open chat pages update live.

//!
//! One file per page — `list.rs` (顧客一覧 and 新規登録), `detail.rs` (顧客詳細), `link.rs`
//! (the 顧客 dialog) — and `parts.rs` for what they share (the search, the form's fields).

mod detail;
mod link;
mod list;
mod parts;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list::list_page).post(list::create))
        .route(
            "/customers/{id}",
            get(detail::detail_page).post(detail::save),
        )
        .route("/customers/{id}/delete", post(detail::delete))
        .route("/customers/{id}/passcode", post(detail::issue_passcode))
        .route(
            "/customers/{id}/unlink/{conversation_id}",
            post(detail::unlink_from_customer),
        )
        .route(
            "/chats/{id}/customer",
            get(link::link_page).post(link::link),
        )
        .route("/chats/{id}/customer/unlink", post(link::unlink_from_chat))
}
