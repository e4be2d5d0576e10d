//! `/api/docs`: the JSON API's OpenAPI document (`/api/v1/openapi.json`) as a browsable
//! page — Swagger UI, vendored into the binary (assets/README.md), started by
//! `assets/api-docs.js`. Any logged-in user may read it (the API takes any user's token);
//! its "Try it out" calls run with the session, as the UI's own scripts do.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::page::{PageCtx, PageUser, render};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/docs", get(page))
}

#[derive(askama::Template)]
#[template(path = "api_docs.html")]
struct ApiDocsPage {
    ctx: PageCtx,
}

async fn page(user: PageUser) -> Response {
    let mut resp = render(&ApiDocsPage {
        ctx: user.ctx_t("api_docs-title"),
    });
    // The desk's policy, but Swagger UI's stylesheet draws its icons as `data:` SVG images.
    let csp = crate::security::PAGE_CSP.replacen("img-src 'self'", "img-src 'self' data:", 1);
    resp.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("the CSP is ASCII"),
    );
    resp
}
