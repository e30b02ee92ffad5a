//! The agent's own HTTP endpoints (**contract** paths): `/metrics`,
//! `/healthz` and `/readyz`; other routers (the status page) merge in.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::MetricsRegistry;
use crate::schedule::Readiness;

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    /// Rendered on `/metrics`.
    pub metrics: Arc<MetricsRegistry>,
    /// Answered on `/readyz`.
    pub readiness: Readiness,
}

/// The router for `/metrics`, `/healthz` and `/readyz`.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
}

async fn metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoints.metrics.render(),
    )
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    if endpoints.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first round of probe runs\n",
        )
    }
}

/// Bind `addr`, logging `listening on ADDR` once bound.
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// Serve `router` on `listener` until `shutdown` completes, then finish the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
