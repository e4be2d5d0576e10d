//! 変更履歴: every change to a customer and every link, written in the transaction that
//! makes it; and the small helpers the other customer modules share.

use desk_core::{HistoryAction, LinkVia};

use crate::{Result, Store, Tx};

/// One line of 変更履歴.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub customer_id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_login: Option<String>,
    pub actor_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub action: HistoryAction,
    /// `name` | `phone` | `email` | `notes` | `tags` (created / updated).
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub line_user_id: Option<String>,
    pub conversation_id: Option<i64>,
    /// How a link or unlink came about; see [`HistoryRow::via`]. (Text here: sqlx's
    /// `try_from` cannot map a nullable column.)
    #[sqlx(rename = "via")]
    via_text: Option<String>,
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

/// A history row to write.
pub(super) struct History<'a> {
    pub(super) customer_id: i64,
    pub(super) actor_id: Option<i64>,
    pub(super) action: HistoryAction,
    pub(super) field: Option<&'a str>,
    pub(super) old_value: Option<&'a str>,
    pub(super) new_value: Option<&'a str>,
    pub(super) line_user_id: Option<&'a str>,
    pub(super) conversation_id: Option<i64>,
    pub(super) via: Option<LinkVia>,
    pub(super) valid_until: Option<i64>,
}

/// For `..Default::default()` in the writers, each of which names its own action.
impl Default for History<'_> {
    fn default() -> Self {
        History {
            customer_id: 0,
            actor_id: None,
            action: HistoryAction::Updated,
            field: None,
            old_value: None,
            new_value: None,
            line_user_id: None,
            conversation_id: None,
            via: None,
            valid_until: None,
        }
    }
}

pub(super) async fn write_history(tx: &mut Tx, h: History<'_>, at: i64) -> Result<()> {
    exec_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO customer_history (customer_id, at, actor_id, action, field, old_value, new_value,
                                       line_user_id, conversation_id, via, valid_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(h.customer_id).bind(at).bind(h.actor_id).bind(h.action.as_str()).bind(h.field)
        .bind(h.old_value).bind(h.new_value).bind(h.line_user_id).bind(h.conversation_id)
        .bind(h.via.map(LinkVia::as_str)).bind(h.valid_until)
    })?;
    Ok(())
}

impl HistoryRow {
    /// How a link or unlink came about (`None` for other actions).
    pub fn via(&self) -> Option<LinkVia> {
        self.via_text.as_deref().and_then(|v| v.parse().ok())
    }
}

impl Store {
    /// 変更履歴 of a customer, newest first (at most `limit` rows).
    pub async fn customer_history(&self, customer_id: i64, limit: i64) -> Result<Vec<HistoryRow>> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as::<_, HistoryRow>(
            "SELECT h.id, h.customer_id, h.at, h.actor_id, u.login AS actor_login, u.name AS actor_name,
                    h.action, h.field, h.old_value, h.new_value, h.line_user_id, h.conversation_id,
                    h.via, h.valid_until
             FROM customer_history h LEFT JOIN users u ON u.id = h.actor_id
             WHERE h.customer_id = $1 ORDER BY h.at DESC, h.id DESC LIMIT $2")
            .bind(customer_id).bind(limit).fetch_all(p).await
        })?)
    }
}
