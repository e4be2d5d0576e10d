//! Cross-site request forgery protection for the cookie-authenticated UI (`Sec-Fetch-Site`/Origin
//! check plus a token). One middleware over the whole router:
//!
//! For unsafe methods (POST, PUT, PATCH, DELETE):
//! - exempt: `POST /line` (LINE's webhook, signature-checked) and requests authenticated by
//!   a **valid** API token in `Authorization: Bearer` (a cross-site page cannot know one).
//!   A bearer header that is not a live token exempts nothing (issue 9, item 7: a junk
//!   bearer beside the cookie let every form post through): the request is checked like
//!   any browser request, and the JSON API refuses it anyway (a bearer header decides
//!   alone there). The token's user is kept in the request ([`TokenUser`]) for the
//!   extractors;
//! - (a) every other request must look same-origin: `Sec-Fetch-Site` absent or
//!   `same-origin`, and `Origin` absent or equal to the request's own origin (`Host`) or to
//!   the configured public URL. This also covers `POST /login`, which has no session yet.
//! - (b) a request that carries a live session cookie must also carry that session's CSRF
//!   token, in the header `X-CSRF-Token` (scripts send it: `assets/chats.js`) or in the form
//!   field `csrf_token` of an `application/x-www-form-urlencoded` body. Multipart posts must
//!   use the header. `POST /login` is the one session-free form and needs no token.
//!
//! A request with a cookie that is not (or no longer) a live session passes here and is
//! refused by the handler's extractor (401 or a redirect to the login page).
//! Failures answer 403: a small HTML page for plain form posts, JSON otherwise.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::i18n::{I18n, Locale};
use crate::page::{PageCtx, error_page};
use crate::session::{self, ResolvedSession, TokenUser, bearer_token};
use crate::{ApiError, AppState};

/// The header scripts send the token in.
pub const HEADER: &str = "x-csrf-token";
/// The form field plain HTML forms send the token in.
pub const FORM_FIELD: &str = "csrf_token";
/// Largest urlencoded body buffered to find the token (LINE texts are ≤ 5,000 characters).
const MAX_FORM_BYTES: usize = 1 << 20;

/// The middleware (`axum::middleware::from_fn_with_state(state, csrf::protect)`).
pub async fn protect(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !unsafe_method || req.uri().path() == "/line" {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    if let Some(token) = bearer_token(&parts.headers) {
        match st.store.user_by_api_token(token, st.now_ms()).await {
            Ok(Some(user)) => {
                parts.extensions.insert(TokenUser(user));
                return next.run(Request::from_parts(parts, body)).await;
            }
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let session = match session::cookie_token(&parts.headers) {
        Some(token) => match session::lookup(&st, token).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let locale = session
        .as_ref()
        .map(|s| s.locale())
        .unwrap_or_else(|| accept_locale(&parts.headers));
    if !same_origin(&parts.headers, &st.config.public_url) {
        tracing::warn!(path = %parts.uri.path(), "cross-site request refused");
        return reject(&parts.headers, locale, "cross-site request");
    }
    let mut body = body;
    if let Some(s) = &session
        && parts.uri.path() != "/login"
    {
        let header_token = parts.headers.get(HEADER).and_then(|v| v.to_str().ok());
        let ok = match header_token {
            Some(t) => constant_time_eq(t.as_bytes(), s.csrf_token.as_bytes()),
            None if is_urlencoded(&parts.headers) => {
                let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
                    Ok(b) => b,
                    Err(_) => {
                        return ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "too_large",
                            "form too large",
                        )
                        .into_response();
                    }
                };
                let ok = form_field(&bytes, FORM_FIELD)
                    .is_some_and(|t| constant_time_eq(t.as_bytes(), s.csrf_token.as_bytes()));
                body = Body::from(bytes);
                ok
            }
            None => false,
        };
        if !ok {
            tracing::warn!(path = %parts.uri.path(), user = %s.user.login, "missing or wrong CSRF token");
            return reject(&parts.headers, locale, "missing or wrong CSRF token");
        }
    }
    parts.extensions.insert(ResolvedSession(session));
    next.run(Request::from_parts(parts, body)).await
}

/// (a): `Sec-Fetch-Site` absent or `same-origin`; `Origin` absent, or this host, or the
/// public URL's origin.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if origin.eq_ignore_ascii_case(&origin_of(public_url)) {
        return true;
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_owned(),
    }
}

fn is_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-www-form-urlencoded")
                || v.starts_with("multipart/form-data")
        })
}

fn accept_locale(headers: &HeaderMap) -> Locale {
    Locale::from_accept_language(
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn reject(headers: &HeaderMap, locale: Locale, why: &str) -> Response {
    if is_form(headers) && !headers.contains_key(crate::page::FRAGMENT_HEADER) {
        let ctx = PageCtx::anonymous(locale, I18n::t(locale, "common-error-title"));
        error_page(StatusCode::FORBIDDEN, ctx, "common-error-csrf")
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!("{why}: {}", I18n::t(Locale::En, "common-error-csrf")),
        )
        .into_response()
    }
}

/// The first value of `name` in an urlencoded body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[..0]),
        };
        (url_decode(k)? == name).then(|| url_decode(v)).flatten()
    })
}

fn url_decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn form_fields() {
        assert_eq!(
            form_field(b"a=1&csrf_token=x%2By+z", "csrf_token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(form_field(b"csrf_token", "csrf_token").as_deref(), Some(""));
        assert_eq!(form_field(b"a=1", "csrf_token"), None);
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h, "https://desk.example"));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h, "https://desk.example"));
        h.insert(ORIGIN, HeaderValue::from_static("https://desk.example"));
        assert!(same_origin(&h, "https://desk.example/"));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h, "https://desk.example"));
        h.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, "https://desk.example"));
        h.remove(ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&h, "https://desk.example"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, "https://desk.example"));
    }
}
