//! What stands in front of every operation: authentication, and the fault gate
//! that applies the effects all operations share (`delay`, `timeout`, `error`,
//! `disconnect`) and hands the rest to the operation.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use super::delivery::Kill;
use super::faults::{Effect, Effects, FaultPoint};
use super::shared::Shared;
use super::state::Caller;
use super::wire::{ApiError, header_region};

/// The device behind `token`, or 401.
pub(crate) fn authenticate(shared: &Shared, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer TOKEN`",
        )
    })?;
    shared
        .model()
        .caller(token)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or expired token"))
}

/// Fire the faults at `point` for `region` and apply the ones every operation
/// shares: `delay` waits, `timeout` never answers (until shutdown), `error` answers
/// its status. The rest is left to the operation.
pub(crate) async fn gate(
    shared: &Shared,
    point: FaultPoint,
    region: &str,
) -> Result<Effects, ApiError> {
    // `drop` on `sync` is decided per event as it happens (see `state::Directory::emit`).
    let per_event = |effect| point == FaultPoint::Sync && effect == Effect::Drop;
    let effects = shared
        .faults
        .snapshot()
        .fire_only(point, region, |effect| !per_event(effect));
    if !effects.delay.is_zero() {
        tokio::time::sleep(effects.delay).await;
    }
    if effects.timeout {
        shared.shutting_down().await;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
        ));
    }
    if let Some(status) = effects.error {
        return Err(ApiError::injected(status));
    }
    Ok(effects)
}

/// [`gate`] for a logged-in caller; `disconnect` drops the caller's push connections.
/// `sync` matches the device's login region, every other operation the request's
/// region header (the device's login region when the header is absent).
pub(crate) async fn gate_caller(
    shared: &Shared,
    point: FaultPoint,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Effects, ApiError> {
    let region = match point {
        FaultPoint::Sync | FaultPoint::Deliver | FaultPoint::Connect => caller.region.clone(),
        _ => header_region(headers).map_or_else(|| caller.region.clone(), Arc::from),
    };
    let effects = gate(shared, point, &region).await?;
    if effects.disconnect {
        caller.push.disconnect(Kill::Drop);
    }
    Ok(effects)
}
