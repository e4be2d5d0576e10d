//! 変更履歴: every change to a customer and every link, written in the transaction that
//! makes it; and the small helpers the other customer modules share.

use crate::{Result, Store, Tx, TxInner, exec_tx, on_db};

/// One line of 変更履歴.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub customer_id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_login: Option<String>,
    pub actor_name: Option<String>,
    /// `created` | `updated` | `deleted` | `linked` | `unlinked` | `passcode_issued`.
    pub action: String,
    /// `name` | `phone` | `email` | `notes` | `tags` (created / updated).
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub line_user_id: Option<String>,
    pub conversation_id: Option<i64>,
    /// `agent` | `passcode` | `deleted` (linked / unlinked).
    pub via: Option<String>,
    pub valid_until: Option<i64>,
}

/// Fields a history `updated` row may name, in display order.
pub const FIELDS: [&str; 5] = ["name", "phone", "email", "notes", "tags"];

/// Tags as shown in the history: `VIP, 要注意`.
pub fn tags_text(tags: &[String]) -> String {
    tags.join(", ")
}

pub(super) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

pub(super) fn is_pg(tx: &Tx) -> bool {
    matches!(tx.inner, TxInner::Postgres(_))
}

/// ` FOR UPDATE` on PostgreSQL (SQLite's write transaction already excludes other writers).
pub(super) fn for_update(tx: &Tx) -> &'static str {
    if is_pg(tx) { " FOR UPDATE" } else { "" }
}

/// A history row to write.
#[derive(Default)]
pub(super) struct History<'a> {
    pub(super) customer_id: i64,
    pub(super) actor_id: Option<i64>,
    pub(super) action: &'a str,
    pub(super) field: Option<&'a str>,
    pub(super) old_value: Option<&'a str>,
    pub(super) new_value: Option<&'a str>,
    pub(super) line_user_id: Option<&'a str>,
    pub(super) conversation_id: Option<i64>,
    pub(super) via: Option<&'a str>,
    pub(super) valid_until: Option<i64>,
}

pub(super) async fn write_history(tx: &mut Tx, h: History<'_>, at: i64) -> Result<()> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO customer_history (customer_id, at, actor_id, action, field, old_value, new_value,
                                       line_user_id, conversation_id, via, valid_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(h.customer_id).bind(at).bind(h.actor_id).bind(h.action).bind(h.field)
        .bind(h.old_value).bind(h.new_value).bind(h.line_user_id).bind(h.conversation_id)
        .bind(h.via).bind(h.valid_until))?;
    Ok(())
}

impl Store {
    /// 変更履歴 of a customer, newest first (at most `limit` rows).
    pub async fn customer_history(&self, customer_id: i64, limit: i64) -> Result<Vec<HistoryRow>> {
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, HistoryRow>(
            "SELECT h.id, h.customer_id, h.at, h.actor_id, u.login AS actor_login, u.name AS actor_name,
                    h.action, h.field, h.old_value, h.new_value, h.line_user_id, h.conversation_id,
                    h.via, h.valid_until
             FROM customer_history h LEFT JOIN users u ON u.id = h.actor_id
             WHERE h.customer_id = $1 ORDER BY h.at DESC, h.id DESC LIMIT $2")
            .bind(customer_id).bind(limit).fetch_all(p).await)?)
    }
}
