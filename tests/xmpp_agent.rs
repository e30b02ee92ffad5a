//! The `chatprobe` binary with the shipped `config/xmpp.yaml` pointed at a
//! real Prosody: `once` passes every shipped probe, and the agent reports
//! `connect_error` while the server is down, stays up, and passes again once
//! the server is started again (no agent restart). The bodies are
//! shared with every protocol: `tests/common/protocol.rs`.

mod common;
mod prosody;

use common::protocol;
use prosody::Prosody;

#[test]
fn once_passes_every_shipped_probe_against_prosody() {
    protocol::once_passes_every_shipped_probe::<Prosody>();
}

#[test]
fn agent_reports_connect_error_while_prosody_is_down_and_passes_once_it_is_back() {
    protocol::agent_reports_connect_error_while_down_and_passes_once_back::<Prosody>();
}
