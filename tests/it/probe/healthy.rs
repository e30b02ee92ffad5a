//! Against a healthy mock backend, every probe kind passes 200 runs in a row
//! and leaves no group behind after any run.

use std::time::Duration;

use crate::harness::backend::TestBackend;
use crate::harness::probes::{assert_passed, build, fast_spec};
use chatprobe::probe::{self, ProbeKind, ProbeSpec};

const RUNS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_passes_200_runs_and_cleans_up_after_each() {
    let backend = TestBackend::start().await;
    let baseline = backend.stats().await["groups"]
        .as_u64()
        .expect("group count");
    let mut runners = Vec::new();
    for &kind in ProbeKind::ALL {
        let base = backend.base.clone();
        runners.push(tokio::spawn(async move {
            // Correctness, not speed: room enough that a loaded machine
            // never turns a healthy run into a timeout or a late delivery.
            let mut spec = ProbeSpec {
                step_timeout: Duration::from_secs(5),
                delivery_deadline: Duration::from_secs(8),
                latency_objective: Duration::from_secs(6),
                ..fast_spec(kind)
            };
            if kind == ProbeKind::LeaveGroup {
                // Only the wait before looking for a resurrected group.
                spec.latency_objective = Duration::from_millis(100);
            }
            // Its kind says (and its unit test pins) how many deliveries a
            // healthy run waits for.
            let per_run = probe::messages_expected(&spec);
            let mut probe = build(&base, "eu-west", spec, "healthy");
            let mut expected = 0;
            for index in 0..RUNS {
                let outcome = probe.run().await;
                assert_passed(kind, index, &outcome);
                expected += outcome.messages_expected;
            }
            assert_eq!(
                expected,
                per_run * RUNS as u64,
                "{kind:?} waited for every delivery"
            );
            probe.shutdown().await;
        }));
    }
    for runner in runners {
        runner.await.expect("probe task");
    }
    let stats = backend.stats().await;
    assert_eq!(
        stats["groups"].as_u64(),
        Some(baseline),
        "groups left: {stats}"
    );
    backend.handle.shutdown().await.expect("backend stops");
}

/// The largest burst validation allows (50 members, 2 devices each, 100
/// messages: 9,800 deliveries) arrives complete and in time: push readers
/// never stall, so every frame keeps the instant it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_allowed_burst_arrives_complete_and_in_time() {
    let backend = TestBackend::start().await;
    let spec = ProbeSpec {
        step_timeout: Duration::from_secs(5),
        delivery_deadline: Duration::from_secs(10),
        latency_objective: Duration::from_secs(5),
        group_size: 50,
        devices_per_account: 2,
        messages: 100,
        ..fast_spec(ProbeKind::GroupMessage)
    };
    let mut probe = build(&backend.base, "eu-west", spec, "burst");
    let outcome = probe.run().await;
    assert_passed(ProbeKind::GroupMessage, 0, &outcome);
    assert_eq!(outcome.messages_delivered, 100 * 49 * 2);
    probe.shutdown().await;
    backend.handle.shutdown().await.expect("backend stops");
}
