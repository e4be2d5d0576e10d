//! `GET/POST /login`, `POST /logout` and `POST /me/locale` (the language switch).
//!
//! A wrong login ID, a wrong password and a disabled user all get the same message and a
//! 401, and take the same time (a missing user is checked against a dummy hash), so the
//! page does not tell which login IDs exist. Repeated failures are throttled per login ID
//! (`session::LoginThrottle`: 5 in 5 minutes → 429 and "wait").

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::header::{ACCEPT_LANGUAGE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{PageCtx, render_status};
use crate::auth::{PageUser, percent_encode, safe_next};
use crate::i18n::{I18n, Locale};
use crate::session::{self, LoginThrottle};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/me/locale", post(set_locale))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: PageCtx,
    login: String,
    /// Where to go after login ("" for the default).
    next: String,
    error: Option<String>,
    info: Option<&'static str>,
    /// The language switch link.
    switch_href: String,
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
    /// Set after logout.
    bye: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    lang: Option<String>,
}

/// The login page's language: `?lang=` (the switch link), else the browser's preference.
fn page_locale(lang: Option<&str>, headers: &HeaderMap) -> Locale {
    lang.and_then(Locale::parse).unwrap_or_else(|| {
        Locale::from_accept_language(headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
    })
}

fn clean_next(next: Option<&str>) -> String {
    match next {
        Some(n) if !n.is_empty() && safe_next(Some(n)) == n => n.to_owned(),
        _ => String::new(),
    }
}

fn page(locale: Locale, login: String, next: String) -> LoginPage {
    let other = locale.other();
    let switch_href = if next.is_empty() {
        format!("/login?lang={other}")
    } else {
        format!("/login?lang={other}&next={}", percent_encode(&next))
    };
    LoginPage {
        ctx: PageCtx::anonymous(locale, I18n::t(locale, "login.title")),
        login,
        next,
        error: None,
        info: None,
        switch_href,
    }
}

async fn login_page(
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
    current: Result<PageUser, Response>,
) -> Response {
    if current.is_ok() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let locale = page_locale(q.lang.as_deref(), &headers);
    let next = clean_next(q.next.as_deref());
    let mut p = page(locale, String::new(), next.clone());
    if q.bye.is_some() {
        p.info = Some(I18n::t(locale, "login.logged_out"));
    } else if !next.is_empty() {
        p.info = Some(I18n::t(locale, "login.please_log_in"));
    }
    render_status(StatusCode::OK, &p)
}

/// A hash to verify against when the login ID is unknown, so that answer takes as long as
/// a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password_auth::generate_hash("linedesk: no such user"));

async fn login(
    State(st): State<AppState>,
    Extension(throttle): Extension<LoginThrottle>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let locale = page_locale(form.lang.as_deref(), &headers);
    let next = clean_next(form.next.as_deref());
    let login = form.login.trim().to_owned();
    let fail = |status: StatusCode, message: String| {
        let mut p = page(locale, login.clone(), next.clone());
        p.error = Some(message);
        render_status(status, &p)
    };

    if let Some(wait) = throttle.locked_for(&login) {
        let minutes = wait.as_secs().div_ceil(60).max(1).to_string();
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            I18n::tf(locale, "login.throttled", &[("minutes", &minutes)]),
        );
    }

    let user = match st.store.user_by_login(&login).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let hash = match &user {
        Some(u) if !u.disabled => Some(u.password_hash.clone()),
        _ => None,
    };
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || match hash {
        Some(h) => password_auth::verify_password(&password, &h).is_ok(),
        None => {
            let _ = password_auth::verify_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false);

    let Some(user) = user.filter(|_| verified) else {
        throttle.record_failure(&login);
        tracing::info!(login = %login, "login failed");
        return fail(
            StatusCode::UNAUTHORIZED,
            I18n::t(locale, "login.failed").to_owned(),
        );
    };
    throttle.record_success(&login);
    let (_session, token) = match session::start(&st, user).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    tracing::info!(login = %login, "logged in");
    let target = if next.is_empty() {
        "/chats".to_owned()
    } else {
        next
    };
    (
        [(SET_COOKIE, session::set_cookie(&st.config, &token))],
        Redirect::to(&target),
    )
        .into_response()
}

async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session::cookie_token(&headers)
        && let Err(e) = st.store.delete_session(token).await
    {
        return ApiError::from(e).into_response();
    }
    (
        [(SET_COOKIE, session::clear_cookie(&st.config))],
        Redirect::to("/login?bye=1"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LocaleForm {
    locale: String,
    next: Option<String>,
}

/// The language switch of logged-in users: stores `users.locale`, back to the page.
async fn set_locale(
    State(st): State<AppState>,
    page: PageUser,
    Form(form): Form<LocaleForm>,
) -> Response {
    let Some(locale) = Locale::parse(&form.locale) else {
        return ApiError::bad_request("locale must be ja or en").into_response();
    };
    if let Err(e) = st
        .store
        .set_user_locale(page.user().id, locale.as_str())
        .await
    {
        return ApiError::from(e).into_response();
    }
    Redirect::to(&safe_next(form.next.as_deref())).into_response()
}
