//! The HTTP side of the status page: `/` (HTML) and `/api/status` (JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;

use super::{StatusBoard, page};

/// Headers on every status route (the agent's and the fleet page's): never
/// cached; the page may load nothing but its own inline style (no script
/// runs even if escaping were ever missed).
pub const HEADERS: [(axum::http::HeaderName, &str); 3] = [
    (CACHE_CONTROL, "no-store"),
    (
        CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'",
    ),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// Routes `/` (the status page) and `/api/status` (the same data as JSON)
/// over `board`; merge it into the agent's HTTP server.
pub fn router(board: Arc<StatusBoard>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/api/status", get(status_json))
        .with_state(board)
}

async fn status_page(State(board): State<Arc<StatusBoard>>) -> impl IntoResponse {
    (HEADERS, Html(page::render(&board.snapshot())))
}

async fn status_json(State(board): State<Arc<StatusBoard>>) -> impl IntoResponse {
    (HEADERS, Json(board.snapshot()))
}
