//! A healthy soak finds no failure: the mock backend, three regions, every
//! shipped probe at a short interval with the agent's jitter, for a minute
//! (`chatprobe bench soak` runs the same for longer).

use std::time::Duration;

use chatprobe::cmd::bench::soak::soak;

/// How long the soak runs.
const DURATION: Duration = Duration::from_secs(60);
/// Between two runs of one probe: short, for many runs in a minute.
const INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_healthy_soak_has_no_false_failure() {
    let report = soak(DURATION, INTERVAL).await.expect("soak runs");
    assert_eq!(report.failed, 0, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    // 3 regions × 5 probes, about one run a second each, on a loaded machine.
    assert!(report.runs >= 300, "too few runs: {report}");
}
