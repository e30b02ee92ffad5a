//! An event as the service stores it: encoded once and shared by every
//! recipient's log and push connections.

use axum::extract::ws::Utf8Bytes;

use crate::protocol::Event;

/// An event as stored once and shared by every recipient: the value and its JSON text.
#[derive(Debug)]
pub(super) struct StoredEvent {
    /// The event.
    pub(crate) event: Event,
    /// Its JSON encoding, sent as-is in push frames and sync answers.
    pub(crate) json: Utf8Bytes,
}

impl StoredEvent {
    /// Encode `event` once.
    pub(super) fn new(event: Event) -> StoredEvent {
        let json = encode(&event);
        StoredEvent { event, json }
    }
}

/// The JSON text of `event`.
pub(super) fn encode(event: &Event) -> Utf8Bytes {
    // Serializing these plain structs cannot fail; an empty object is a safe fallback.
    Utf8Bytes::from(serde_json::to_string(event).unwrap_or_else(|_| "{}".to_string()))
}
