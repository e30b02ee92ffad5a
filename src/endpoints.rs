//! The agent's own HTTP endpoints (**contract** paths): `/metrics`,
//! `/healthz` and `/readyz`; other routers (the status page) merge in.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{Exposed, MetricsRegistry};
use crate::schedule::Readiness;

/// What the endpoints read.
#[derive(Clone)]
pub(crate) struct Endpoints {
    /// Rendered on `/metrics`.
    pub(crate) metrics: Arc<MetricsRegistry>,
    /// Answered on `/readyz`.
    pub(crate) readiness: Readiness,
}

/// The router for `/metrics`, `/healthz` and `/readyz`.
pub(crate) fn router(endpoints: Endpoints) -> Router {
    let metrics = metrics_router(Arc::clone(&endpoints.metrics));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
        .merge(metrics)
}

/// The router for `/metrics` alone, serving `exposed`.
pub(crate) fn metrics_router<M: Exposed>(exposed: Arc<M>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<M>))
        .with_state(exposed)
}

/// Renders off the runtime's thread: an agent of a thousand targets exports
/// tens of megabytes, and its probes run on one thread that must not stall
/// (their timing, their cleanups' deadlines) while a scrape is rendered.
async fn metrics<M: Exposed>(State(exposed): State<Arc<M>>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || exposed.render())
        .await
        .unwrap_or_else(|err| format!("# rendering metrics failed: {err}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
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
pub(crate) async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// A running HTTP server.
pub(crate) struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serve `router` on `listener` in a task of its own until [`Server::stop`].
pub(crate) fn spawn(listener: TcpListener, router: Router) -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Server { stop, task }
}

impl Server {
    /// Stop accepting, finish the requests in flight for up to `grace`.
    pub(crate) async fn stop(self, grace: Duration) {
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!("HTTP server: {err}"),
            Ok(Err(err)) => tracing::warn!("HTTP server task: {err}"),
            Err(_) => task.abort(),
        }
    }
}
