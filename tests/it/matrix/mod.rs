//! The Matrix client and agent: against a real Synapse on 127.0.0.1 (skipped
//! loudly when Synapse is not installed) every test each real-server protocol
//! shares (`harness/protocol.rs`) and the Matrix-only ones ([`client`]); and
//! against a hostile homeserver ([`hostile_homeserver`]).

mod client;
mod hostile_homeserver;

crate::real_server_tests!(crate::harness::synapse::Synapse);
