//! Customers themselves: create, read, search (ID, name part, phone digits), change, delete.

use desk_core::customer_code::format_code;
use desk_core::normalize::name_key;
use desk_core::{HistoryAction, LinkVia};

use super::history::{History, tags_json, tags_text, write_history};
use crate::sql::escape_like;
use crate::{Change, Result, Store, StoreError};

/// A customer as stored (`tags` is a JSON array of strings).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub notes: String,
    pub tags: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CustomerRow {
    /// `#C15`.
    pub fn code(&self) -> String {
        format_code(self.id)
    }

    pub fn tag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
}

const CUSTOMER_COLUMNS: &str = "id, name, phone, email, notes, tags, created_at, updated_at";

/// A customer's editable fields, already checked by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerFields {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub notes: String,
    pub tags: Vec<String>,
}

/// The fields a change sets; `None` keeps the stored value.
#[derive(Clone, Debug, Default)]
pub struct CustomerPatch {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// The customer search (顧客管理 and the 顧客 button's search). Filters combine with AND;
/// none lists everyone, newest first.
#[derive(Clone, Debug, Default)]
pub struct CustomerFilter {
    pub id: Option<i64>,
    /// Part of the name, as typed (compared by [`desk_core::normalize::name_key`]).
    pub name: Option<String>,
    /// Part of the phone number's digits.
    pub phone_digits: Option<String>,
    /// Keyset paging: customers with a smaller id than this (the next page).
    pub before_id: Option<i64>,
    /// Keyset paging back: customers with a larger id than this, the `limit` nearest to it
    /// (the previous page; still returned newest first).
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// The search's conditions on `customers`, for the list and its counts.
fn push_conditions<'a, DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<'a, DB>, f: &CustomerFilter)
where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(id) = f.id {
        q.push(" AND id = ").push_bind(id);
    }
    if let Some(name) = &f.name {
        q.push(" AND name_key LIKE ")
            .push_bind(format!("%{}%", escape_like(&name_key(name))))
            .push(" ESCAPE '\\'");
    }
    if let Some(digits) = &f.phone_digits {
        q.push(" AND phone_digits LIKE ")
            .push_bind(format!("%{}%", escape_like(digits)))
            .push(" ESCAPE '\\'");
    }
}

impl Store {
    /// Creates a customer; the history gets a `created` row per filled field.
    pub async fn create_customer(
        &self,
        f: &CustomerFields,
        actor_id: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "INSERT INTO customers (name, name_key, phone, phone_digits, email, notes, tags, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id")
            .bind(&f.name).bind(name_key(&f.name)).bind(&f.phone)
            .bind(desk_core::customer_code::normalize_phone_digits(&f.phone))
            .bind(&f.email).bind(&f.notes).bind(tags_json(&f.tags)).bind(now_ms)
            .fetch_one(c).await
        })?;
        let tags = tags_text(&f.tags);
        for (field, value) in [
            ("name", f.name.as_str()),
            ("phone", f.phone.as_str()),
            ("email", f.email.as_str()),
            ("notes", f.notes.as_str()),
            ("tags", tags.as_str()),
        ] {
            if field == "name" || !value.is_empty() {
                let h = History {
                    customer_id: id,
                    actor_id,
                    action: HistoryAction::Created,
                    field: Some(field),
                    new_value: Some(value),
                    ..Default::default()
                };
                write_history(&mut tx, h, now_ms).await?;
            }
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn customer(&self, id: i64) -> Result<Option<CustomerRow>> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, CustomerRow>(
            &sql
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// One page of the customer search, newest first.
    pub async fn list_customers(&self, f: &CustomerFilter) -> Result<Vec<CustomerRow>> {
        let mut rows = on_db!(&self.db, |p| {
            let mut q = sqlx::QueryBuilder::new(format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE 1=1"
            ));
            push_conditions(&mut q, f);
            if let Some(before) = f.before_id {
                q.push(" AND id < ").push_bind(before);
            }
            if let Some(after) = f.after_id {
                q.push(" AND id > ").push_bind(after);
                q.push(" ORDER BY id ASC LIMIT ")
                    .push_bind(f.limit.clamp(1, 500));
            } else {
                q.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(f.limit.clamp(1, 500));
            }
            // Planned with its pattern every time: a cached generic plan cannot use
            // PostgreSQL's trigram indexes (docs/benchmarks.md).
            let part_of = f.name.is_some() || f.phone_digits.is_some();
            q.build_query_as::<CustomerRow>()
                .persistent(!part_of)
                .fetch_all(p)
                .await
        })?;
        if f.after_id.is_some() {
            rows.reverse();
        }
        Ok(rows)
    }

    /// How many customers the search finds in all, and how many of them come before the
    /// customer `newer_than` (have a larger id): the "1 - 20 / 35" of a page whose first row
    /// is that customer. Paging stays keyset; only the range is counted.
    pub async fn count_customers(
        &self,
        f: &CustomerFilter,
        newer_than: Option<i64>,
    ) -> Result<(i64, i64)> {
        let (total, before): (i64, i64) = on_db!(&self.db, |p| {
            let mut q = sqlx::QueryBuilder::new("SELECT COUNT(*), COUNT(CASE WHEN id > ");
            q.push_bind(newer_than.unwrap_or(i64::MAX))
                .push(" THEN 1 END) FROM customers WHERE 1=1");
            push_conditions(&mut q, f);
            let part_of = f.name.is_some() || f.phone_digits.is_some();
            q.build_query_as::<(i64, i64)>()
                .persistent(!part_of)
                .fetch_one(p)
                .await
        })?;
        Ok((total, before))
    }

    /// Changes the given fields; the history gets an `updated` row per field whose value
    /// changed. Returns how many changed. [`StoreError::NotFound`] without the customer.
    pub async fn update_customer(
        &self,
        id: i64,
        patch: &CustomerPatch,
        actor_id: Option<i64>,
        now_ms: i64,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1{}",
            tx.for_update()
        );
        let Some(old) = on_tx!(&mut tx, |c| sqlx::query_as::<_, CustomerRow>(&sql)
            .bind(id)
            .fetch_optional(c)
            .await)?
        else {
            return Err(StoreError::NotFound);
        };
        let old_tags = tags_text(&old.tag_list());
        // Tags compare as lists (a tag may itself hold ", "); the history shows them joined.
        let new_tags = patch
            .tags
            .as_ref()
            .filter(|t| **t != old.tag_list())
            .map(|t| tags_text(t));
        let mut changed: Vec<(&str, &str, &str)> = Vec::new();
        for (field, before, after) in [
            ("name", old.name.as_str(), patch.name.as_deref()),
            ("phone", old.phone.as_str(), patch.phone.as_deref()),
            ("email", old.email.as_str(), patch.email.as_deref()),
            ("notes", old.notes.as_str(), patch.notes.as_deref()),
        ] {
            if let Some(after) = after
                && after != before
            {
                changed.push((field, before, after));
            }
        }
        if let Some(after) = new_tags.as_deref() {
            changed.push(("tags", old_tags.as_str(), after));
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let name = patch.name.as_deref().unwrap_or(&old.name);
        let phone = patch.phone.as_deref().unwrap_or(&old.phone);
        let tags = match &patch.tags {
            Some(t) => tags_json(t),
            None => old.tags.clone(),
        };
        exec_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE customers SET name = $2, name_key = $3, phone = $4, phone_digits = $5, email = $6,
                    notes = $7, tags = $8, updated_at = $9 WHERE id = $1")
            .bind(id).bind(name).bind(name_key(name)).bind(phone)
            .bind(desk_core::customer_code::normalize_phone_digits(phone))
            .bind(patch.email.as_deref().unwrap_or(&old.email))
            .bind(patch.notes.as_deref().unwrap_or(&old.notes))
            .bind(&tags).bind(now_ms)
        })?;
        for (field, before, after) in &changed {
            let h = History {
                customer_id: id,
                actor_id,
                action: HistoryAction::Updated,
                field: Some(field),
                old_value: Some(before),
                new_value: Some(after),
                ..Default::default()
            };
            write_history(&mut tx, h, now_ms).await?;
        }
        // The chat list and chat headers show the name and phone of the linked customer.
        if changed
            .iter()
            .any(|(f, _, _)| matches!(*f, "name" | "phone"))
        {
            let chats: Vec<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "SELECT id FROM conversations WHERE customer_id = $1"
            )
            .bind(id)
            .fetch_all(c)
            .await)?;
            tx.announce(chats.into_iter().map(|id| Change::Conversation { id }));
        }
        tx.commit().await?;
        Ok(changed.len())
    }

    /// Deletes a customer (削除する): their LINE users become 未登録 again (their chats and
    /// messages stay), their passcodes go, and the history records the unlinks and the
    /// deletion. [`StoreError::NotFound`] without the customer.
    pub async fn delete_customer(&self, id: i64, actor_id: Option<i64>, now_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT name FROM customers WHERE id = $1{}",
            tx.for_update()
        );
        let Some(name) = on_tx!(&mut tx, |c| sqlx::query_scalar::<_, String>(&sql)
            .bind(id)
            .fetch_optional(c)
            .await)?
        else {
            return Err(StoreError::NotFound);
        };
        let chats: Vec<(i64, String)> = on_tx!(&mut tx, |c| {
            sqlx::query_as(
            "UPDATE conversations SET customer_id = NULL, updated_at = $2 WHERE customer_id = $1
             RETURNING id, line_user_id")
            .bind(id).bind(now_ms).fetch_all(c).await
        })?;
        for (conversation_id, line_user_id) in &chats {
            let h = History {
                customer_id: id,
                actor_id,
                action: HistoryAction::Unlinked,
                line_user_id: Some(line_user_id),
                conversation_id: Some(*conversation_id),
                via: Some(LinkVia::Deleted),
                ..Default::default()
            };
            write_history(&mut tx, h, now_ms).await?;
        }
        let h = History {
            customer_id: id,
            actor_id,
            action: HistoryAction::Deleted,
            field: Some("name"),
            old_value: Some(&name),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM customers WHERE id = $1"
        )
        .bind(id))?;
        tx.announce(chats.iter().map(|(id, _)| Change::Conversation { id: *id }));
        tx.commit().await?;
        Ok(())
    }
}
