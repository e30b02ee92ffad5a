//! Detection is exact: for every fault effect on every operation where it has
//! a meaning, a real mock backend runs with that fault scoped to one region,
//! every probe kind runs as an agent of that region and of another region,
//! and the faulted region reports exactly the contract reasons on the right
//! operations, while the other region, and a fault-free baseline, report no
//! failure at all.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chatprobe::outcome::{Operation, Reason};
use chatprobe::probe::{ProbeKind, ProbeSpec};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use common::backend::TestBackend;
use common::probes::{build, failures, fast_spec};

use Operation as Op;
use ProbeKind::{AddMember, DeviceSync, EditSettings, GroupMessage, LeaveGroup};
use Reason as R;

/// The region the fault hits.
const FAULTED: &str = "ap-south";
/// A region on the same backend the fault must not touch.
const HEALTHY: &str = "eu-west";
/// Runs of every kind per case: the second finds what the first left behind
/// (a push connection dropped after its last look, a group that came back).
const RUNS: usize = 2;
/// Cases run at once.
const PARALLEL: usize = 8;

/// What each kind reports, as (operation, reason) pairs, over its runs.
type Found = BTreeMap<&'static str, BTreeSet<(Operation, Reason)>>;

/// One fault and the failures it must cause, kind by kind.
struct Case {
    fault: Value,
    expected: Found,
}

/// A fault of `effect` on `operation` (scoped to [`FAULTED`]).
fn fault(operation: &str, effect: &str) -> Case {
    Case {
        fault: json!({
            "name": format!("{effect}-{operation}"),
            "operations": [operation],
            "regions": [FAULTED],
            "effect": effect,
        }),
        expected: ProbeKind::ALL
            .iter()
            .map(|kind| (kind.as_str(), BTreeSet::new()))
            .collect(),
    }
}

impl Case {
    /// Sets a further field of the fault (`status`, `delay`).
    fn with(mut self, field: &str, value: Value) -> Case {
        self.fault[field] = value;
        self
    }

    /// `kinds` must report `reason` on `operation` (and nothing unexpected).
    fn expect(mut self, kinds: &[ProbeKind], operation: Operation, reason: Reason) -> Case {
        for kind in kinds {
            self.expected
                .entry(kind.as_str())
                .or_default()
                .insert((operation, reason));
        }
        self
    }

    fn name(&self) -> String {
        self.fault["name"].as_str().unwrap_or("?").to_string()
    }
}

/// The probe timing of this test: short, but generous for a loaded machine.
/// Two members (the least each kind needs) keep the load of many cases at
/// once low enough for healthy steps to stay well inside their timeouts.
fn spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        group_size: 2,
        messages: 5,
        ..fast_spec(kind)
    }
}

/// Every effect on every operation where a probe can see it.
fn cases() -> Vec<Case> {
    let all = ProbeKind::ALL;
    let senders = &[GroupMessage, DeviceSync, AddMember];
    // group_message keeps its group between healthy runs: no cleanup to fail.
    let fresh_groups = &[DeviceSync, LeaveGroup, EditSettings, AddMember];
    vec![
        fault("login", "error").expect(all, Op::Login, R::HttpError),
        fault("login", "timeout").expect(all, Op::Login, R::Timeout),
        fault("login", "delay")
            .with("delay", json!("5s"))
            .expect(all, Op::Login, R::Timeout),
        fault("connect", "error").expect(all, Op::Connect, R::HttpError),
        fault("connect", "timeout").expect(all, Op::Connect, R::Timeout),
        fault("connect", "disconnect").expect(all, Op::Connect, R::ConnectError),
        fault("send", "error").expect(senders, Op::Send, R::HttpError),
        fault("send", "timeout").expect(senders, Op::Send, R::Timeout),
        fault("send", "delay")
            .with("delay", json!("5s"))
            .expect(senders, Op::Send, R::Timeout),
        fault("send", "drop")
            .expect(&[GroupMessage, DeviceSync], Op::Deliver, R::NotDelivered)
            .expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
        fault("send", "duplicate").expect(senders, Op::Deliver, R::Duplicate),
        fault("send", "corrupt").expect(senders, Op::Deliver, R::Corrupted),
        fault("send", "disconnect").expect(senders, Op::Connect, R::ConnectError),
        fault("deliver", "drop")
            .expect(&[GroupMessage, DeviceSync], Op::Deliver, R::NotDelivered)
            .expect(&[LeaveGroup], Op::Leave, R::LeaveNotApplied)
            .expect(&[EditSettings], Op::EditSettings, R::SettingsNotPropagated)
            .expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
        fault("deliver", "timeout")
            .expect(&[GroupMessage, DeviceSync], Op::Deliver, R::NotDelivered)
            .expect(&[LeaveGroup], Op::Leave, R::LeaveNotApplied)
            .expect(&[EditSettings], Op::EditSettings, R::SettingsNotPropagated)
            .expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
        fault("deliver", "delay").with("delay", json!("3s")).expect(
            senders,
            Op::Deliver,
            R::LateDelivery,
        ),
        fault("deliver", "duplicate").expect(senders, Op::Deliver, R::Duplicate),
        fault("deliver", "reorder").expect(&[GroupMessage], Op::Deliver, R::OutOfOrder),
        fault("deliver", "corrupt")
            .expect(senders, Op::Deliver, R::Corrupted)
            .expect(&[LeaveGroup], Op::Leave, R::Corrupted)
            .expect(&[EditSettings], Op::EditSettings, R::Corrupted),
        fault("deliver", "error").expect(all, Op::Connect, R::ConnectError),
        fault("deliver", "disconnect").expect(all, Op::Connect, R::ConnectError),
        fault("sync", "error").expect(&[DeviceSync], Op::DeviceSync, R::HttpError),
        fault("sync", "timeout").expect(&[DeviceSync], Op::DeviceSync, R::Timeout),
        fault("sync", "drop").expect(&[DeviceSync], Op::DeviceSync, R::DeviceDesync),
        fault("sync", "stale").expect(&[DeviceSync], Op::DeviceSync, R::DeviceDesync),
        fault("sync", "duplicate").expect(&[DeviceSync], Op::DeviceSync, R::Duplicate),
        fault("sync", "corrupt").expect(&[DeviceSync], Op::DeviceSync, R::Corrupted),
        fault("sync", "reorder").expect(&[DeviceSync], Op::DeviceSync, R::OutOfOrder),
        fault("leave", "error")
            .expect(&[LeaveGroup], Op::Leave, R::LeaveRejected)
            .expect(fresh_groups, Op::Cleanup, R::HttpError),
        fault("leave", "timeout")
            .expect(&[LeaveGroup], Op::Leave, R::Timeout)
            .expect(fresh_groups, Op::Cleanup, R::Timeout),
        fault("leave", "stale").expect(&[LeaveGroup], Op::Leave, R::LeaveNotApplied),
        fault("leave", "resurrect")
            .with("delay", json!("1s"))
            .expect(&[LeaveGroup], Op::Leave, R::MembershipResurrected),
        fault("list_groups", "error")
            .expect(&[LeaveGroup], Op::Leave, R::HttpError)
            .expect(&[AddMember], Op::AddMember, R::HttpError),
        fault("list_groups", "stale")
            .expect(&[LeaveGroup], Op::Leave, R::LeaveNotApplied)
            .expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
        fault("read_group", "error")
            .expect(&[LeaveGroup], Op::Leave, R::HttpError)
            .expect(&[EditSettings], Op::EditSettings, R::HttpError)
            .expect(&[AddMember], Op::AddMember, R::HttpError),
        fault("read_group", "stale")
            .expect(&[LeaveGroup], Op::Leave, R::LeaveNotApplied)
            .expect(&[EditSettings], Op::EditSettings, R::SettingsNotApplied)
            .expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
        fault("edit_settings", "error").expect(
            &[EditSettings],
            Op::EditSettings,
            R::SettingsRejected,
        ),
        fault("edit_settings", "timeout").expect(&[EditSettings], Op::EditSettings, R::Timeout),
        fault("edit_settings", "stale").expect(
            &[EditSettings],
            Op::EditSettings,
            R::SettingsNotApplied,
        ),
        fault("edit_settings", "corrupt").expect(
            &[EditSettings],
            Op::EditSettings,
            R::SettingsNotApplied,
        ),
        fault("add_member", "error").expect(&[AddMember], Op::AddMember, R::HttpError),
        fault("add_member", "timeout").expect(&[AddMember], Op::AddMember, R::Timeout),
        fault("add_member", "stale").expect(&[AddMember], Op::AddMember, R::MemberAddFailed),
    ]
}

/// Runs every kind [`RUNS`] times from `region`; what each kind reported.
async fn probe_region(base: &str, region: &str, tag: &str) -> Found {
    let mut runners = Vec::new();
    for &kind in ProbeKind::ALL {
        let mut probe = build(base, region, spec(kind), &format!("{tag}-{region}"));
        runners.push(tokio::spawn(async move {
            let mut found = BTreeSet::new();
            for _ in 0..RUNS {
                found.extend(failures(&probe.run().await));
            }
            (kind, found)
        }));
    }
    let mut found = Found::new();
    for runner in runners {
        let (kind, failures) = runner.await.expect("probe task");
        found.insert(kind.as_str(), failures);
    }
    found
}

/// Starts a backend with `fault` (if any) and probes both regions.
async fn observe(fault: Option<&Value>, tag: &str) -> (Found, Found) {
    let backend = TestBackend::start().await;
    if let Some(fault) = fault {
        backend.set_faults(json!([fault])).await;
    }
    let (faulted, healthy) = tokio::join!(
        probe_region(&backend.base, FAULTED, tag),
        probe_region(&backend.base, HEALTHY, tag),
    );
    backend.handle.shutdown().await.expect("backend stops");
    (faulted, healthy)
}

fn no_failures(found: &Found) -> bool {
    found.values().all(BTreeSet::is_empty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_reported_exactly_on_its_region() {
    let (faulted, healthy) = observe(None, "baseline").await;
    assert!(
        no_failures(&faulted) && no_failures(&healthy),
        "fault-free baseline failed: {faulted:?} {healthy:?}"
    );

    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut checks = Vec::new();
    for case in cases() {
        let gate = Arc::clone(&gate);
        checks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let (faulted, healthy) = observe(Some(&case.fault), &case.name()).await;
            let mut problems = Vec::new();
            if faulted != case.expected {
                problems.push(format!(
                    "{FAULTED}: found {faulted:?}, expected {:?}",
                    case.expected
                ));
            }
            if !no_failures(&healthy) {
                problems.push(format!("{HEALTHY} (not faulted) failed: {healthy:?}"));
            }
            (case.name(), problems)
        }));
    }
    let mut wrong = Vec::new();
    let mut effects = BTreeSet::new();
    for check in checks {
        let (name, problems) = check.await.expect("case task");
        effects.insert(name.split('-').next().unwrap_or_default().to_string());
        if !problems.is_empty() {
            wrong.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    let every_effect = [
        "error",
        "delay",
        "timeout",
        "drop",
        "duplicate",
        "reorder",
        "corrupt",
        "stale",
        "resurrect",
        "disconnect",
    ];
    assert!(every_effect.iter().all(|effect| effects.contains(*effect)));
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
