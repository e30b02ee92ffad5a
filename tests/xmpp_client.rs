//! The XMPP client through the `ChatService` / `Device` traits only, against
//! a real Prosody on 127.0.0.1 (skipped loudly when Prosody is not installed).
//! The bodies are shared with every protocol: `tests/common/protocol.rs`.

mod common;
mod prosody;

use common::protocol;
use prosody::Prosody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_messages_devices_settings_and_membership() {
    protocol::groups_messages_devices_settings_and_membership::<Prosody>().await;
}

/// More messages than one archive page holds (100) between two catch-up
/// syncs: the client pages through the room's archive, so every one
/// arrives, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_sync_fills_a_long_timeline_gap() {
    protocol::catch_up_sync_fills_a_long_timeline_gap::<Prosody>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_stopped_server() {
    protocol::wrong_password_and_stopped_server::<Prosody>().await;
}
