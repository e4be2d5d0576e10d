//! `GET/POST /login`, `POST /logout` and `POST /me/locale` (the language switch).
//!
//! A wrong login ID, a wrong password and a disabled user all get the same message and a
//! 401, and take the same time and memory (a missing user is checked against a dummy hash
//! through the same bounded line, `passwords.rs`), so the page does not tell which login
//! IDs exist. In order (issue 9, items 2–5):
//!
//! 1. a place in the password line, or 503 "busy" at once (bounded memory);
//! 2. the throttle (desk_core::login_throttle, kept in the database): the attempt is
//!    reserved before the password is checked, or refused with 429 and "wait";
//! 3. the password check, whose outcome is recorded.

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, Query, State};
use axum::http::header::{ACCEPT_LANGUAGE, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{percent_encode, safe_next};
use crate::client_addr::client_key;
use crate::i18n::{I18n, Locale};
use crate::page::{PageCtx, PageError, PageResult, PageUser, render_status};
use crate::session;
use desk_core::login_throttle::Scope;
use desk_store::login_attempts::LoginReservation;

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
        ctx: PageCtx::anonymous(locale, I18n::t(locale, "login-title")),
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
        p.info = Some(I18n::t(locale, "login-logged_out"));
    } else if !next.is_empty() {
        p.info = Some(I18n::t(locale, "login-please_log_in"));
    }
    render_status(StatusCode::OK, &p)
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let locale = page_locale(form.lang.as_deref(), &headers);
    let next = clean_next(form.next.as_deref());
    let login = form.login.trim().to_owned();
    let fail = |status: StatusCode, message: String| {
        let mut p = page(locale, login.clone(), next.clone());
        p.error = Some(message);
        render_status(status, &p)
    };

    // 1. Bounded work: a place in line for the password check, or "busy" before any work.
    let Some(ticket) = st.passwords.enter() else {
        tracing::warn!("login refused: password checks are saturated");
        let mut resp = fail(
            StatusCode::SERVICE_UNAVAILABLE,
            I18n::t(locale, "sec-login-busy").to_owned(),
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
        return Ok(resp);
    };

    // 2. The throttle, reserving this attempt before the (slow) check.
    let peer = connect.map(|Extension(ConnectInfo(addr))| addr);
    let client = client_key(&headers, peer, &st.config.trusted_proxies);
    let limits = st.config.login_limits;
    let reservation = match st
        .store
        .reserve_login(&login, &client, &limits, st.now_ms())
        .await?
    {
        LoginReservation::Reserved(r) => r,
        LoginReservation::Locked { scope, until_ms } => {
            let wait_ms = (until_ms - st.now_ms()).max(1);
            let minutes = (wait_ms as u64).div_ceil(60_000).max(1).to_string();
            let key = if scope == Scope::Pair {
                "login-throttled"
            } else {
                "sec-login-throttled_wide"
            };
            tracing::info!(login = %login, client = %client, ?scope, "login refused: throttled");
            let mut resp = fail(
                StatusCode::TOO_MANY_REQUESTS,
                I18n::tf(locale, key, &[("minutes", &minutes)]),
            );
            let secs = (wait_ms + 999) / 1000;
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
            return Ok(resp);
        }
    };

    // 3. The check (unknown and disabled users against a dummy hash: same time and memory).
    let user = st.store.user_by_login(&login).await?;
    let hash = match &user {
        Some(u) if !u.disabled => Some(u.password_hash.clone()),
        _ => None,
    };
    let verified = ticket.verify(form.password, hash).await;
    let user = user.filter(|_| verified);
    st.store
        .finish_login_with(reservation, user.is_some(), &limits, st.now_ms())
        .await?;
    let Some(user) = user else {
        tracing::info!(login = %login, client = %client, "login failed");
        return Ok(fail(
            StatusCode::UNAUTHORIZED,
            I18n::t(locale, "login-failed").to_owned(),
        ));
    };
    let (_session, token) = session::start(&st, user).await?;
    tracing::info!(login = %login, client = %client, "logged in");
    let target = if next.is_empty() {
        "/chats".to_owned()
    } else {
        next
    };
    Ok((
        [(SET_COOKIE, session::set_cookie(&st.config, &token))],
        Redirect::to(&target),
    )
        .into_response())
}

async fn logout(State(st): State<AppState>, headers: HeaderMap) -> PageResult {
    if let Some(token) = session::cookie_token(&headers) {
        st.store.delete_session(token).await?;
    }
    Ok((
        [(SET_COOKIE, session::clear_cookie(&st.config))],
        Redirect::to("/login?bye=1"),
    )
        .into_response())
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
) -> PageResult {
    let locale = Locale::parse(&form.locale).ok_or(PageError::BadRequest("common-error-locale"))?;
    st.store
        .set_user_locale(page.user().id, locale.as_str())
        .await?;
    Ok(Redirect::to(&safe_next(form.next.as_deref())).into_response())
}
