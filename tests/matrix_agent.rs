//! The `chatprobe` binary with the shipped `config/matrix.yaml` pointed at a
//! real Synapse: `once` passes every shipped probe, and the agent reports
//! `connect_error` while the homeserver is down, stays up, and passes again once
//! the homeserver is started again (no agent restart). The bodies are
//! shared with every protocol: `tests/common/protocol.rs`.

mod common;
mod synapse;

use common::protocol;
use synapse::Synapse;

#[test]
fn once_passes_every_shipped_probe_against_synapse() {
    protocol::once_passes_every_shipped_probe::<Synapse>();
}

#[test]
fn agent_reports_connect_error_while_synapse_is_down_and_passes_once_it_is_back() {
    protocol::agent_reports_connect_error_while_down_and_passes_once_back::<Synapse>();
}
