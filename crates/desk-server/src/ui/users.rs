//! 管理設定 > ユーザー (B1): admins list, add, rename, change the role of, disable/enable
//! and reset the password of users. Agents get 403. Plain forms with POST-redirect-GET;
//! the result message travels as `?msg=<known key>` (never as free text).
//!
//! Guard: an admin cannot change their own role or disable themselves, so the desk always
//! keeps at least one enabled admin (the one acting).

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use desk_store::StoreError;
use desk_store::users::{ApiTokenRow, Role, UserRow};
use serde::Deserialize;

use crate::AppState;
use crate::page::{PageAdmin, PageCtx, PageError, PageResult, render, render_status};
use crate::time::short;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list).post(add))
        .route("/admin/users/{id}", get(edit).post(save))
        .route("/admin/users/{id}/disable", post(disable))
        .route("/admin/users/{id}/enable", post(enable))
        .route("/admin/users/{id}/password", post(reset_password))
        .route(
            "/admin/users/{id}/tokens/{token_id}/revoke",
            post(revoke_token),
        )
}

pub const MIN_PASSWORD_CHARS: usize = 8;
const MAX_LOGIN_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 100;

/// A user as the pages show them (never the password hash).
struct UserView {
    id: i64,
    login: String,
    name: String,
    role: &'static str,
    is_admin: bool,
    enabled: bool,
    is_self: bool,
}

impl UserView {
    fn new(u: &UserRow, me: i64) -> UserView {
        UserView {
            id: u.id,
            login: u.login.clone(),
            name: u.name.clone(),
            role: u.role().as_str(),
            is_admin: u.is_admin(),
            enabled: !u.disabled,
            is_self: u.id == me,
        }
    }
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    msg: Option<String>,
    id: Option<i64>,
}

/// The add form's values, shown again after an error (without the password).
#[derive(Deserialize, Default)]
struct AddForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    ctx: PageCtx,
    users: Vec<UserView>,
    ok: Option<String>,
    error: Option<&'static str>,
    form_login: String,
    form_name: String,
    form_role: &'static str,
}

#[derive(Template)]
#[template(path = "users_edit.html")]
struct EditPage {
    ctx: PageCtx,
    user: UserView,
    heading: String,
    ok: Option<&'static str>,
    error: Option<&'static str>,
    tokens: Vec<TokenView>,
}

/// An API token as the user's page lists it (never the token itself).
struct TokenView {
    id: i64,
    created: String,
    expires: String,
    last_used: String,
    /// Locale key of its state.
    state: &'static str,
    live: bool,
}

impl TokenView {
    fn new(t: &ApiTokenRow, now_ms: i64, tz: chrono_tz::Tz) -> TokenView {
        let when = |ms: Option<i64>| ms.map(|t| short(t, tz)).unwrap_or_else(|| "—".into());
        let state = if t.revoked_at.is_some() {
            "sec-tokens-state-revoked"
        } else if !t.is_live(now_ms) {
            "sec-tokens-state-expired"
        } else {
            "sec-tokens-state-live"
        };
        TokenView {
            id: t.id,
            created: short(t.created_at, tz),
            expires: when(t.expires_at),
            last_used: when(t.last_used_at),
            state,
            live: t.is_live(now_ms),
        }
    }
}

fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.chars().count() <= MAX_LOGIN_CHARS
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

fn clean_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control))
    .then(|| name.to_owned())
}

async fn hash_password(st: &AppState, password: String) -> String {
    st.passwords.hash_for_admin(password).await
}

async fn list_page(
    st: &AppState,
    admin: &PageAdmin,
    ok: Option<String>,
    error: Option<&'static str>,
    form: &AddForm,
) -> Result<UsersPage, PageError> {
    let me = admin.user().id;
    let users = st.store.list_users().await?;
    Ok(UsersPage {
        ctx: admin.ctx_t("users-title"),
        users: users.iter().map(|u| UserView::new(u, me)).collect(),
        ok,
        error,
        form_login: form.login.trim().to_owned(),
        form_name: form.name.trim().to_owned(),
        form_role: Role::parse(&form.role).unwrap_or(Role::Agent).as_str(),
    })
}

async fn list(
    State(st): State<AppState>,
    admin: PageAdmin,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let ok = match (q.msg.as_deref(), q.id) {
        (Some("created"), Some(id)) => st.store.user_by_id(id).await?.map(|u| {
            admin
                .ctx_t("users-title")
                .tf("users-msg-created", [("login", u.login.as_str())])
        }),
        _ => None,
    };
    let page = list_page(&st, &admin, ok, None, &AddForm::default()).await?;
    Ok(render(&page))
}

async fn add(
    State(st): State<AppState>,
    admin: PageAdmin,
    Form(form): Form<AddForm>,
) -> PageResult {
    let login = form.login.trim();
    let role = Role::parse(&form.role);
    let error = if !valid_login(login) {
        Some("users-error-login_format")
    } else if clean_name(&form.name).is_none() {
        Some("users-error-name_required")
    } else if role.is_none() {
        Some("users-error-role")
    } else if form.password.chars().count() < MIN_PASSWORD_CHARS {
        Some("users-error-password_short")
    } else {
        None
    };
    if let Some(key) = error {
        let page = list_page(&st, &admin, None, Some(key), &form).await?;
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let (name, role) = (
        clean_name(&form.name).unwrap_or_default(),
        role.unwrap_or(Role::Agent),
    );
    let hash = hash_password(&st, form.password.clone()).await;
    match st
        .store
        .create_user(login, &name, role, &hash, st.now_ms())
        .await
    {
        Ok(id) => {
            tracing::info!(admin = %admin.user().login, login, "user added");
            Ok(Redirect::to(&format!("/admin/users?msg=created&id={id}")).into_response())
        }
        Err(StoreError::Conflict(_)) => {
            let page = list_page(&st, &admin, None, Some("users-error-login_taken"), &form).await?;
            Ok(render_status(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// The target user, or the 404 page.
async fn target(st: &AppState, id: i64) -> Result<UserRow, PageError> {
    st.store
        .user_by_id(id)
        .await?
        .ok_or(PageError::NotFound("users-error-not_found"))
}

async fn edit_page(
    st: &AppState,
    admin: &PageAdmin,
    user: &UserRow,
    ok: Option<&'static str>,
    error: Option<&'static str>,
) -> Result<EditPage, PageError> {
    let ctx = admin.ctx_t("users-edit-title");
    let heading = ctx.tf("users-edit-heading", [("login", user.login.as_str())]);
    let now = st.now_ms();
    let tokens = st
        .store
        .list_api_tokens(Some(user.id))
        .await?
        .iter()
        .map(|t| TokenView::new(t, now, st.config.time_zone))
        .collect();
    Ok(EditPage {
        ctx,
        user: UserView::new(user, admin.user().id),
        heading,
        ok,
        error,
        tokens,
    })
}

fn msg_key(msg: Option<&str>) -> Option<&'static str> {
    match msg? {
        "saved" => Some("users-msg-saved"),
        "disabled" => Some("users-msg-disabled"),
        "enabled" => Some("users-msg-enabled"),
        "password_reset" => Some("users-msg-password_reset"),
        "token_revoked" => Some("sec-tokens-revoked"),
        _ => None,
    }
}

async fn edit(
    State(st): State<AppState>,
    admin: PageAdmin,
    Path(id): Path<i64>,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let user = target(&st, id).await?;
    let page = edit_page(&st, &admin, &user, msg_key(q.msg.as_deref()), None).await?;
    Ok(render(&page))
}

fn back(id: i64, msg: &str) -> PageResult {
    Ok(Redirect::to(&format!("/admin/users/{id}?msg={msg}")).into_response())
}

/// The edit page again, with a form's error (422).
async fn form_error(
    st: &AppState,
    admin: &PageAdmin,
    user: &UserRow,
    key: &'static str,
) -> PageResult {
    let page = edit_page(st, admin, user, None, Some(key)).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Deserialize)]
struct SaveForm {
    #[serde(default)]
    name: String,
    /// Absent when editing oneself (the role select is disabled).
    role: Option<String>,
}

/// Rename and change the role.
async fn save(
    State(st): State<AppState>,
    admin: PageAdmin,
    Path(id): Path<i64>,
    Form(form): Form<SaveForm>,
) -> PageResult {
    let user = target(&st, id).await?;
    let Some(name) = clean_name(&form.name) else {
        return form_error(&st, &admin, &user, "users-error-name_required").await;
    };
    let role = match form.role.as_deref() {
        None => user.role(),
        Some(r) => match Role::parse(r) {
            Some(r) => r,
            None => return form_error(&st, &admin, &user, "users-error-role").await,
        },
    };
    if role != user.role() && user.id == admin.user().id {
        return form_error(&st, &admin, &user, "users-error-self").await;
    }
    st.store.set_user_name(id, &name).await?;
    if role != user.role() {
        st.store.set_user_role(id, role).await?;
    }
    tracing::info!(admin = %admin.user().login, login = %user.login, "user saved");
    back(id, "saved")
}

async fn set_disabled(st: AppState, admin: PageAdmin, id: i64, disabled: bool) -> PageResult {
    let user = target(&st, id).await?;
    if user.id == admin.user().id {
        return form_error(&st, &admin, &user, "users-error-self").await;
    }
    st.store
        .set_user_disabled_at(id, disabled, st.now_ms())
        .await?;
    tracing::info!(admin = %admin.user().login, login = %user.login, disabled, "user state changed");
    back(id, if disabled { "disabled" } else { "enabled" })
}

async fn disable(State(st): State<AppState>, admin: PageAdmin, Path(id): Path<i64>) -> PageResult {
    set_disabled(st, admin, id, true).await
}

async fn enable(State(st): State<AppState>, admin: PageAdmin, Path(id): Path<i64>) -> PageResult {
    set_disabled(st, admin, id, false).await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    new_password: String,
}

/// Sets a new password, ends the user's other sessions and revokes their API tokens.
async fn reset_password(
    State(st): State<AppState>,
    admin: PageAdmin,
    Path(id): Path<i64>,
    Form(form): Form<PasswordForm>,
) -> PageResult {
    let user = target(&st, id).await?;
    if form.new_password.chars().count() < MIN_PASSWORD_CHARS {
        return form_error(&st, &admin, &user, "users-error-password_short").await;
    }
    let hash = hash_password(&st, form.new_password).await;
    st.store
        .reset_password(id, &hash, Some(admin.session.id), st.now_ms())
        .await?;
    tracing::info!(admin = %admin.user().login, login = %user.login, "password reset");
    back(id, "password_reset")
}

/// Revokes one of the user's API tokens (it stops working at once, on every instance).
async fn revoke_token(
    State(st): State<AppState>,
    admin: PageAdmin,
    Path((id, token_id)): Path<(i64, i64)>,
) -> PageResult {
    let user = target(&st, id).await?;
    let tokens = st.store.list_api_tokens(Some(user.id)).await?;
    if !tokens.iter().any(|t| t.id == token_id) {
        return Err(PageError::NotFound("sec-tokens-not_found"));
    }
    st.store.revoke_api_token(token_id, st.now_ms()).await?;
    tracing::info!(admin = %admin.user().login, login = %user.login, token = token_id, "API token revoked");
    back(id, "token_revoked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_and_names() {
        assert!(valid_login("sato"));
        assert!(valid_login("sato.m-2@center_1"));
        assert!(!valid_login(""));
        assert!(!valid_login("sato misaki"));
        assert!(!valid_login("佐藤"));
        assert!(!valid_login(&"a".repeat(65)));
        assert_eq!(clean_name("  佐藤 美咲 ").as_deref(), Some("佐藤 美咲"));
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name("a\u{7}b"), None);
    }
}
