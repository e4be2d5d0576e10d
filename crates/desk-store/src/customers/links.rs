//! Linking a LINE user (a chat) to a customer, by an agent; the chats a customer has.

use super::history::{History, write_history};
use desk_core::{HistoryAction, LinkVia};

use crate::{Change, Result, Store, Tx};

/// A LINE user linked to a customer.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LinkedChat {
    pub customer_id: i64,
    pub conversation_id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: desk_core::ConversationStatus,
    pub last_message_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked; `previous` is the customer the LINE user was linked to before, if another.
    Linked {
        previous: Option<i64>,
    },
    /// Already linked to that customer.
    Unchanged,
    NoConversation,
    NoCustomer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnlinkOutcome {
    Unlinked { customer_id: i64 },
    NotLinked,
    NoConversation,
}

/// Links inside a transaction (the agent's button, or a passcode). Announces the chat's
/// change; the caller commits.
pub(super) async fn link_in_tx(
    tx: &mut Tx,
    conversation_id: i64,
    customer_id: i64,
    actor_id: Option<i64>,
    via: LinkVia,
    passcode: Option<&str>,
    now_ms: i64,
) -> Result<LinkOutcome> {
    let sql = format!(
        "SELECT customer_id, line_user_id FROM conversations WHERE id = $1{}",
        tx.for_update()
    );
    let row: Option<(Option<i64>, String)> = on_tx!(tx, |c| sqlx::query_as(&sql)
        .bind(conversation_id)
        .fetch_optional(c)
        .await)?;
    let Some((previous, line_user_id)) = row else {
        return Ok(LinkOutcome::NoConversation);
    };
    let sql = format!("SELECT id FROM customers WHERE id = $1{}", tx.for_update());
    let exists: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(&sql)
        .bind(customer_id)
        .fetch_optional(c)
        .await)?;
    if exists.is_none() {
        return Ok(LinkOutcome::NoCustomer);
    }
    if previous == Some(customer_id) {
        if passcode.is_some() {
            // The passcode is used up all the same; the history says so.
            let h = History {
                customer_id,
                action: HistoryAction::Linked,
                new_value: passcode,
                line_user_id: Some(&line_user_id),
                conversation_id: Some(conversation_id),
                via: Some(via),
                ..Default::default()
            };
            write_history(tx, h, now_ms).await?;
        }
        return Ok(LinkOutcome::Unchanged);
    }
    exec_tx!(tx, |c| sqlx::query(
        "UPDATE conversations SET customer_id = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(conversation_id)
    .bind(customer_id)
    .bind(now_ms))?;
    if let Some(old) = previous {
        let h = History {
            customer_id: old,
            actor_id,
            action: HistoryAction::Unlinked,
            line_user_id: Some(&line_user_id),
            conversation_id: Some(conversation_id),
            via: Some(via),
            ..Default::default()
        };
        write_history(tx, h, now_ms).await?;
    }
    let h = History {
        customer_id,
        actor_id,
        action: HistoryAction::Linked,
        new_value: passcode,
        line_user_id: Some(&line_user_id),
        conversation_id: Some(conversation_id),
        via: Some(via),
        ..Default::default()
    };
    write_history(tx, h, now_ms).await?;
    tx.announce([Change::Conversation {
        id: conversation_id,
    }]);
    Ok(LinkOutcome::Linked { previous })
}

impl Store {
    /// The LINE users linked to these customers, each customer's newest chat first.
    pub async fn linked_chats(&self, customer_ids: &[i64]) -> Result<Vec<LinkedChat>> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = on_db!(&self.db, |p| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT customer_id, id AS conversation_id, line_user_id, display_name, status, last_message_at
                 FROM conversations WHERE customer_id IN (");
            let mut sep = q.separated(", ");
            for id in customer_ids {
                sep.push_bind(*id);
            }
            q.push(") ORDER BY customer_id, last_message_at DESC, id DESC");
            q.build_query_as::<LinkedChat>().fetch_all(p).await
        })?;
        Ok(rows)
    }

    /// Links the chat's LINE user to a customer (the 顧客 button, L1), replacing any other
    /// link; the history of both customers records it.
    pub async fn link_conversation(
        &self,
        conversation_id: i64,
        customer_id: i64,
        actor_id: Option<i64>,
        now_ms: i64,
    ) -> Result<LinkOutcome> {
        let mut tx = self.begin().await?;
        let out = link_in_tx(
            &mut tx,
            conversation_id,
            customer_id,
            actor_id,
            LinkVia::Agent,
            None,
            now_ms,
        )
        .await?;
        if matches!(out, LinkOutcome::Linked { .. }) {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// Unlinks the chat's LINE user from its customer.
    pub async fn unlink_conversation(
        &self,
        conversation_id: i64,
        actor_id: Option<i64>,
        now_ms: i64,
    ) -> Result<UnlinkOutcome> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT customer_id, line_user_id FROM conversations WHERE id = $1{}",
            tx.for_update()
        );
        let row: Option<(Option<i64>, String)> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(conversation_id)
            .fetch_optional(c)
            .await)?;
        let (customer_id, line_user_id) = match row {
            None => return Ok(UnlinkOutcome::NoConversation),
            Some((None, _)) => return Ok(UnlinkOutcome::NotLinked),
            Some((Some(c), u)) => (c, u),
        };
        exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE conversations SET customer_id = NULL, updated_at = $2 WHERE id = $1"
        )
        .bind(conversation_id)
        .bind(now_ms))?;
        let h = History {
            customer_id,
            actor_id,
            action: HistoryAction::Unlinked,
            line_user_id: Some(&line_user_id),
            conversation_id: Some(conversation_id),
            via: Some(LinkVia::Agent),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        tx.announce([Change::Conversation {
            id: conversation_id,
        }]);
        tx.commit().await?;
        Ok(UnlinkOutcome::Unlinked { customer_id })
    }
}
