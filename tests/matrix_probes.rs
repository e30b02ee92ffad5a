//! Every probe kind, unchanged, against a real Synapse: 100 healthy runs in
//! all (every kind in turn, concurrently), and the number of rooms each probe
//! account is in stays flat. The body is shared with every protocol:
//! `tests/common/protocol.rs`.

mod common;
mod synapse;

use common::protocol;
use synapse::Synapse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_passes_and_leaves_no_room_behind() {
    protocol::every_kind_passes_and_leaves_no_group_behind::<Synapse>().await;
}
