//! The chat list (spec V1) and one chat's header (V2).

use desk_core::ConversationStatus;

use crate::sql::escape_like;
use crate::{Change, Result, Store};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    pub profile_state: String,
    pub blocked: bool,
    #[sqlx(try_from = "String")]
    pub status: ConversationStatus,
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
    /// Part of the linked customer's name (compared by [`desk_core::normalize::name_key`]).
    pub customer_name: Option<String>,
    /// Digits of the linked customer's phone number (hyphens already removed).
    pub phone_digits: Option<String>,
    /// Linked to a customer (登録済) or not (未登録).
    pub registered: Option<bool>,
    pub status: Option<ConversationStatus>,
    /// The login, or part of the name, of the agent the list shows for the chat: its handler,
    /// or (not in progress) its last handler.
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
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, ConversationRow>(
            &sql
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn conversation_by_line_user(
        &self,
        line_user_id: &str,
    ) -> Result<Option<ConversationRow>> {
        let sql = format!("{SELECT} WHERE c.line_user_id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, ConversationRow>(
            &sql
        )
        .bind(line_user_id)
        .fetch_optional(p)
        .await)?)
    }

    /// One page of the list. Keyset paging on `(last_message_at, id)` keeps every page as
    /// fast as the first, however many chats there are.
    pub async fn list_conversations(&self, f: &ConversationFilter) -> Result<Vec<ConversationRow>> {
        let rows = on_db!(&self.db, |p| {
            let mut q = sqlx::QueryBuilder::new(SELECT);
            q.push(" WHERE 1=1");
            if let Some(id) = f.customer_id {
                q.push(" AND c.customer_id = ").push_bind(id);
            }
            if let Some(name) = &f.customer_name {
                // A subquery, not a filter on the joined row: SQLite then finds the few
                // matching customers first instead of probing one per chat (docs/benchmarks.md).
                let key = desk_core::normalize::name_key(name);
                q.push(" AND c.customer_id IN (SELECT id FROM customers WHERE name_key LIKE ")
                    .push_bind(format!("%{}%", escape_like(&key)))
                    .push(" ESCAPE '\\')");
            }
            if let Some(digits) = &f.phone_digits {
                q.push(" AND c.customer_id IN (SELECT id FROM customers WHERE phone_digits LIKE ")
                    .push_bind(format!("%{}%", escape_like(digits)))
                    .push(" ESCAPE '\\')");
            }
            match f.registered {
                Some(true) => {
                    q.push(" AND c.customer_id IS NOT NULL");
                }
                Some(false) => {
                    q.push(" AND c.customer_id IS NULL");
                }
                None => {}
            }
            if let Some(s) = &f.status {
                q.push(" AND c.status = ").push_bind(s.as_str());
            }
            if let Some(a) = &f.agent {
                // The agent the 対応中エージェント column shows: the holder, or the last handler
                // (labelled 前回の対応); ステータス narrows it to chats held now.
                q.push(" AND (u.login = ")
                    .push_bind(a.clone())
                    .push(" OR u.name LIKE ")
                    .push_bind(format!("%{}%", escape_like(a)))
                    .push(" ESCAPE '\\')");
            }
            if let Some((at, id)) = f.after {
                q.push(" AND (c.last_message_at < ")
                    .push_bind(at)
                    .push(" OR (c.last_message_at = ")
                    .push_bind(at)
                    .push(" AND c.id < ")
                    .push_bind(id)
                    .push("))");
            }
            q.push(" ORDER BY c.last_message_at DESC, c.id DESC LIMIT ")
                .push_bind(f.limit.clamp(1, 500));
            // A part-of search is planned with its pattern every time (not as a cached generic
            // plan, which on PostgreSQL cannot use the trigram indexes).
            let part_of = f.customer_name.is_some() || f.phone_digits.is_some();
            q.build_query_as::<ConversationRow>()
                .persistent(!part_of)
                .fetch_all(p)
                .await
        })?;
        Ok(rows)
    }

    pub async fn count_conversations(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM conversations"
        )
        .fetch_one(p)
        .await)?)
    }
}

/// What came of pressing a status button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    Changed,
    /// Someone else handles the in-progress chat (C4): nothing changed.
    HeldBy {
        agent_id: i64,
    },
    NotFound,
}

impl Store {
    /// Presses a status button (C3–C5). The rule of desk_core::status::lock_allows is the
    /// WHERE clause of one conditional UPDATE, so of two agents pressing 対応中 at the same
    /// instant exactly one changes a row — on SQLite and on PostgreSQL alike. An admin's
    /// 完了/未読 on someone else's chat is a release and is logged as such.
    pub async fn change_status(
        &self,
        conversation_id: i64,
        actor_id: i64,
        actor_is_admin: bool,
        to: desk_core::ConversationStatus,
        now_ms: i64,
    ) -> Result<StatusOutcome> {
        self.change_status_with(
            conversation_id,
            actor_id,
            actor_is_admin,
            to,
            crate::outbox::UnsentChoice::Keep,
            now_ms,
        )
        .await
    }

    /// [`Store::change_status`], deciding what becomes of the chat's waiting messages when it
    /// is completed or released (完了/未読): kept, or cancelled in the same transaction.
    pub async fn change_status_with(
        &self,
        conversation_id: i64,
        actor_id: i64,
        actor_is_admin: bool,
        to: desk_core::ConversationStatus,
        unsent: crate::outbox::UnsentChoice,
        now_ms: i64,
    ) -> Result<StatusOutcome> {
        use desk_core::ConversationStatus as S;
        let mut tx = self.begin().await?;
        // Locked on PostgreSQL, so the log's "from" is what the UPDATE below changes.
        let sql = format!(
            "SELECT status, agent_id FROM conversations WHERE id = $1{}",
            tx.for_update()
        );
        let before: Option<(String, Option<i64>)> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(conversation_id)
            .fetch_optional(c)
            .await)?;
        let Some((from, holder)) = before else {
            return Ok(StatusOutcome::NotFound);
        };
        let from: S = crate::decode(from)?;
        // Admins may release a held chat, but never take it over in one step.
        let admin_override = actor_is_admin && to != S::InProgress;
        let sql = match to {
            S::InProgress => {
                "UPDATE conversations SET status = 'in_progress', agent_id = $2,
                    started_at = CASE WHEN status = 'in_progress' AND agent_id = $2 THEN started_at ELSE $3 END,
                    unread_count = 0, updated_at = $3
                 WHERE id = $1 AND (status <> 'in_progress' OR agent_id = $2 OR $4)"
            }
            // 完了 keeps the last handler for display; only the status holds the lock.
            S::Done => {
                "UPDATE conversations SET status = 'done', updated_at = $3
                 WHERE id = $1 AND (status <> 'in_progress' OR agent_id = $2 OR $4)"
            }
            S::Unread => {
                "UPDATE conversations SET status = 'unread', agent_id = NULL, started_at = NULL, updated_at = $3
                 WHERE id = $1 AND (status <> 'in_progress' OR agent_id = $2 OR $4)"
            }
        };
        let changed = exec_tx!(&mut tx, |c| sqlx::query(sql)
            .bind(conversation_id)
            .bind(actor_id)
            .bind(now_ms)
            .bind(admin_override))?;
        if changed == 0 {
            let holder: Option<Option<i64>> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "SELECT agent_id FROM conversations WHERE id = $1"
            )
            .bind(conversation_id)
            .fetch_optional(c)
            .await)?;
            return Ok(StatusOutcome::HeldBy {
                agent_id: holder.flatten().unwrap_or_default(),
            });
        }
        let released =
            from == S::InProgress && holder.is_some_and(|h| h != actor_id) && to != S::InProgress;
        if to != S::InProgress && unsent == crate::outbox::UnsentChoice::Cancel {
            let was_holder = from == S::InProgress && holder == Some(actor_id);
            Store::cancel_waiting_in_tx(
                &mut tx,
                conversation_id,
                actor_id,
                actor_is_admin,
                was_holder,
                now_ms,
            )
            .await?;
        }
        let action = if released { "release" } else { "status" };
        exec_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO conversation_log (conversation_id, actor_id, action, from_status, to_status, at)
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(conversation_id).bind(actor_id).bind(action).bind(from.as_str()).bind(to.as_str()).bind(now_ms)
        })?;
        tx.announce([Change::Conversation {
            id: conversation_id,
        }]);
        tx.commit().await?;
        Ok(StatusOutcome::Changed)
    }

    /// An agent opened the chat: its customer messages count as read.
    pub async fn mark_read(&self, conversation_id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE conversations SET unread_count = 0 WHERE id = $1 AND unread_count <> 0"
        )
        .bind(conversation_id))?;
        if n > 0 {
            tx.announce([Change::Conversation {
                id: conversation_id,
            }]);
            tx.commit().await?;
        }
        Ok(())
    }

    /// The status log of a chat: (actor login, action, from, to, at), oldest first.
    pub async fn conversation_log(
        &self,
        conversation_id: i64,
    ) -> Result<Vec<(Option<String>, String, Option<String>, Option<String>, i64)>> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as(
            "SELECT u.login, l.action, l.from_status, l.to_status, l.at FROM conversation_log l
             LEFT JOIN users u ON u.id = l.actor_id WHERE l.conversation_id = $1 ORDER BY l.at, l.id")
            .bind(conversation_id).fetch_all(p).await
        })?)
    }
}
