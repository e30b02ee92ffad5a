//! Building probes against a test backend, for the probe tests and the fault matrix.

use std::sync::Arc;
use std::time::Duration;

use chatprobe::client::Account;
use chatprobe::client::mock::MockService;
use chatprobe::outcome::{Operation, ProbeOutcome, Reason};
use chatprobe::probe::{self, Probe, ProbeKind, ProbeSetup, ProbeSpec};

/// A test spec of `kind`: timeouts short for a test yet generous for a loaded
/// machine, small groups, two devices an account.
pub fn fast_spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        name: kind.as_str().to_string(),
        kind,
        interval: Duration::from_secs(1),
        step_timeout: Duration::from_secs(2),
        delivery_deadline: Duration::from_secs(4),
        latency_objective: Duration::from_secs(2),
        group_size: 3,
        devices_per_account: 2,
        messages: 3,
    }
}

/// A probe of `spec` acting from `region` against the mock service at
/// `base`, with accounts named after `prefix` (unique per probe).
pub fn build(base: &str, region: &str, spec: ProbeSpec, prefix: &str) -> Box<dyn Probe> {
    let service = MockService::new(base, region, spec.step_timeout).expect("mock client");
    let accounts = (0..probe::accounts_needed(&spec))
        .map(|index| Account {
            user: format!("{prefix}-{}-{index}", spec.name),
            password: format!("secret-{prefix}-{index}"),
        })
        .collect();
    probe::build(ProbeSetup {
        spec,
        service: Arc::new(service),
        accounts,
    })
}

/// The (operation, reason) pairs of an outcome's failures.
pub fn failures(outcome: &ProbeOutcome) -> Vec<(Operation, Reason)> {
    outcome
        .failures
        .iter()
        .map(|failure| (failure.operation, failure.reason))
        .collect()
}

/// Fails the test, naming the failures, unless run `index` of `kind` passed
/// and every delivery it waited for arrived.
pub fn assert_passed(kind: ProbeKind, index: usize, outcome: &ProbeOutcome) {
    assert!(
        outcome.passed(),
        "{kind:?} run {index} failed: {:?} ({:?})",
        failures(outcome),
        outcome.failures
    );
    assert_eq!(
        outcome.messages_expected, outcome.messages_delivered,
        "{kind:?} run {index}: every delivery arrived"
    );
}
