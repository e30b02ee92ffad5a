//! Benchmark (ignored by default): the shipped `group_message` probe against
//! a real Synapse and against the mock backend, in one run: run latency
//! sequentially and runs per second with 4 concurrent probes (4 rooms). The
//! body is shared with every protocol: `tests/common/server_bench.rs`.
//!
//! `cargo test --release --test matrix_bench -- --ignored --nocapture`

mod common;
mod synapse;

use common::server_bench;
use synapse::Synapse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn group_message_against_synapse_and_the_mock() {
    server_bench::group_message_against_the_server_and_the_mock::<Synapse>().await;
}
