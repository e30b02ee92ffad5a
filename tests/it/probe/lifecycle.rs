//! A probe's life around its runs: what it keeps on the service between runs,
//! what shutdown removes, and a service that goes away.

use std::time::Duration;

use crate::harness::backend::TestBackend;
use crate::harness::probes::{assert_passed, build, failures, fast_spec};
use chatprobe::outcome::{Operation, Reason};
use chatprobe::probe::ProbeKind;
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
    wait_for_stats(backend, |stats| stats["groups"].as_u64() == Some(wanted)).await
}

/// Polls (bounded) until the backend's stats satisfy `wanted`; false if they never did.
async fn wait_for_stats(
    backend: &TestBackend,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> bool {
    for _ in 0..100 {
        if wanted(&backend.stats().await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn member_count(stats: &serde_json::Value) -> u64 {
    stats["members"].as_u64().expect("member count")
}

/// Every leave of `region` answers 503.
fn leave_outage(region: &str) -> serde_json::Value {
    json!([{
        "name": "no-leaves",
        "operations": ["leave"],
        "regions": [region],
        "effect": "error",
    }])
}

/// Through a leave outage a probe holds at most ten groups (later runs
/// refuse to create more and say why); once leaves work again, one run
/// removes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_outage_leaves_at_most_ten_groups_and_one_run_after_it_removes_them() {
    let backend = TestBackend::start().await;
    let baseline = group_count(&backend).await;
    let mut probe = build(
        &backend.base,
        "us-east",
        fast_spec(ProbeKind::EditSettings),
        "outage",
    );
    assert_passed(ProbeKind::EditSettings, 0, &probe.run().await);
    backend.set_faults(leave_outage("us-east")).await;
    let mut refused = 0;
    for _ in 0..15 {
        let outcome = probe.run().await;
        let found = failures(&outcome);
        assert!(
            found.contains(&(Operation::Cleanup, Reason::HttpError))
                || found.contains(&(Operation::Cleanup, Reason::LeaveRejected)),
            "{:?}",
            outcome.failures
        );
        if found.contains(&(Operation::Cleanup, Reason::LeaveRejected)) {
            refused += 1;
            assert!(
                outcome.failures.iter().any(|failure| failure
                    .detail
                    .contains("no new group: outage-edit_settings-0 still holds 10 groups")),
                "{:?}",
                outcome.failures
            );
        }
        let held = group_count(&backend).await - baseline;
        assert!(held <= 10, "{held} groups on the service");
    }
    assert_eq!(refused, 5, "runs 11 to 15 create no group");
    backend.set_faults(json!([])).await;
    assert_passed(ProbeKind::EditSettings, 16, &probe.run().await);
    assert_eq!(group_count(&backend).await, baseline);
    probe.shutdown().await;
    backend.handle.shutdown().await.expect("backend stops");
}

/// A probe gone without its shutdown (an agent killed with -9) leaves its
/// groups; the next probe on the same accounts removes them in its first run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_probe_removes_the_groups_its_killed_predecessor_left() {
    let backend = TestBackend::start().await;
    let baseline = group_count(&backend).await;
    backend.set_faults(leave_outage("us-east")).await;
    let mut killed = build(
        &backend.base,
        "us-east",
        fast_spec(ProbeKind::DeviceSync),
        "killed",
    );
    for _ in 0..3 {
        // A failed cleanup is reported, yet fails no run by itself.
        let outcome = killed.run().await;
        let cleanup_failed = outcome
            .failures
            .iter()
            .any(|failure| failure.operation == Operation::Cleanup);
        assert!(cleanup_failed, "{:?}", outcome.failures);
    }
    drop(killed);
    assert_eq!(group_count(&backend).await, baseline + 3);
    backend.set_faults(json!([])).await;
    let mut successor = build(
        &backend.base,
        "us-east",
        fast_spec(ProbeKind::DeviceSync),
        "killed",
    );
    assert_passed(ProbeKind::DeviceSync, 0, &successor.run().await);
    assert_eq!(group_count(&backend).await, baseline);
    successor.shutdown().await;
    backend.handle.shutdown().await.expect("backend stops");
}

/// A group that comes back only after the run that left it has ended (and
/// cleaned up) is reported by the next run, for every member it came back
/// to, and left again so nothing stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_group_reports_a_resurrection_on_a_later_run() {
    let backend = TestBackend::start().await;
    let baseline = group_count(&backend).await;
    let baseline_members = member_count(&backend.stats().await);
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
    let back = wait_for_stats(&backend, |stats| {
        stats["groups"].as_u64() == Some(baseline + 1)
            && member_count(stats) == baseline_members + members as u64
    });
    assert!(back.await, "the left group came back with every member");

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
