//! The admin API: `GET`/`PUT`/`DELETE /admin/faults` and `GET /admin/stats`,
//! protected by the config's `admin_token` when one is set (the config refuses
//! to start without one unless it listens on loopback).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

use super::faults::Fault;
use super::shared::Shared;
use super::state::ModelStats;
use super::timer::TimerStats;
use super::wire::{ApiError, ApiResult, bearer_token, parse_json, same_secret};
use crate::protocol::route;

/// `GET /admin/stats` answer.
#[derive(Debug, serde::Serialize)]
pub(super) struct Stats {
    /// Sizes of the model.
    #[serde(flatten)]
    pub(crate) model: ModelStats,
    /// Pushes waiting on the timer, and those refused because it was full.
    #[serde(flatten)]
    pub(crate) timer: TimerStats,
    /// How often each fault fired, by fault name, since start.
    pub(crate) faults_fired: BTreeMap<String, u64>,
}

/// The admin routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            route::ADMIN_FAULTS,
            get(list_faults).put(replace_faults).delete(clear_faults),
        )
        .route(route::ADMIN_STATS, get(stats))
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    match &shared.config.admin_token {
        None => Ok(()),
        Some(expected)
            if bearer_token(headers).is_some_and(|given| same_secret(given, expected)) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin API needs `Authorization: Bearer ADMIN_TOKEN`",
        )),
    }
}

async fn list_faults(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    authorize(&shared, &headers)?;
    Ok(axum::Json(shared.faults.list()).into_response())
}

async fn replace_faults(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    authorize(&shared, &headers)?;
    let faults: Vec<Fault> = parse_json(body)?;
    shared.faults.replace(faults, Instant::now());
    Ok(axum::Json(shared.faults.list()).into_response())
}

async fn clear_faults(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    authorize(&shared, &headers)?;
    shared.faults.replace(Vec::new(), Instant::now());
    tracing::info!("all faults removed");
    Ok(axum::Json(Vec::<Fault>::new()).into_response())
}

async fn stats(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    authorize(&shared, &headers)?;
    let stats = Stats {
        model: shared.model().stats(),
        timer: shared.timer.stats(),
        faults_fired: shared.faults.fired_counts(),
    };
    Ok(axum::Json(stats).into_response())
}
