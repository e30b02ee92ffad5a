//! The probe metrics (**contract** names, types and labels; see
//! `docs/metrics.md`): every probe's counters, gauges and histograms in one
//! table keyed by probe, written to `/metrics` by [`ProbeMetrics::render`].
//! A probe and target has about 150 series; a table of plain numbers holds
//! a thousand targets in a few megabytes, where a series each in the
//! `prometheus` crate took about 90 MiB, and a scrape writes the text
//! directly instead of building the crate's structures for every series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use super::BUCKETS;
use super::exposition::{BucketBounds, Exposition, Histogram, Labels};
use crate::outcome::{Operation, ProbeKey, ProbeOutcome, Reason};

/// Every series of one probe.
#[derive(Debug, Clone)]
struct ProbeSeries {
    runs_passed: u64,
    runs_failed: u64,
    /// Every (operation, reason) pair the probe can report, from 0.
    failures: BTreeMap<(Operation, Reason), u64>,
    messages_expected: u64,
    messages_delivered: u64,
    panics: u64,
    /// From the first finished run on.
    last: Option<LastRun>,
    /// From the first finished run on.
    run_duration: Option<Histogram>,
    /// Each operation from the first run that timed it on.
    operation_duration: BTreeMap<Operation, Histogram>,
}

/// What the last finished run left in the gauges.
#[derive(Debug, Clone, Copy)]
struct LastRun {
    passed: bool,
    /// Unix time it finished.
    finished: f64,
}

impl ProbeSeries {
    /// Every counter at 0, so `rate()` and `increase()` see a probe's first
    /// failure: both results of `runs_total`, every pair of
    /// `operation_failures_total` the closed sets of [`Operation`] and
    /// [`Reason`] allow, and the message and panic counters.
    fn new() -> ProbeSeries {
        let pairs = Reason::ALL.iter().flat_map(|&reason| {
            let operations = reason.operations().iter();
            operations.map(move |&operation| ((operation, reason), 0))
        });
        ProbeSeries {
            runs_passed: 0,
            runs_failed: 0,
            failures: pairs.collect(),
            messages_expected: 0,
            messages_delivered: 0,
            panics: 0,
            last: None,
            run_duration: None,
            operation_duration: BTreeMap::new(),
        }
    }

    fn observe(&mut self, outcome: &ProbeOutcome) {
        let run_duration = self.run_duration.get_or_insert_with(Histogram::default);
        run_duration.observe(BUCKETS, outcome.duration.as_secs_f64());
        for step in &outcome.steps {
            let histogram = self.operation_duration.entry(step.operation).or_default();
            histogram.observe(BUCKETS, step.duration.as_secs_f64());
        }
        for failure in &outcome.failures {
            *self
                .failures
                .entry((failure.operation, failure.reason))
                .or_default() += 1;
        }
        self.messages_expected += outcome.messages_expected;
        self.messages_delivered += outcome.messages_delivered;
        if outcome.passed() {
            self.runs_passed += 1;
        } else {
            self.runs_failed += 1;
        }
        let finished = outcome.started_at + outcome.duration;
        let finished = finished.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last = Some(LastRun {
            passed: outcome.passed(),
            finished: finished.as_secs_f64(),
        });
    }
}

type Table = BTreeMap<ProbeKey, ProbeSeries>;

/// The probe metrics of one process (cheap to clone: one shared table).
#[derive(Clone, Default)]
pub struct ProbeMetrics {
    table: Arc<Mutex<Table>>,
}

impl ProbeMetrics {
    /// Create the series of a probe before its first run, all at 0 (see
    /// `ProbeSeries::new`); a probe that already has them keeps its counts.
    pub fn init_probe(&self, key: &ProbeKey) {
        self.lock()
            .entry(key.clone())
            .or_insert_with(ProbeSeries::new);
    }

    /// Remove every series of each probe not in `kept` (a reload dropped
    /// it), so `/metrics` shows only probes that still run.
    pub(crate) fn retain_probes<'a>(&self, kept: impl IntoIterator<Item = &'a ProbeKey>) {
        let kept: std::collections::BTreeSet<&ProbeKey> = kept.into_iter().collect();
        self.lock().retain(|key, _| kept.contains(key));
    }

    /// Remove every series of the probe `key` (its target is gone).
    pub(crate) fn forget_probe(&self, key: &ProbeKey) {
        self.lock().remove(key);
    }

    /// Count one run that panicked.
    pub(crate) fn observe_panic(&self, key: &ProbeKey) {
        self.with_series(key, |series| series.panics += 1);
    }

    /// Count one finished run: all its series change at once, so a scrape
    /// that sees a failed run counted also sees its reasons and deliveries.
    pub fn observe(&self, key: &ProbeKey, outcome: &ProbeOutcome) {
        self.with_series(key, |series| series.observe(outcome));
    }

    /// Appends every probe family to `out`, families by name and each one's
    /// series by probe. The table is copied and the lock let go first: the
    /// probes' thread records runs meanwhile (a few megabytes for a
    /// thousand targets, copied in about a millisecond).
    pub(super) fn render(&self, text: &mut Exposition<'_>) {
        let table = self.lock().clone();
        if table.is_empty() {
            return;
        }
        write_gauge(text, &table, LAST_RUN, |last| last.finished);
        write_counter(text, &table, MESSAGES_DELIVERED, |s| s.messages_delivered);
        write_counter(text, &table, MESSAGES_EXPECTED, |s| s.messages_expected);
        write_operation_duration(text, &table);
        write_failures(text, &table);
        write_run_duration(text, &table);
        write_counter(text, &table, PANICS, |s| s.panics);
        write_runs(text, &table);
        write_gauge(text, &table, SUCCESS, |last| {
            f64::from(u8::from(last.passed))
        });
    }

    /// Runs `change` on the series of `key`, created at 0 first if need be.
    fn with_series(&self, key: &ProbeKey, change: impl FnOnce(&mut ProbeSeries)) {
        let mut table = self.lock();
        match table.get_mut(key) {
            Some(series) => change(series),
            None => change(table.entry(key.clone()).or_insert_with(ProbeSeries::new)),
        }
    }

    /// The table; a poisoned lock still holds usable numbers.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A family's name and help text.
type Family = (&'static str, &'static str);

const LAST_RUN: Family = (
    "chatprobe_last_run_timestamp_seconds",
    "Unix time of the last finished run.",
);
const MESSAGES_DELIVERED: Family = (
    "chatprobe_messages_delivered_total",
    "Message deliveries that arrived intact within the deadline.",
);
const MESSAGES_EXPECTED: Family = (
    "chatprobe_messages_expected_total",
    "Message deliveries the probe waited for (one per recipient device).",
);
const OPERATION_DURATION: Family = (
    "chatprobe_operation_duration_seconds",
    "Duration of one step of a probe run.",
);
const OPERATION_FAILURES: Family = (
    "chatprobe_operation_failures_total",
    "Failed steps, one per step and reason.",
);
const RUN_DURATION: Family = (
    "chatprobe_probe_duration_seconds",
    "Duration of one whole probe run.",
);
const PANICS: Family = (
    "chatprobe_probe_panics_total",
    "Probe runs that panicked (a bug of the agent); the probe is rebuilt and runs on.",
);
const RUNS: Family = (
    "chatprobe_probe_runs_total",
    "Probe runs by result (success or failure).",
);
const SUCCESS: Family = (
    "chatprobe_probe_success",
    "1 if the last run passed, else 0.",
);

/// A probe's labels, by name: probe, region, target.
fn probe_labels(key: &ProbeKey) -> [(&'static str, &str); 3] {
    [
        ("probe", &key.probe),
        ("region", &key.region),
        ("target", &key.target),
    ]
}

fn write_counter(
    text: &mut Exposition,
    table: &Table,
    (name, help): Family,
    value: impl Fn(&ProbeSeries) -> u64,
) {
    text.family(name, help, "counter");
    for (key, series) in table {
        text.sample(name, &probe_labels(key), value(series));
    }
}

fn write_runs(text: &mut Exposition, table: &Table) {
    let (name, help) = RUNS;
    text.family(name, help, "counter");
    for (key, series) in table {
        for (result, count) in [
            ("failure", series.runs_failed),
            ("success", series.runs_passed),
        ] {
            let labels = [
                ("probe", key.probe.as_str()),
                ("region", &key.region),
                ("result", result),
                ("target", &key.target),
            ];
            text.sample(name, &labels, count);
        }
    }
}

fn write_failures(text: &mut Exposition, table: &Table) {
    let (name, help) = OPERATION_FAILURES;
    text.family(name, help, "counter");
    for (key, series) in table {
        for (&(operation, reason), &count) in &series.failures {
            let labels = [
                ("operation", operation.as_str()),
                ("probe", &key.probe),
                ("reason", reason.as_str()),
                ("region", &key.region),
                ("target", &key.target),
            ];
            text.sample(name, &labels, count);
        }
    }
}

/// A gauge of the probes that finished a run (no family before any did).
fn write_gauge(
    text: &mut Exposition,
    table: &Table,
    (name, help): Family,
    value: impl Fn(&LastRun) -> f64,
) {
    let finished = || {
        table
            .iter()
            .filter_map(|(key, series)| Some((key, series.last?)))
    };
    if finished().next().is_none() {
        return;
    }
    text.family(name, help, "gauge");
    for (key, last) in finished() {
        text.sample(name, &probe_labels(key), value(&last));
    }
}

fn write_run_duration(text: &mut Exposition, table: &Table) {
    let timed = || {
        let runs = table.iter();
        runs.filter_map(|(key, series)| Some((key, series.run_duration.as_ref()?)))
    };
    if timed().next().is_none() {
        return;
    }
    let (name, help) = RUN_DURATION;
    text.family(name, help, "histogram");
    let bounds = BucketBounds::of(BUCKETS);
    for (key, histogram) in timed() {
        text.histogram(name, &probe_labels(key), &bounds, histogram);
    }
}

fn write_operation_duration(text: &mut Exposition, table: &Table) {
    if table
        .values()
        .all(|series| series.operation_duration.is_empty())
    {
        return;
    }
    let (name, help) = OPERATION_DURATION;
    text.family(name, help, "histogram");
    let bounds = BucketBounds::of(BUCKETS);
    for (key, series) in table {
        for (operation, histogram) in &series.operation_duration {
            let labels: &Labels = &[
                ("operation", operation.as_str()),
                ("probe", &key.probe),
                ("region", &key.region),
                ("target", &key.target),
            ];
            text.histogram(name, labels, &bounds, histogram);
        }
    }
}
