//! HTTP routes of the mock service: authentication, request parsing, the fault
//! gate in front of every operation, and JSON answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::Shared;
use super::delivery::Kill;
use super::faults::{Effect, Effects, Operation};
use super::state::{Caller, Fanout, Model, ModelError};
use crate::protocol::{
    AddMemberRequest, CreateGroupRequest, EditSettingsRequest, ErrorBody, LoginRequest,
    REGION_HEADER, SendRequest, route,
};

/// Region of requests without an `X-Chatprobe-Region` header.
pub const DEFAULT_REGION: &str = "default";

/// An error answer: status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answer with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn injected(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        ApiError::new(status, "injected fault")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> ApiError {
        let status = match &error {
            ModelError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ModelError::Forbidden(_) => StatusCode::FORBIDDEN,
            ModelError::NotFound(_) => StatusCode::NOT_FOUND,
            ModelError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The result of a handler.
pub type ApiResult = Result<Response, ApiError>;

/// Every route of the service, admin included.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.max_body_bytes;
    Router::new()
        .route(route::LOGIN, post(login))
        .route(route::PUSH, get(super::push::connect))
        .route(route::SYNC, get(sync))
        .route(route::GROUPS, get(list_groups).post(create_group))
        .route(route::GROUP, get(read_group).patch(edit_settings))
        .route(route::MESSAGES, post(send))
        .route(route::MEMBERS, post(add_member))
        .route(route::JOIN, post(join))
        .route(route::LEAVE, post(leave))
        .merge(super::admin::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// The region a request says it comes from (`default` without the header).
pub fn request_region(headers: &HeaderMap) -> Arc<str> {
    header_region(headers).unwrap_or(DEFAULT_REGION).into()
}

/// The request's `X-Chatprobe-Region`, if present and not blank.
fn header_region(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REGION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|region| !region.is_empty())
}

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

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

/// Decode a JSON body; 413 when over the limit, 400 naming the problem otherwise.
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." || path == "?" {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at `{path}`: {inner}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })
}

/// Fire the faults of `operation` for `region` and apply the ones every operation
/// shares: `delay` waits, `timeout` never answers (until shutdown), `error` answers
/// its status. The rest is left to the operation.
pub(crate) async fn gate(
    shared: &Shared,
    operation: Operation,
    region: &str,
) -> Result<Effects, ApiError> {
    // `drop` on `sync` is decided per event as it happens (see `state::Directory::emit`).
    let per_event = |effect| operation == Operation::Sync && effect == Effect::Drop;
    let effects = shared
        .faults
        .snapshot()
        .fire_only(operation, region, |effect| !per_event(effect));
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
async fn gate_caller(
    shared: &Shared,
    operation: Operation,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Effects, ApiError> {
    let region = match operation {
        Operation::Sync | Operation::Deliver | Operation::Connect => caller.region.clone(),
        _ => header_region(headers).map_or_else(|| caller.region.clone(), Arc::from),
    };
    let effects = gate(shared, operation, &region).await?;
    if effects.disconnect {
        caller.push.disconnect(Kill::Drop);
    }
    Ok(effects)
}

fn json_response<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

async fn login(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let request: LoginRequest = parse_json(body)?;
    let region = request_region(&headers);
    let effects = gate(&shared, Operation::Login, &region).await?;
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
    let effects = gate_caller(&shared, Operation::Sync, &caller, &headers).await?;
    let body = shared.model().sync(&caller, query.since, &effects);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn list_groups(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let effects = gate_caller(&shared, Operation::ListGroups, &caller, &headers).await?;
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
    let effects = gate_caller(&shared, Operation::ReadGroup, &caller, &headers).await?;
    let group = shared
        .model()
        .read_group(&caller.user, &group_id, &effects)?;
    Ok(json_response(&group))
}

/// The shared path of the operations that change a group: authenticate, parse the
/// body, pass the fault gate, then change the model under its lock and answer.
async fn change_group<R, T>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    operation: Operation,
    change: impl FnOnce(&mut Model, &Caller, &R, &Effects, &Fanout<'_>) -> Result<T, ModelError>,
) -> ApiResult
where
    R: DeserializeOwned,
    T: serde::Serialize,
{
    let caller = authenticate(shared, bearer_token(headers))?;
    let request: R = parse_json(body)?;
    let effects = gate_caller(shared, operation, &caller, headers).await?;
    let fanout = shared.fanout();
    let answer = change(&mut shared.model(), &caller, &request, &effects, &fanout)?;
    Ok(json_response(&answer))
}

async fn edit_settings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let operation = Operation::EditSettings;
    change_group(
        &shared,
        &headers,
        body,
        operation,
        |model, caller, request: &EditSettingsRequest, effects, fanout| {
            model.edit_settings(&caller.user, &group_id, request, effects, fanout)
        },
    )
    .await
}

async fn send(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let operation = Operation::Send;
    change_group(
        &shared,
        &headers,
        body,
        operation,
        |model, caller, request: &SendRequest, effects, fanout| {
            model.send(caller, &group_id, request, effects, fanout)
        },
    )
    .await
}

async fn add_member(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let operation = Operation::AddMember;
    change_group(
        &shared,
        &headers,
        body,
        operation,
        |model, caller, request: &AddMemberRequest, effects, fanout| {
            model.add_member(&caller.user, &group_id, &request.user, effects, fanout)
        },
    )
    .await
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
    let effects = gate_caller(&shared, Operation::Leave, &caller, &headers).await?;
    let fanout = shared.fanout();
    shared
        .model()
        .leave(&caller.user, &group_id, &effects, &fanout)?;
    if let Some(after) = effects.resurrect {
        schedule_resurrect(shared.clone(), group_id, caller.user.to_string(), after);
    }
    Ok(json_response(&serde_json::json!({})))
}

/// Re-add `user` to the group `after` the leave, as a server that lost the leave would.
fn schedule_resurrect(shared: Arc<Shared>, group_id: String, user: String, after: Duration) {
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(after) => {
                let fanout = shared.fanout();
                shared.model().resurrect(&group_id, &user, &fanout);
            }
            _ = shared.shutting_down() => {}
        }
    });
}
