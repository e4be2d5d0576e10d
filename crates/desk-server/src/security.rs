//! Headers every response gets, and the `Host` check (issue 9, items 13 and 14). Both are
//! middleware around the whole router, so 404s, CSRF refusals and error pages get them too.
//!
//! - **Every response**: `X-Content-Type-Options: nosniff` (a JSON body or an error text is
//!   never sniffed into HTML), `Cache-Control: no-store` unless the handler chose its own
//!   (assets are immutable, media private), `X-Frame-Options: DENY`,
//!   `Referrer-Policy: same-origin`, and `Strict-Transport-Security` when the public URL is
//!   `https://`.
//! - **Pages** (and every other response without a policy of its own): the strict
//!   [`PAGE_CSP`] — scripts and styles only from the desk's own files (no inline script, no
//!   `eval`), images from the desk, `blob:` (the chosen file's preview) and
//!   [`PAGE_IMAGE_HOSTS`]. Media responses carry their own sandboxing policy
//!   (`media_files.rs`).
//! - **Host**: with `--public-url` given, a request whose `Host` is neither the public URL's
//!   host nor a loopback address is refused with 421 — a page on another name that DNS
//!   points at the desk (DNS rebinding) cannot talk to it. `/healthz` and `/metrics` answer
//!   whatever the `Host`, since load balancers and scrapers name instances by address.

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Image hosts other than the desk that pages may show images from: LINE's public sticker
/// images (a sticker message is shown as its picture).
pub const PAGE_IMAGE_HOSTS: &[&str] = &["https://stickershop.line-scdn.net"];

/// The Content-Security-Policy of every page.
pub static PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: {}; \
         media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        PAGE_IMAGE_HOSTS.join(" ")
    )
});

/// [`PAGE_CSP`] as a header value, built once.
static PAGE_CSP_VALUE: LazyLock<HeaderValue> =
    LazyLock::new(|| HeaderValue::from_str(&PAGE_CSP).expect("the CSP is ASCII"));

/// The middleware adding the headers above (outermost layer of the router).
pub async fn headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_headers(
        resp.headers_mut(),
        st.config.public_url.starts_with("https://"),
    );
    resp
}

/// The headers above, on a response's headers (those the handler set itself stay); `https`:
/// the public URL is `https://`. Also used directly by `/line`, which is served outside the
/// middleware (webhook.rs).
pub fn add_headers(h: &mut HeaderMap, https: bool) {
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert_with(|| PAGE_CSP_VALUE.clone());
    if https {
        h.entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=31536000"));
    }
}

/// Paths that answer whatever the `Host` (probes and scrapers address instances directly).
const ANY_HOST_PATHS: &[&str] = &["/healthz", "/metrics"];

/// The middleware refusing requests for other host names when the public URL was given.
pub async fn check_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !st.config.check_host || ANY_HOST_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match host_refused(&st.config, req.headers(), req.uri()) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// The 421 page when the request's host is not allowed (see [`check_host`]); `None` when it
/// is. With the security headers, so `/line` (served outside the middleware) can use it.
pub fn host_refused(config: &crate::Config, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    if host_of(headers, uri).is_some_and(|h| host_allowed(&h, &config.public_url)) {
        return None;
    }
    tracing::debug!(host = ?headers.get(header::HOST), "request for another host refused");
    let locale = crate::i18n::Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let ctx =
        crate::page::PageCtx::anonymous(locale, crate::i18n::I18n::t(locale, "common-error-title"));
    let mut resp =
        crate::page::error_page(StatusCode::MISDIRECTED_REQUEST, ctx, "sec-host-refused");
    add_headers(
        resp.headers_mut(),
        config.public_url.starts_with("https://"),
    );
    Some(resp)
}

/// The request's host name (without port): the `Host` header, or the URI's authority
/// (HTTP/2).
fn host_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let raw = match headers.get(header::HOST) {
        Some(h) => h.to_str().ok()?.to_owned(),
        None => uri.authority()?.as_str().to_owned(),
    };
    Some(hostname(&raw))
}

/// `host[:port]` → `host`, lower case, without a trailing dot; IPv6 keeps its brackets.
fn hostname(authority: &str) -> String {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if authority.starts_with('[') {
        authority
            .split_inclusive(']')
            .next()
            .unwrap_or(authority)
            .to_owned()
    } else {
        authority.split(':').next().unwrap_or(authority).to_owned()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The public URL's host, or a loopback name (`localhost`, `127.x.x.x`, `[::1]`): an
/// attacker's page reaches the desk only under the attacker's own name, never these.
pub fn host_allowed(host: &str, public_url: &str) -> bool {
    let public = public_url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(public_url);
    let public = hostname(public.split('/').next().unwrap_or(public));
    if host == public || host == "localhost" || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let public = "https://Desk.Example.com/";
        for ok in [
            "desk.example.com",
            "DESK.example.com:443",
            "desk.example.com.",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
        ] {
            assert!(host_allowed(&hostname(ok), public), "{ok}");
        }
        for bad in [
            "evil.example",
            "desk.example.com.evil.example",
            "10.0.0.12:8080",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!host_allowed(&hostname(bad), public), "{bad}");
        }
        assert!(host_allowed(
            "desk.example.com",
            "http://desk.example.com:8443/x"
        ));
    }

    #[test]
    fn the_csp_allows_sticker_images_and_no_inline_script() {
        assert!(PAGE_CSP.contains("img-src 'self' blob: https://stickershop.line-scdn.net;"));
        assert!(PAGE_CSP.contains("script-src 'self';"));
        assert!(!PAGE_CSP.contains("unsafe"));
    }
}
