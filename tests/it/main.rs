//! The integration tests of chatprobe: one test crate, a module per area,
//! the shared harness in [`harness`]. Tests that need an outside tool
//! (promtool, Prometheus, Alertmanager, Chromium, Synapse, Prosody) skip
//! loudly when it is missing, and fail instead under
//! `CHATPROBE_REQUIRE_TOOLS=1` (as `tests/run.sh` sets).

mod agent;
mod alerts;
mod backend;
mod bad_input;
mod docs;
mod fault_matrix;
mod harness;
mod matrix;
mod probe;
mod remote_write;
mod reports;
mod soak;
mod status;
mod xmpp;
