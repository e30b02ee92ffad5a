//! A probe's life around its runs: what it keeps on the service between runs,
//! what shutdown removes, and a service that goes away.

mod common;

use chatprobe::outcome::Reason;
use chatprobe::probe::ProbeKind;
use common::backend::TestBackend;
use common::probes::{build, failures, fast_spec};

async fn group_count(backend: &TestBackend) -> u64 {
    backend.stats().await["groups"]
        .as_u64()
        .expect("group count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_message_keeps_one_group_and_shutdown_removes_it() {
    let backend = TestBackend::start().await;
    let baseline = group_count(&backend).await;
    let mut probe = build(
        &backend.base,
        "eu-west",
        fast_spec(ProbeKind::GroupMessage),
        "keep",
    );
    for _ in 0..5 {
        let outcome = probe.run().await;
        assert!(outcome.passed(), "{:?}", outcome.failures);
        assert_eq!(group_count(&backend).await, baseline + 1);
    }
    probe.shutdown().await;
    assert_eq!(group_count(&backend).await, baseline);
    // The backend notices closed push connections as it reads them: wait a little.
    let mut sockets = None;
    for _ in 0..100 {
        sockets = backend.stats().await["push_sockets"].as_u64();
        if sockets == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        sockets,
        Some(0),
        "push connections left open after shutdown"
    );
    backend.handle.shutdown().await.expect("backend stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_goes_away_fails_runs_without_panicking() {
    let backend = TestBackend::start().await;
    let base = backend.base.clone();
    let mut probes: Vec<_> = common::probes::KINDS
        .iter()
        .map(|kind| build(&base, "eu-west", fast_spec(*kind), "gone"))
        .collect();
    for probe in &mut probes {
        assert!(probe.run().await.passed());
    }
    backend.handle.shutdown().await.expect("backend stops");
    for probe in &mut probes {
        // Which step notices first (the push socket closing, or the next
        // request) is a race; either way the reason is connect_error.
        let found = failures(&probe.run().await);
        assert!(
            found
                .iter()
                .any(|(_, reason)| *reason == Reason::ConnectError),
            "{found:?}"
        );
        probe.shutdown().await;
    }
}
