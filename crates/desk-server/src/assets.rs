//! Browser assets embedded in the binary (the desk's CSS and JS, and Swagger UI for the API
//! documentation page — the one third-party script, vendored from npm),
//! served at `/assets/{name}`. Pages link them with [`url`], which appends a content hash
//! (`?v=…`), so the year-long `immutable` cache is safe: a new build means new URLs.
//! See `assets/README.md` for where the vendored files come from.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "api-docs.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/api-docs.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "chats.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/chats.css"),
    },
    Asset {
        name: "chats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/chats.js"),
    },
    Asset {
        name: "customers.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/customers.css"),
    },
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/swagger-ui.css"),
    },
];

/// Short content hashes, computed once.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(a.body);
            digest[..6].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
});

fn find(name: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.name == name)
}

/// The URL of an embedded asset, with its content hash: `/assets/app.css?v=1a2b3c4d5e6f`.
/// Panics on an unknown name in debug builds (a template typo); release builds link it
/// unversioned.
pub fn url(name: &str) -> String {
    match find(name) {
        Some((i, _)) => format!("/assets/{name}?v={}", VERSIONS[i]),
        None => {
            debug_assert!(false, "unknown asset {name}");
            format!("/assets/{name}")
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(serve))
}

async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some((i, asset)) = find(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", VERSIONS[i]);
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let etag_value = HeaderValue::from_str(&etag).expect("hex");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, etag_value),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// Colours are named once, as custom properties in app.css's `:root` (a theme changes
    /// there); the style sheets only use them. A colour literal anywhere else fails.
    #[test]
    fn colours_are_only_defined_in_root() {
        let is_colour = |w: &str| {
            w.starts_with("rgb")
                || (w.starts_with('#')
                    && matches!(w.len(), 4 | 5 | 7 | 9)
                    && w[1..].chars().all(|c| c.is_ascii_hexdigit()))
        };
        for (name, css) in [
            ("app.css", include_str!("../assets/app.css")),
            ("chats.css", include_str!("../assets/chats.css")),
            ("customers.css", include_str!("../assets/customers.css")),
        ] {
            let outside_root = match css.find(":root {") {
                Some(start) => {
                    let end = start + css[start..].find('}').expect("closed :root");
                    format!("{}{}", &css[..start], &css[end..])
                }
                None => css.to_owned(),
            };
            let found: Vec<&str> = outside_root
                .split(|c: char| c.is_whitespace() || matches!(c, ';' | ':' | ',' | ')'))
                .map(|w| w.trim_start_matches('('))
                .filter(|w| is_colour(w))
                .collect();
            assert!(found.is_empty(), "{name} writes colours: {found:?}");
        }
    }
}
