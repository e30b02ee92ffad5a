//! The WebSocket push stream (`GET /api/v1/push`): one connection per device
//! login, carrying the device's events as JSON text frames.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;

use super::delivery::{Kill, SocketFeed};
use super::distort;
use super::faults::FaultPoint;
use super::gate::{authenticate, gate};
use super::http::{ApiError, ApiResult, bearer_token};
use super::shared::Shared;
use crate::protocol::route;

/// Frames written before one flush, so a busy connection sends in large writes.
const FRAMES_PER_FLUSH: usize = 256;
/// Read buffer of a push connection. Clients send almost nothing, and tungstenite
/// zero-fills this much on every read attempt (128 KiB by default).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// `?token=` for clients that cannot set headers on a WebSocket request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PushQuery {
    token: Option<String>,
}

/// The push stream's route.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route(route::PUSH, get(connect))
}

/// Authenticate, apply `connect` faults, register the connection, then upgrade.
async fn connect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<PushQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult {
    let query_token = query.ok().and_then(|Query(query)| query.token);
    let token = bearer_token(&headers).or(query_token.as_deref());
    let caller = authenticate(&shared, token)?;
    let upgrade =
        upgrade.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let effects = gate(&shared, FaultPoint::Connect, &caller.region).await?;
    if effects.disconnect {
        return Ok(upgrade.on_upgrade(|socket| async move { drop(socket) }));
    }
    // Registered before the 101 answer, so no event after the handshake is missed.
    let (id, feed) = caller.push.attach(distort::copies(&effects));
    let push = caller.push.clone();
    let response: Response = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            serve(socket, feed, &shared).await;
            push.detach(id);
        })
        .into_response();
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        caller.push.detach(id);
    }
    Ok(response)
}

/// Write queued frames (many per flush) until the client leaves, the server kills
/// the connection, or the backend shuts down.
async fn serve(mut socket: WebSocket, mut feed: SocketFeed, shared: &Shared) {
    let shutdown = shared.shutting_down();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            kill = &mut feed.kill => {
                if let Some(frame) = kill.ok().and_then(close_frame) {
                    let _ = socket.send(Message::Close(Some(frame))).await;
                }
                return;
            }
            _ = &mut shutdown => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
            frame = feed.frames.recv() => {
                let Some(first) = frame else { return };
                if write_batch(&mut socket, first, &mut feed).await.is_err() {
                    return;
                }
            }
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Feed `first` and whatever else is queued (up to [`FRAMES_PER_FLUSH`]), then flush once.
async fn write_batch(
    socket: &mut WebSocket,
    first: axum::extract::ws::Utf8Bytes,
    feed: &mut SocketFeed,
) -> Result<(), axum::Error> {
    socket.feed(Message::Text(first)).await?;
    for _ in 1..FRAMES_PER_FLUSH {
        match feed.frames.try_recv() {
            Ok(frame) => socket.feed(Message::Text(frame)).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// The close frame for a kill; `None` means drop the connection without one.
fn close_frame(kill: Kill) -> Option<CloseFrame> {
    match kill {
        Kill::Drop => None,
        Kill::Error(status) => Some(CloseFrame {
            code: close_code::ERROR,
            reason: format!("injected fault: status {status}").into(),
        }),
        Kill::Overflow => Some(CloseFrame {
            code: close_code::POLICY,
            reason: "push queue full; sync to catch up".into(),
        }),
        Kill::LoggedOut => Some(CloseFrame {
            code: close_code::POLICY,
            reason: "device logged out: its user logged in too many devices".into(),
        }),
    }
}
