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

use desk_core::customer_code::format_code;
use desk_core::normalize::name_key;
use desk_core::passcode::{self, Passcode};
use serde_json::json;

use crate::sql::escape_like;
use crate::{Change, Result, Store, StoreError, Tx, TxInner, exec_tx, on_db, on_tx, secrets};

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

/// The customer's passcode that is neither used nor replaced (it may have expired).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActivePasscode {
    pub code: String,
    pub issued_at: i64,
    pub valid_until: i64,
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

/// What came of one checked passcode attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub message_id: i64,
    pub code: String,
    /// `linked` | `failed` | `throttled`.
    pub outcome: &'static str,
    pub customer_id: Option<i64>,
    /// For `throttled`: the desk-wide guessing budget was exhausted (else the LINE user's
    /// own limit).
    pub budget_exhausted: bool,
}

/// The counter of passcode attempts left unchecked because the desk-wide guessing budget
/// was exhausted (its time: the last such attempt).
pub const PASSCODE_BUDGET_REFUSED: &str = "passcode_budget_refused";
/// The advisory lock serializing passcode checks across instances ("ldpass"), so the
/// desk-wide budget is never overdrawn.
const PASSCODE_LOCK_KEY: i64 = 0x6c64_7061_7373;

/// Fields a history `updated` row may name, in display order.
pub const FIELDS: [&str; 5] = ["name", "phone", "email", "notes", "tags"];

/// Tags as shown in the history: `VIP, 要注意`.
pub fn tags_text(tags: &[String]) -> String {
    tags.join(", ")
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

fn is_pg(tx: &Tx) -> bool {
    matches!(tx.inner, TxInner::Postgres(_))
}

/// ` FOR UPDATE` on PostgreSQL (SQLite's write transaction already excludes other writers).
fn for_update(tx: &Tx) -> &'static str {
    if is_pg(tx) { " FOR UPDATE" } else { "" }
}

/// A history row to write.
#[derive(Default)]
struct History<'a> {
    customer_id: i64,
    actor_id: Option<i64>,
    action: &'a str,
    field: Option<&'a str>,
    old_value: Option<&'a str>,
    new_value: Option<&'a str>,
    line_user_id: Option<&'a str>,
    conversation_id: Option<i64>,
    via: Option<&'a str>,
    valid_until: Option<i64>,
}

async fn write_history(tx: &mut Tx, h: History<'_>, at: i64) -> Result<()> {
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
    /// Creates a customer; the history gets a `created` row per filled field.
    pub async fn create_customer(
        &self,
        f: &CustomerFields,
        actor_id: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO customers (name, name_key, phone, phone_digits, email, notes, tags, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id")
            .bind(&f.name).bind(name_key(&f.name)).bind(&f.phone)
            .bind(desk_core::customer_code::normalize_phone_digits(&f.phone))
            .bind(&f.email).bind(&f.notes).bind(tags_json(&f.tags)).bind(now_ms)
            .fetch_one(c).await)?;
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
                    action: "created",
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
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, CustomerRow>(&sql).bind(id).fetch_optional(p).await)?,
        )
    }

    /// One page of the customer search, newest first.
    pub async fn list_customers(&self, f: &CustomerFilter) -> Result<Vec<CustomerRow>> {
        let mut rows = on_db!(&self.db, p => {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE 1=1"));
            push_conditions(&mut q, f);
            if let Some(before) = f.before_id {
                q.push(" AND id < ").push_bind(before);
            }
            if let Some(after) = f.after_id {
                q.push(" AND id > ").push_bind(after);
                q.push(" ORDER BY id ASC LIMIT ").push_bind(f.limit.clamp(1, 500));
            } else {
                q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit.clamp(1, 500));
            }
            // Planned with its pattern every time: a cached generic plan cannot use
            // PostgreSQL's trigram indexes (docs/benchmarks.md).
            let part_of = f.name.is_some() || f.phone_digits.is_some();
            q.build_query_as::<CustomerRow>().persistent(!part_of).fetch_all(p).await
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
        let (total, before): (i64, i64) = on_db!(&self.db, p => {
            let mut q = sqlx::QueryBuilder::new("SELECT COUNT(*), COUNT(CASE WHEN id > ");
            q.push_bind(newer_than.unwrap_or(i64::MAX)).push(" THEN 1 END) FROM customers WHERE 1=1");
            push_conditions(&mut q, f);
            let part_of = f.name.is_some() || f.phone_digits.is_some();
            q.build_query_as::<(i64, i64)>().persistent(!part_of).fetch_one(p).await
        })?;
        Ok((total, before))
    }

    /// The LINE users linked to these customers, each customer's newest chat first.
    pub async fn linked_chats(&self, customer_ids: &[i64]) -> Result<Vec<LinkedChat>> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = on_db!(&self.db, p => {
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
            for_update(&tx)
        );
        let Some(old) = on_tx!(&mut tx, c => sqlx::query_as::<_, CustomerRow>(&sql).bind(id).fetch_optional(c).await)?
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
        exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE customers SET name = $2, name_key = $3, phone = $4, phone_digits = $5, email = $6,
                    notes = $7, tags = $8, updated_at = $9 WHERE id = $1")
            .bind(id).bind(name).bind(name_key(name)).bind(phone)
            .bind(desk_core::customer_code::normalize_phone_digits(phone))
            .bind(patch.email.as_deref().unwrap_or(&old.email))
            .bind(patch.notes.as_deref().unwrap_or(&old.notes))
            .bind(&tags).bind(now_ms))?;
        for (field, before, after) in &changed {
            let h = History {
                customer_id: id,
                actor_id,
                action: "updated",
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
            let chats: Vec<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
                "SELECT id FROM conversations WHERE customer_id = $1")
                .bind(id).fetch_all(c).await)?;
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
            for_update(&tx)
        );
        let Some(name) = on_tx!(&mut tx, c => sqlx::query_scalar::<_, String>(&sql).bind(id).fetch_optional(c).await)?
        else {
            return Err(StoreError::NotFound);
        };
        let chats: Vec<(i64, String)> = on_tx!(&mut tx, c => sqlx::query_as(
            "UPDATE conversations SET customer_id = NULL, updated_at = $2 WHERE customer_id = $1
             RETURNING id, line_user_id")
            .bind(id).bind(now_ms).fetch_all(c).await)?;
        for (conversation_id, line_user_id) in &chats {
            let h = History {
                customer_id: id,
                actor_id,
                action: "unlinked",
                line_user_id: Some(line_user_id),
                conversation_id: Some(*conversation_id),
                via: Some("deleted"),
                ..Default::default()
            };
            write_history(&mut tx, h, now_ms).await?;
        }
        let h = History {
            customer_id: id,
            actor_id,
            action: "deleted",
            field: Some("name"),
            old_value: Some(&name),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        exec_tx!(&mut tx, c => sqlx::query("DELETE FROM customers WHERE id = $1").bind(id))?;
        tx.announce(chats.iter().map(|(id, _)| Change::Conversation { id: *id }));
        tx.commit().await?;
        Ok(())
    }

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
            "agent",
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
            for_update(&tx)
        );
        let row: Option<(Option<i64>, String)> = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(conversation_id).fetch_optional(c).await)?;
        let (customer_id, line_user_id) = match row {
            None => return Ok(UnlinkOutcome::NoConversation),
            Some((None, _)) => return Ok(UnlinkOutcome::NotLinked),
            Some((Some(c), u)) => (c, u),
        };
        exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE conversations SET customer_id = NULL, updated_at = $2 WHERE id = $1")
            .bind(conversation_id).bind(now_ms))?;
        let h = History {
            customer_id,
            actor_id,
            action: "unlinked",
            line_user_id: Some(&line_user_id),
            conversation_id: Some(conversation_id),
            via: Some("agent"),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        tx.announce([Change::Conversation {
            id: conversation_id,
        }]);
        tx.commit().await?;
        Ok(UnlinkOutcome::Unlinked { customer_id })
    }

    /// Wrong passcodes sent since `since_ms` on the whole desk (the guessing budget's count).
    pub async fn passcode_failures_since(&self, since_ms: i64) -> Result<i64> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM passcode_attempts WHERE outcome = 'failed' AND at > $1")
            .bind(since_ms).fetch_one(p).await)?)
    }

    /// The customer's passcode that is neither used nor replaced (it may have expired).
    /// The code is stored encrypted (secrets.rs) and decrypted here, for agents to read out.
    pub async fn active_passcode(&self, customer_id: i64) -> Result<Option<ActivePasscode>> {
        let row: Option<ActivePasscode> = on_db!(&self.db, p => sqlx::query_as::<_, ActivePasscode>(
            "SELECT COALESCE(code_enc, code) AS code, issued_at, valid_until FROM customer_passcodes
             WHERE customer_id = $1 AND used_at IS NULL AND replaced_at IS NULL")
            .bind(customer_id).fetch_optional(p).await)?;
        row.map(|mut a| {
            a.code = self
                .secrets()?
                .open(secrets::PASSCODE_PURPOSE, &a.code)?
                .into_inner();
            Ok(a)
        })
        .transpose()
    }

    /// Issues a LINE passcode valid until `valid_until_ms` (checked by the caller with
    /// desk_core::passcode::valid_until), replacing the customer's active one.
    /// [`StoreError::NotFound`] without the customer.
    pub async fn issue_passcode(
        &self,
        customer_id: i64,
        actor_id: Option<i64>,
        valid_until_ms: i64,
        now_ms: i64,
    ) -> Result<Passcode> {
        use rand::Rng;
        let secrets = self.secrets()?;
        let mut tx = self.begin().await?;
        let sql = format!("SELECT id FROM customers WHERE id = $1{}", for_update(&tx));
        let found: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(&sql)
            .bind(customer_id).fetch_optional(c).await)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE customer_passcodes SET replaced_at = $2
             WHERE customer_id = $1 AND used_at IS NULL AND replaced_at IS NULL")
            .bind(customer_id).bind(now_ms))?;
        let mut issued = None;
        // A code held by another customer's valid passcode is drawn again (at most a few
        // thousand of the million codes are ever active at once). Codes are found by their
        // keyed hash; the database never holds a live code in plain text.
        for _ in 0..50 {
            let code = passcode::generate(rand::thread_rng().gen_range(0..passcode::CODE_SPACE));
            let hash = secrets.passcode_hash(code.as_str());
            // An expired passcode still holding this code gives it up.
            exec_tx!(&mut tx, c => sqlx::query(
                "UPDATE customer_passcodes SET replaced_at = $2
                 WHERE code_hash = $1 AND used_at IS NULL AND replaced_at IS NULL AND valid_until <= $2")
                .bind(&hash).bind(now_ms))?;
            let inserted: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
                "INSERT INTO customer_passcodes
                     (customer_id, code, code_hash, code_enc, issued_at, valid_until, issued_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id")
                .bind(customer_id).bind(secrets::MASKED_CODE).bind(&hash)
                .bind(secrets.seal(secrets::PASSCODE_PURPOSE, code.as_str()))
                .bind(now_ms).bind(valid_until_ms).bind(actor_id)
                .fetch_optional(c).await)?;
            if inserted.is_some() {
                issued = Some(code);
                break;
            }
        }
        let Some(code) = issued else {
            return Err(StoreError::Conflict("no free passcode; try again".into()));
        };
        // The history says that a passcode was issued and until when, not which: a live
        // code is a secret.
        let h = History {
            customer_id,
            actor_id,
            action: "passcode_issued",
            valid_until: Some(valid_until_ms),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Runs a `passcode` job: checks the passcode attempts of `message_id`'s chat that are
    /// still pending, up to and including that message, in the order the LINE user sent
    /// them. Returns what came of each (empty when another job already checked them).
    pub async fn check_passcodes(&self, message_id: i64, now_ms: i64) -> Result<Vec<Attempt>> {
        self.check_passcodes_with(message_id, now_ms, None).await
    }

    /// [`Store::check_passcodes`], queueing `confirmation` — the desk's answer to the customer
    /// (LINE設定) — for each attempt that linked, in the same transaction (never lost, never
    /// twice). A passcode-shaped message's reply token waits until its attempt is recorded
    /// here (outbox), so the confirmation can ride it.
    pub async fn check_passcodes_with(
        &self,
        message_id: i64,
        now_ms: i64,
        confirmation: Option<crate::outbox::Confirmation<'_>>,
    ) -> Result<Vec<Attempt>> {
        let secrets = self.secrets()?;
        let mut tx = self.begin().await?;
        if let TxInner::Postgres(t) = &mut tx.inner {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PASSCODE_LOCK_KEY)
                .execute(&mut **t)
                .await?;
        }
        let target: Option<(i64, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT conversation_id, created_at FROM messages WHERE id = $1")
            .bind(message_id).fetch_optional(c).await)?;
        let Some((conversation_id, target_at)) = target else {
            return Ok(Vec::new());
        };
        // One checker per chat at a time, so attempts are judged in order.
        let sql = format!(
            "SELECT id FROM conversations WHERE id = $1{}",
            for_update(&tx)
        );
        on_tx!(&mut tx, c => sqlx::query_scalar::<_, i64>(&sql).bind(conversation_id).fetch_optional(c).await)?;
        let pending: Vec<(i64, Option<String>, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT m.id, m.text, m.created_at FROM messages m
             WHERE m.conversation_id = $1 AND m.direction = 'in'
               AND (m.created_at < $2 OR (m.created_at = $2 AND m.id <= $3))
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'passcode' AND j.target_id = m.id)
               AND NOT EXISTS (SELECT 1 FROM passcode_attempts a WHERE a.message_id = m.id)
             ORDER BY m.created_at, m.id")
            .bind(conversation_id).bind(target_at).bind(message_id).fetch_all(c).await)?;
        let mut attempts = Vec::new();
        for (id, text, sent_at) in pending {
            let Some(code) = text.as_deref().and_then(passcode::parse_candidate) else {
                continue;
            };
            let hash = secrets.passcode_hash(code.as_str());
            let attempt =
                check_one(&mut tx, conversation_id, id, &code, &hash, sent_at, now_ms).await?;
            if attempt.outcome == "linked"
                && let Some(c) = &confirmation
            {
                queue_confirmation(&mut tx, conversation_id, id, c, now_ms).await?;
            }
            attempts.push(attempt);
        }
        tx.commit().await?;
        Ok(attempts)
    }
}

/// Judges one attempt: throttle, desk-wide budget, look-up (by the code's keyed hash),
/// link or failure; records it.
async fn check_one(
    tx: &mut Tx,
    conversation_id: i64,
    message_id: i64,
    code: &Passcode,
    code_hash: &str,
    sent_at: i64,
    now_ms: i64,
) -> Result<Attempt> {
    let failures: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT at FROM passcode_attempts WHERE conversation_id = $1 AND outcome = 'failed' AND at > $2")
        .bind(conversation_id).bind(sent_at - passcode::THROTTLE_WINDOW_MS).fetch_all(c).await)?;
    let mut attempt = Attempt {
        message_id,
        code: code.to_string(),
        outcome: "failed",
        customer_id: None,
        budget_exhausted: false,
    };
    let desk_failures: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM passcode_attempts WHERE outcome = 'failed' AND at > $1")
        .bind(sent_at - passcode::THROTTLE_WINDOW_MS).fetch_one(c).await)?;
    if !passcode::attempt_allowed(&failures, sent_at) {
        attempt.outcome = "throttled";
    } else if !passcode::budget_allows(usize::try_from(desk_failures).unwrap_or(usize::MAX)) {
        attempt.outcome = "throttled";
        attempt.budget_exhausted = true;
        exec_tx!(tx, c => sqlx::query(
            "INSERT INTO counters (name, value, updated_at) VALUES ($1, 1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1, updated_at = excluded.updated_at")
            .bind(PASSCODE_BUDGET_REFUSED).bind(now_ms))?;
    } else {
        // Judged at the time the LINE user sent it: a passcode issued later does not count.
        let candidates: Vec<(i64, i64, i64, i64)> = on_tx!(tx, c => sqlx::query_as(
            "SELECT id, customer_id, issued_at, valid_until FROM customer_passcodes
             WHERE code_hash = $1 AND used_at IS NULL AND replaced_at IS NULL")
            .bind(code_hash).fetch_all(c).await)?;
        let valid = candidates.into_iter().find(|(_, _, issued, until)| {
            passcode::is_valid(*issued, *until, false, false, sent_at)
        });
        if let Some((passcode_id, customer_id, _, _)) = valid {
            let used = exec_tx!(tx, c => sqlx::query(
                "UPDATE customer_passcodes SET used_at = $2, used_by_conversation_id = $3
                 WHERE id = $1 AND used_at IS NULL AND replaced_at IS NULL")
                .bind(passcode_id).bind(now_ms).bind(conversation_id))?;
            if used == 1 {
                let out = link_in_tx(
                    tx,
                    conversation_id,
                    customer_id,
                    None,
                    "passcode",
                    Some(code.as_str()),
                    now_ms,
                )
                .await?;
                if !matches!(out, LinkOutcome::NoConversation | LinkOutcome::NoCustomer) {
                    system_line(tx, conversation_id, customer_id, now_ms).await?;
                    attempt.outcome = "linked";
                    attempt.customer_id = Some(customer_id);
                }
            }
        }
    }
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO passcode_attempts (message_id, conversation_id, code, outcome, customer_id, at, checked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(message_id).bind(conversation_id).bind(code.as_str()).bind(attempt.outcome)
        .bind(attempt.customer_id).bind(sent_at).bind(now_ms))?;
    Ok(attempt)
}

/// The desk's confirmation to the customer whose passcode linked them: an outgoing message
/// without an agent, riding the passcode message's reply token in Reply mode.
async fn queue_confirmation(
    tx: &mut Tx,
    conversation_id: i64,
    passcode_message_id: i64,
    c: &crate::outbox::Confirmation<'_>,
    now_ms: i64,
) -> Result<()> {
    let payload = json!({"event": "passcode_confirmation"}).to_string();
    let id: i64 = on_tx!(tx, t => sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, direction, type, text, payload, media_state, delivery, created_at)
         VALUES ($1, 'out', 'text', $2, $3, 'none', 'unsent', $4) RETURNING id")
        .bind(conversation_id).bind(c.text).bind(&payload).bind(now_ms).fetch_one(t).await)?;
    let reply_to = c.ride_reply_token.then_some(passcode_message_id);
    exec_tx!(tx, t => sqlx::query(
        "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at, reply_to)
         VALUES ($1, $2, 'queued', $3, $4, $4, $5)")
        .bind(id).bind(conversation_id).bind(c.retry_key).bind(now_ms).bind(reply_to))?;
    tx.announce([Change::Message {
        conversation_id,
        id,
    }]);
    Ok(())
}

/// `customer_linked`: the system line a passcode link adds to the chat. The stored text is
/// Japanese (for API readers); the UI renders it from `payload` in the viewer's language.
async fn system_line(
    tx: &mut Tx,
    conversation_id: i64,
    customer_id: i64,
    now_ms: i64,
) -> Result<()> {
    let name: String = on_tx!(tx, c => sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(customer_id).fetch_one(c).await)?;
    let code = format_code(customer_id);
    let text = format!("{code} {name} と関連付けました");
    let payload = json!({
        "event": "customer_linked",
        "via": "passcode",
        "customer_id": customer_id,
        "customer_code": code,
        "customer_name": name,
    })
    .to_string();
    let id: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, direction, type, text, payload, media_state, delivery, created_at)
         VALUES ($1, 'system', 'text', $2, $3, 'none', 'received', $4) RETURNING id")
        .bind(conversation_id).bind(&text).bind(&payload).bind(now_ms).fetch_one(c).await)?;
    tx.announce([Change::Message {
        conversation_id,
        id,
    }]);
    Ok(())
}

/// Links inside a transaction (the agent's button, or a passcode). Announces the chat's
/// change; the caller commits.
async fn link_in_tx(
    tx: &mut Tx,
    conversation_id: i64,
    customer_id: i64,
    actor_id: Option<i64>,
    via: &str,
    passcode: Option<&str>,
    now_ms: i64,
) -> Result<LinkOutcome> {
    let sql = format!(
        "SELECT customer_id, line_user_id FROM conversations WHERE id = $1{}",
        for_update(tx)
    );
    let row: Option<(Option<i64>, String)> = on_tx!(tx, c => sqlx::query_as(&sql)
        .bind(conversation_id).fetch_optional(c).await)?;
    let Some((previous, line_user_id)) = row else {
        return Ok(LinkOutcome::NoConversation);
    };
    let sql = format!("SELECT id FROM customers WHERE id = $1{}", for_update(tx));
    let exists: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(&sql)
        .bind(customer_id).fetch_optional(c).await)?;
    if exists.is_none() {
        return Ok(LinkOutcome::NoCustomer);
    }
    if previous == Some(customer_id) {
        if passcode.is_some() {
            // The passcode is used up all the same; the history says so.
            let h = History {
                customer_id,
                action: "linked",
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
    exec_tx!(tx, c => sqlx::query(
        "UPDATE conversations SET customer_id = $2, updated_at = $3 WHERE id = $1")
        .bind(conversation_id).bind(customer_id).bind(now_ms))?;
    if let Some(old) = previous {
        let h = History {
            customer_id: old,
            actor_id,
            action: "unlinked",
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
        action: "linked",
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
