//! The WebSocket push stream (`GET /api/v1/push`): connections of a device
//! login (at most `max_sockets_per_device`), carrying the device's events as JSON
//! text frames. The token comes only from the `Authorization` header, never the
//! URL, which access logs keep; frames from clients are capped at `max_body_bytes`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;

use super::delivery::{Kill, SocketFeed};
use super::distort;
use super::faults::FaultPoint;
use super::gate::{authenticate, gate};
use super::shared::Shared;
use super::wire::{ApiError, ApiResult, bearer_token};
use crate::protocol::route;

/// Frames written before one flush, so a busy connection sends in large writes.
const FRAMES_PER_FLUSH: usize = 256;
/// Read buffer of a push connection. Clients send almost nothing, and tungstenite
/// zero-fills this much on every read attempt (128 KiB by default).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The push stream's route.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route(route::PUSH, get(connect))
}

/// Authenticate, apply `connect` faults, register the connection, then upgrade.
async fn connect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult {
    let caller = authenticate(&shared, bearer_token(&headers))?;
    let upgrade =
        upgrade.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let effects = gate(&shared, FaultPoint::Connect, &caller.region).await?;
    if effects.disconnect {
        return Ok(upgrade.on_upgrade(|socket| async move { drop(socket) }));
    }
    // Registered before the 101 answer, so no event after the handshake is missed.
    let most = shared.config.max_sockets_per_device;
    let (id, feed) = caller
        .push
        .attach(distort::copies(&effects), most)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "device already has {most} push connections, the backend's \
                     `max_sockets_per_device`; close one first"
                ),
            )
        })?;
    let push = caller.push.clone();
    let largest = shared.config.max_body_bytes;
    let response: Response = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(largest)
        .max_frame_size(largest)
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
                None | Some(Ok(Message::Close(_))) => return,
                Some(Err(error)) => return refuse(&mut socket, &error, shared).await,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// End a connection whose client sent what it may not: a message over
/// `max_body_bytes` is closed with 1009 naming the limit; other errors just end it.
async fn refuse(socket: &mut WebSocket, error: &axum::Error, shared: &Shared) {
    let too_big = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        .is_some_and(|source| matches!(source, tokio_tungstenite::tungstenite::Error::Capacity(_)));
    if too_big {
        let reason = format!(
            "message larger than {} bytes, the backend's `max_body_bytes`",
            shared.config.max_body_bytes
        );
        let frame = CloseFrame {
            code: close_code::SIZE,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
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
