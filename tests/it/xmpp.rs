//! The XMPP client and agent against a real Prosody on 127.0.0.1 (skipped
//! loudly when Prosody is not installed): every test each real-server
//! protocol shares (`harness/protocol.rs`).

crate::real_server_tests!(crate::harness::prosody::Prosody);
