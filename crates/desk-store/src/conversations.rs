//! The chat list (spec V1) and one chat's header (V2).

use crate::{Result, Store, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    pub profile_state: String,
    pub blocked: bool,
    pub status: String,
    pub agent_id: Option<i64>,
    pub agent_login: Option<String>,
    pub agent_name: Option<String>,
    pub started_at: Option<i64>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub customer_phone: Option<String>,
    pub unread_count: i64,
    pub last_message_at: i64,
    pub created_at: i64,
}

/// The list's filters (V1). All empty lists everyone, newest activity first.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    pub customer_id: Option<i64>,
    /// Part of the linked customer's name.
    pub customer_name: Option<String>,
    /// Digits of the linked customer's phone number (hyphens already removed).
    pub phone_digits: Option<String>,
    /// Linked to a customer (登録済) or not (未登録).
    pub registered: Option<bool>,
    pub status: Option<String>,
    /// The handling agent's login, or part of their name.
    pub agent: Option<String>,
    /// Keyset paging: rows strictly after this `(last_message_at, id)`.
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

const SELECT: &str = "SELECT c.id, c.line_user_id, c.display_name, c.picture_url, c.profile_state,
        c.blocked, c.status, c.agent_id, u.login AS agent_login, u.name AS agent_name, c.started_at,
        c.customer_id, cu.name AS customer_name, cu.phone AS customer_phone, c.unread_count,
        c.last_message_at, c.created_at
    FROM conversations c
    LEFT JOIN users u ON u.id = c.agent_id
    LEFT JOIN customers cu ON cu.id = c.customer_id";

impl Store {
    pub async fn conversation(&self, id: i64) -> Result<Option<ConversationRow>> {
        let sql = format!("{SELECT} WHERE c.id = $1");
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, ConversationRow>(&sql).bind(id).fetch_optional(p).await)?)
    }

    pub async fn conversation_by_line_user(&self, line_user_id: &str) -> Result<Option<ConversationRow>> {
        let sql = format!("{SELECT} WHERE c.line_user_id = $1");
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, ConversationRow>(&sql).bind(line_user_id).fetch_optional(p).await)?)
    }

    /// One page of the list. Keyset paging on `(last_message_at, id)` keeps every page as
    /// fast as the first, however many chats there are.
    pub async fn list_conversations(&self, f: &ConversationFilter) -> Result<Vec<ConversationRow>> {
        let rows = on_db!(&self.db, p => {
            let mut q = sqlx::QueryBuilder::new(SELECT);
            q.push(" WHERE 1=1");
            if let Some(id) = f.customer_id {
                q.push(" AND c.customer_id = ").push_bind(id);
            }
            if let Some(name) = &f.customer_name {
                q.push(" AND cu.name LIKE ").push_bind(format!("%{}%", escape_like(name))).push(" ESCAPE '\\'");
            }
            if let Some(digits) = &f.phone_digits {
                q.push(" AND cu.phone_digits LIKE ").push_bind(format!("%{}%", escape_like(digits))).push(" ESCAPE '\\'");
            }
            match f.registered {
                Some(true) => { q.push(" AND c.customer_id IS NOT NULL"); }
                Some(false) => { q.push(" AND c.customer_id IS NULL"); }
                None => {}
            }
            if let Some(s) = &f.status {
                q.push(" AND c.status = ").push_bind(s.clone());
            }
            if let Some(a) = &f.agent {
                q.push(" AND c.status = 'in_progress' AND (u.login = ").push_bind(a.clone())
                    .push(" OR u.name LIKE ").push_bind(format!("%{}%", escape_like(a))).push(" ESCAPE '\\')");
            }
            if let Some((at, id)) = f.after {
                q.push(" AND (c.last_message_at < ").push_bind(at)
                    .push(" OR (c.last_message_at = ").push_bind(at)
                    .push(" AND c.id < ").push_bind(id).push("))");
            }
            q.push(" ORDER BY c.last_message_at DESC, c.id DESC LIMIT ").push_bind(f.limit.clamp(1, 500));
            q.build_query_as::<ConversationRow>().fetch_all(p).await
        })?;
        Ok(rows)
    }

    pub async fn count_conversations(&self) -> Result<i64> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM conversations").fetch_one(p).await)?)
    }
}

/// `%` and `_` typed by a user are literal characters, not wildcards.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}
