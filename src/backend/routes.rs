//! The client API's HTTP routes (all but the push stream): each handler
//! authenticates, parses, passes the fault gate and runs its model operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::delivery::Kill;
use super::faults::{Effects, FaultPoint};
use super::gate::{authenticate, gate, gate_caller};
use super::shared::Shared;
use super::state::{Caller, Fanout, Model, ModelError};
use super::wire::{ApiError, ApiResult, bearer_token, json_response, parse_json, request_region};
use crate::protocol::{
    AddMemberRequest, CreateGroupRequest, EditSettingsRequest, LoginRequest, SendRequest, route,
};

/// The routes of the client API except the push stream.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(route::LOGIN, post(login))
        .route(route::SYNC, get(sync))
        .route(route::GROUPS, get(list_groups).post(create_group))
        .route(
            route::GROUP,
            get(read_group).patch(change_group(
                FaultPoint::EditSettings,
                |model, caller, group, request: &EditSettingsRequest, effects, fanout| {
                    model.edit_settings(&caller.user, group, request, effects, fanout)
                },
            )),
        )
        .route(
            route::MESSAGES,
            post(change_group(
                FaultPoint::Send,
                |model, caller, group, request: &SendRequest, effects, fanout| {
                    model.send(caller, group, request, effects, fanout)
                },
            )),
        )
        .route(
            route::MEMBERS,
            post(change_group(
                FaultPoint::AddMember,
                |model, caller, group, request: &AddMemberRequest, effects, fanout| {
                    model.add_member(&caller.user, group, &request.user, effects, fanout)
                },
            )),
        )
        .route(route::JOIN, post(join))
        .route(route::LEAVE, post(leave))
}

async fn login(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let request: LoginRequest = parse_json(body)?;
    let region = request_region(&headers);
    let effects = gate(&shared, FaultPoint::Login, &region).await?;
    let mut model = shared.model();
    if effects.disconnect {
        for push in model.user_pushes(&request.user) {
            push.disconnect(Kill::Drop);
        }
    }
    let answer = model.login(&request, region, effects.drop)?;
    Ok(json_response(&answer))
}

/// `GET /sync` query.
#[derive(Debug, serde::Deserialize)]
struct SyncQuery {
    #[serde(default)]
    since: u64,
}

async fn sync(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<SyncQuery>, QueryRejection>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let Query(query) =
        query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let effects = gate_caller(&shared, FaultPoint::Sync, &caller, &headers).await?;
    let body = shared.model().sync(&caller, query.since, &effects);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn list_groups(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let effects = gate_caller(&shared, FaultPoint::ListGroups, &caller, &headers).await?;
    let groups = shared.model().list_groups(&caller.user, &effects);
    Ok(json_response(&groups))
}

async fn create_group(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let request: CreateGroupRequest = parse_json(body)?;
    let fanout = shared.fanout();
    let group = shared.model().create_group(&caller, &request, &fanout)?;
    Ok(json_response(&group))
}

async fn read_group(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let effects = gate_caller(&shared, FaultPoint::ReadGroup, &caller, &headers).await?;
    let group = shared
        .model()
        .read_group(&caller.user, &group_id, &effects)?;
    Ok(json_response(&group))
}

/// How one group change runs on the model: the caller, the group's id, the
/// parsed request, the fired faults and the fan-out of its events.
type Change<R, T> =
    fn(&mut Model, &Caller, &str, &R, &Effects, &Fanout<'_>) -> Result<T, ModelError>;

/// What a group-change handler returns: its answer, later.
type Answering = Pin<Box<dyn Future<Output = ApiResult> + Send>>;

/// A request body, or why axum could not read it.
type Body = Result<Bytes, BytesRejection>;

/// The handler of an operation that changes group `{id}` (settings, a
/// message, a member): authenticate, parse the body, pass the fault gate at
/// `point`, then `change` the model under its lock and answer what it returns.
fn change_group<R, T>(
    point: FaultPoint,
    change: Change<R, T>,
) -> impl Fn(State<Arc<Shared>>, HeaderMap, Path<String>, Body) -> Answering
+ Clone
+ Send
+ Sync
+ 'static
where
    R: DeserializeOwned + Send + 'static,
    T: serde::Serialize + 'static,
{
    move |State(shared), headers, Path(group_id), body| {
        Box::pin(async move {
            let caller = authenticate(&shared, bearer_token(&headers))?;
            let request: R = parse_json(body)?;
            let effects = gate_caller(&shared, point, &caller, &headers).await?;
            let fanout = shared.fanout();
            let answer = change(
                &mut shared.model(),
                &caller,
                &group_id,
                &request,
                &effects,
                &fanout,
            )?;
            Ok(json_response(&answer))
        })
    }
}

async fn join(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let group = shared.model().join(&caller.user, &group_id)?;
    Ok(json_response(&group))
}

async fn leave(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let effects = gate_caller(&shared, FaultPoint::Leave, &caller, &headers).await?;
    let fanout = shared.fanout();
    shared
        .model()
        .leave(&caller.user, &group_id, &effects, &fanout)?;
    if let Some(after) = effects.resurrect {
        schedule_resurrect(&shared, group_id, caller.user.to_string(), after);
    }
    Ok(json_response(&serde_json::json!({})))
}

/// Re-add `user` to the group `after` the leave, as a server that lost the
/// leave would; on the timer, so it counts against `max_delayed_deliveries`
/// (beyond it the leave simply stays applied).
fn schedule_resurrect(shared: &Arc<Shared>, group_id: String, user: String, after: Duration) {
    // Weak: the timer lives in `Shared` and must not keep it alive.
    let backend = Arc::downgrade(shared);
    let resurrect = move || {
        if let Some(shared) = backend.upgrade() {
            let fanout = shared.fanout();
            shared.model().resurrect(&group_id, &user, &fanout);
        }
    };
    let deadline = Instant::now() + after;
    if let Err(full) = shared.timer.at(deadline, Box::new(resurrect)) {
        tracing::debug!("resurrection not scheduled: {full}");
    }
}
