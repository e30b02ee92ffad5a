//! A probe's life around its runs: what it keeps on the service between runs,
//! what shutdown removes, and a service that goes away.

mod common;

use std::time::Duration;

use chatprobe::outcome::{Operation, Reason};
use chatprobe::probe::ProbeKind;
use common::backend::TestBackend;
use common::probes::{assert_passed, build, failures, fast_spec};
use serde_json::json;

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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let mut probes: Vec<_> = ProbeKind::ALL
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

/// Polls (bounded) until the backend holds `wanted` groups; false if it never did.
async fn wait_for_groups(backend: &TestBackend, wanted: u64) -> bool {
    for _ in 0..100 {
        if group_count(backend).await == wanted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A group that comes back only after the run that left it has ended (and
/// cleaned up) is reported by the next run, for every member it came back
/// to, and left again so nothing stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_group_reports_a_resurrection_on_a_later_run() {
    let backend = TestBackend::start().await;
    let baseline = group_count(&backend).await;
    let mut spec = fast_spec(ProbeKind::LeaveGroup);
    // The in-run look comes 200 ms after the leave, well before the group comes back.
    spec.latency_objective = Duration::from_millis(200);
    let members = spec.group_size;
    let mut probe = build(&backend.base, "ap-south", spec, "later");

    backend
        .set_faults(json!([{
            "name": "lost-leaves",
            "operations": ["leave"],
            "regions": ["ap-south"],
            "effect": "resurrect",
            "delay": "3s",
        }]))
        .await;
    let first = probe.run().await;
    assert_passed(ProbeKind::LeaveGroup, 1, &first);
    // Every leave of the first run (the probe's and its cleanup's) comes back
    // later; no leave after this one does.
    backend.set_faults(json!([])).await;
    assert_eq!(group_count(&backend).await, baseline, "run 1 cleaned up");
    assert!(
        wait_for_groups(&backend, baseline + 1).await,
        "the left group came back"
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the other members' re-adds

    let second = probe.run().await;
    assert_eq!(
        failures(&second),
        [(Operation::Leave, Reason::MembershipResurrected)],
        "{:?}",
        second.failures
    );
    // The leaver is named; the other members, back in it too, leave it
    // again (their lists alone prove nothing: a failed cleanup looks alike).
    let detail = &second.failures[0].detail;
    assert!(
        detail.contains(&format!("listed again for member {members}")),
        "run 2 names the leaver, member {members}: {detail}"
    );
    assert!(
        wait_for_groups(&backend, baseline).await,
        "run 2 left the resurrected group again"
    );
    let third = probe.run().await;
    assert_passed(ProbeKind::LeaveGroup, 3, &third);
    probe.shutdown().await;
    assert_eq!(group_count(&backend).await, baseline);
    backend.handle.shutdown().await.expect("backend stops");
}
