//! Pushing events to one device's open push connections, with the effects of
//! `deliver` faults (delay, drop-to-push, duplicate, reorder, corrupt, error,
//! disconnect) applied per delivery; the data they change is [`distort`]'s.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot};

use super::distort;
use super::event::StoredEvent;
use super::faults::Effects;
use super::timer::Timer;

/// Frames a push connection may queue before the server gives up on it.
pub(super) const PUSH_QUEUE_FRAMES: usize = 16 * 1024;

/// Why the server ends a push connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kill {
    /// Drop the TCP connection without a close frame (`disconnect`).
    Drop,
    /// Close with code 1011 naming this status (`error` on `deliver`).
    Error(u16),
    /// Close with code 1008: the client reads too slowly.
    Overflow,
    /// Close with code 1008: the user logged in more devices than allowed.
    LoggedOut,
}

/// The server's end of one open push connection.
#[derive(Debug)]
pub(super) struct PushSocket {
    id: u64,
    frames: mpsc::Sender<Utf8Bytes>,
    kill: Option<oneshot::Sender<Kill>>,
    /// Copies of every frame this connection sends, set by `connect` faults when it
    /// opened ([`distort::copies`]: none on `drop`, two on `duplicate`).
    frame_copies: usize,
}

/// What the WebSocket task of one connection reads from.
pub(super) struct SocketFeed {
    /// Frames to send, in order.
    pub(crate) frames: mpsc::Receiver<Utf8Bytes>,
    /// Fires when the server ends the connection.
    pub(crate) kill: oneshot::Receiver<Kill>,
}

#[derive(Debug)]
struct Held {
    json: Utf8Bytes,
    generation: u64,
}

#[derive(Debug, Default)]
struct PushState {
    sockets: Vec<PushSocket>,
    held: Option<Held>,
    next_id: u64,
}

/// One device's push side: its open connections and a frame held back by `reorder`.
#[derive(Debug, Default)]
pub(super) struct DevicePush {
    state: Mutex<PushState>,
}

impl DevicePush {
    fn lock(&self) -> MutexGuard<'_, PushState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Register a new connection sending `frame_copies` of every frame; returns its
    /// id and what its task reads, or `None` when `most` connections are open already.
    pub(super) fn attach(&self, frame_copies: usize, most: usize) -> Option<(u64, SocketFeed)> {
        let mut state = self.lock();
        if state.sockets.len() >= most {
            return None;
        }
        let (frames_tx, frames) = mpsc::channel(PUSH_QUEUE_FRAMES);
        let (kill_tx, kill) = oneshot::channel();
        state.next_id += 1;
        let id = state.next_id;
        state.sockets.push(PushSocket {
            id,
            frames: frames_tx,
            kill: Some(kill_tx),
            frame_copies,
        });
        Some((id, SocketFeed { frames, kill }))
    }

    /// Forget connection `id` (its task ended).
    pub(super) fn detach(&self, id: u64) {
        self.lock().sockets.retain(|socket| socket.id != id);
    }

    /// Number of open connections.
    pub(super) fn connected(&self) -> usize {
        self.lock().sockets.len()
    }

    /// End every open connection.
    pub(super) fn disconnect(&self, why: Kill) {
        let sockets = std::mem::take(&mut self.lock().sockets);
        for kill in sockets.into_iter().filter_map(|socket| socket.kill) {
            // The task may already be gone; nothing else to do then.
            let _ = kill.send(why);
        }
    }

    /// Push `event` to this device with the `deliver` effects that fired for it.
    pub(super) fn deliver(self: &Arc<Self>, event: &StoredEvent, effects: &Effects, timer: &Timer) {
        if effects.timeout || effects.drop {
            return;
        }
        if let Some(status) = effects.error {
            return self.disconnect(Kill::Error(status));
        }
        if effects.disconnect {
            return self.disconnect(Kill::Drop);
        }
        let json = distort::pushed_json(event, effects);
        let copies = distort::copies(effects);
        if !effects.delay.is_zero() {
            let device = self.clone();
            let job = move || device.push_now(&json, copies);
            if let Err(full) = timer.at(Instant::now() + effects.delay, Box::new(job)) {
                // Not pushed, as on `timeout`: the device's sync still has it.
                tracing::debug!(cursor = event.event.cursor, "delayed push dropped: {full}");
            }
            return;
        }
        if let Some(longest) = effects.reorder {
            return self.hold(json, longest, timer);
        }
        self.push_now(&json, copies);
    }

    /// Send now, then release a held frame behind it (that is the swap of `reorder`).
    fn push_now(&self, json: &Utf8Bytes, copies: usize) {
        let mut state = self.lock();
        send_all(&mut state.sockets, json, copies);
        if let Some(held) = state.held.take() {
            send_all(&mut state.sockets, &held.json, 1);
        }
    }

    /// Hold `json` back until the next frame overtakes it, or `longest` passes.
    fn hold(self: &Arc<Self>, json: Utf8Bytes, longest: Duration, timer: &Timer) {
        let mut state = self.lock();
        if state.held.is_some() {
            drop(state);
            return self.push_now(&json, 1);
        }
        state.next_id += 1;
        let generation = state.next_id;
        state.held = Some(Held { json, generation });
        drop(state);
        let device = Arc::downgrade(self);
        let release = move || {
            if let Some(device) = device.upgrade() {
                device.release(generation);
            }
        };
        if timer
            .at(Instant::now() + longest, Box::new(release))
            .is_err()
        {
            // Nothing would release it in time: it goes now, not reordered.
            self.release(generation);
        }
    }

    fn release(&self, generation: u64) {
        let mut state = self.lock();
        if state.held.as_ref().map(|held| held.generation) == Some(generation)
            && let Some(held) = state.held.take()
        {
            send_all(&mut state.sockets, &held.json, 1);
        }
    }
}

/// Queue `copies` of `json` on every socket (times the socket's own copies); a socket
/// that is gone is forgotten, one whose queue is full is closed (its device must
/// sync to catch up).
fn send_all(sockets: &mut Vec<PushSocket>, json: &Utf8Bytes, copies: usize) {
    sockets.retain_mut(|socket| {
        for _ in 0..copies * socket.frame_copies {
            match socket.frames.try_send(json.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if let Some(kill) = socket.kill.take() {
                        let _ = kill.send(Kill::Overflow);
                    }
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    });
}
