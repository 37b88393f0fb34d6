//! The viewer: hand-written static files (a page, a style sheet, six
//! scripts) compiled into the binary,
//! and the JSON API under `/api/*` they read (besides the X-Ray API on the
//! same port).

pub mod api;
pub mod list;
pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::App;

/// The static files: path, content type, text. The scripts are loaded in
/// this order (see `ui/index.html`) and share their globals.
const ASSETS: [(&str, &str, &str); 8] = [
    ("/", HTML, include_str!("ui/index.html")),
    ("/style.css", CSS, include_str!("ui/style.css")),
    ("/core.js", JS, include_str!("ui/core.js")),
    ("/list.js", JS, include_str!("ui/list.js")),
    ("/timeline.js", JS, include_str!("ui/timeline.js")),
    ("/map.js", JS, include_str!("ui/map.js")),
    ("/panels.js", JS, include_str!("ui/panels.js")),
    ("/app.js", JS, include_str!("ui/app.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The answer to a GET of anything else.
pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no such endpoint"})),
    )
        .into_response()
}

/// The static files and `/api/*`.
pub(crate) fn routes() -> Router<Arc<App>> {
    let mut r = api::routes();
    for (path, content_type, body) in ASSETS {
        r = r.route(path, get(move || async move { asset(content_type, body) }));
    }
    r
}
