//! The agent's Prometheus metrics (**contract** names, types and labels; see
//! the README's "Metrics" section), kept in a registry of their own so one
//! process can hold several regions (`demo`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};

use crate::outcome::{Operation, ProbeKey, ProbeOutcome, Reason};

pub mod target_info;

pub use target_info::TargetInfo;

/// The default delivery latency objective in seconds (a probe's
/// `latency_objective`): a bucket bound, so the rules can count deliveries
/// slower than it exactly (`le="2"`) instead of interpolating a quantile.
pub const LATENCY_OBJECTIVE_BUCKET: f64 = 2.0;

/// The default `run_timeout` in seconds: a bucket bound, so runs cut by the
/// timeout land in a bucket of their own.
pub const RUN_TIMEOUT_BUCKET: f64 = 60.0;

/// Histogram buckets in seconds, 5 ms to 60 s, with bounds at
/// [`LATENCY_OBJECTIVE_BUCKET`] and [`RUN_TIMEOUT_BUCKET`] (**contract**: the
/// README's metrics table and the rules' unit tests use exactly these).
pub const BUCKETS: &[f64] = &[
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    LATENCY_OBJECTIVE_BUCKET,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    RUN_TIMEOUT_BUCKET,
];

/// The `result` label values of `chatprobe_probe_runs_total`.
const RESULTS: [&str; 2] = ["success", "failure"];

const PROBE_LABELS: &[&str] = &["region", "target", "probe"];

/// The probe metrics of one process, registered in one registry.
#[derive(Clone)]
pub struct ProbeMetrics {
    runs: IntCounterVec,
    success: IntGaugeVec,
    run_duration: HistogramVec,
    operation_duration: HistogramVec,
    operation_failures: IntCounterVec,
    messages_expected: IntCounterVec,
    messages_delivered: IntCounterVec,
    last_run: GaugeVec,
    panics: IntCounterVec,
    /// Every probe whose series were created, so a reload can remove them.
    known: Arc<Mutex<BTreeSet<ProbeKey>>>,
}

/// A registry holding `chatprobe_build_info`, the process metrics, the
/// probe metrics and `chatprobe_target_info`.
pub struct MetricsRegistry {
    /// Every metric, in the order `/metrics` shows them (by name).
    collectors: Vec<Box<dyn Collector>>,
    /// The probe metrics.
    pub probes: ProbeMetrics,
    /// `chatprobe_target_info`.
    pub targets: TargetInfo,
    /// The length of the last rendering, to size the next one's buffer.
    last_render_len: AtomicUsize,
}

impl MetricsRegistry {
    /// A fresh registry with every metric registered.
    pub fn new() -> prometheus::Result<MetricsRegistry> {
        let build_info = IntGaugeVec::new(
            Opts::new(
                "chatprobe_build_info",
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let probes = ProbeMetrics::new()?;
        let targets = TargetInfo::new()?;
        let mut collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(build_info),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
            Box::new(targets.clone()),
        ];
        collectors.extend(probes.collectors());
        collectors.sort_by_cached_key(|collector| first_name(collector.as_ref()));
        Ok(MetricsRegistry {
            collectors,
            probes,
            targets,
            last_render_len: AtomicUsize::new(0),
        })
    }

    /// Every metric in the Prometheus text format, families by name and
    /// each one's series by their label values. One collector's samples
    /// exist at a time: with a thousand targets, all of them at once took
    /// more memory than the text itself.
    pub fn render(&self) -> String {
        let last_len = self.last_render_len.load(Ordering::Relaxed);
        let mut buffer = Vec::with_capacity(last_len + last_len / 8);
        let encoder = TextEncoder::new();
        for collector in &self.collectors {
            let mut families = collector.collect();
            families.retain(|family| !family.get_metric().is_empty());
            families.sort_by(|a, b| a.name().cmp(b.name()));
            families.iter_mut().for_each(sort_by_label_values);
            if let Err(err) = encoder.encode(&families, &mut buffer) {
                return format!("# encoding metrics failed: {err}\n");
            }
        }
        self.last_render_len.store(buffer.len(), Ordering::Relaxed);
        String::from_utf8(buffer)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
    }
}

/// The first by name of the metrics `collector` describes ("" if none).
fn first_name(collector: &dyn Collector) -> String {
    let names = collector.desc().into_iter().map(|desc| &desc.fq_name);
    names.min().cloned().unwrap_or_default()
}

/// Orders `family`'s series by their label values, as a registry's gather
/// does, so a scrape reads the same from one to the next.
fn sort_by_label_values(family: &mut MetricFamily) {
    family
        .mut_metric()
        .sort_by(|a, b| label_values(a).cmp(label_values(b)));
}

/// The label values of `metric`, in its labels' order.
fn label_values(metric: &Metric) -> impl Iterator<Item = &str> {
    metric.get_label().iter().map(|pair| pair.value())
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
}

impl ProbeMetrics {
    fn new() -> prometheus::Result<ProbeMetrics> {
        let with_operation = &["region", "target", "probe", "operation"];
        let metrics = ProbeMetrics {
            runs: IntCounterVec::new(
                Opts::new(
                    "chatprobe_probe_runs_total",
                    "Probe runs by result (success or failure).",
                ),
                &["region", "target", "probe", "result"],
            )?,
            success: IntGaugeVec::new(
                Opts::new(
                    "chatprobe_probe_success",
                    "1 if the last run passed, else 0.",
                ),
                PROBE_LABELS,
            )?,
            run_duration: histogram(
                "chatprobe_probe_duration_seconds",
                "Duration of one whole probe run.",
                PROBE_LABELS,
            )?,
            operation_duration: histogram(
                "chatprobe_operation_duration_seconds",
                "Duration of one step of a probe run.",
                with_operation,
            )?,
            operation_failures: IntCounterVec::new(
                Opts::new(
                    "chatprobe_operation_failures_total",
                    "Failed steps, one per step and reason.",
                ),
                &["region", "target", "probe", "operation", "reason"],
            )?,
            messages_expected: IntCounterVec::new(
                Opts::new(
                    "chatprobe_messages_expected_total",
                    "Message deliveries the probe waited for (one per recipient device).",
                ),
                PROBE_LABELS,
            )?,
            messages_delivered: IntCounterVec::new(
                Opts::new(
                    "chatprobe_messages_delivered_total",
                    "Message deliveries that arrived intact within the deadline.",
                ),
                PROBE_LABELS,
            )?,
            last_run: GaugeVec::new(
                Opts::new(
                    "chatprobe_last_run_timestamp_seconds",
                    "Unix time of the last finished run.",
                ),
                PROBE_LABELS,
            )?,
            panics: IntCounterVec::new(
                Opts::new(
                    "chatprobe_probe_panics_total",
                    "Probe runs that panicked (a bug of the agent); the probe is rebuilt and runs on.",
                ),
                PROBE_LABELS,
            )?,
            known: Arc::default(),
        };
        Ok(metrics)
    }

    /// Each of the probe metrics, to be rendered.
    fn collectors(&self) -> [Box<dyn Collector>; 9] {
        [
            Box::new(self.runs.clone()),
            Box::new(self.success.clone()),
            Box::new(self.run_duration.clone()),
            Box::new(self.operation_duration.clone()),
            Box::new(self.operation_failures.clone()),
            Box::new(self.messages_expected.clone()),
            Box::new(self.messages_delivered.clone()),
            Box::new(self.last_run.clone()),
            Box::new(self.panics.clone()),
        ]
    }

    /// Create the series of a probe before its first run, so `rate()` and
    /// `increase()` see its first failure: both `runs_total` results, every
    /// (operation, reason) pair of `operation_failures_total` (the closed sets
    /// of [`Operation`] and [`Reason`]) and the message counters, all at 0.
    pub fn init_probe(&self, key: &ProbeKey) {
        let [region, target, probe] = labels(key);
        for result in RESULTS {
            self.runs
                .with_label_values(&[region, target, probe, result]);
        }
        for reason in Reason::ALL {
            for operation in reason.operations() {
                self.operation_failures.with_label_values(&[
                    region,
                    target,
                    probe,
                    operation.as_str(),
                    reason.as_str(),
                ]);
            }
        }
        self.messages_expected.with_label_values(&labels(key));
        self.messages_delivered.with_label_values(&labels(key));
        self.panics.with_label_values(&labels(key));
        self.known_probes().insert(key.clone());
    }

    /// Remove every series of each known probe not in `kept` (a reload
    /// dropped it), so `/metrics` shows only probes that still run.
    pub fn retain_probes<'a>(&self, kept: impl IntoIterator<Item = &'a ProbeKey>) {
        let kept: BTreeSet<&ProbeKey> = kept.into_iter().collect();
        let removed: Vec<ProbeKey> = {
            let mut known = self.known_probes();
            let removed = known.iter().filter(|key| !kept.contains(key)).cloned();
            let removed: Vec<ProbeKey> = removed.collect();
            known.retain(|key| kept.contains(key));
            removed
        };
        for key in &removed {
            self.remove_probe(key);
        }
    }

    /// Remove every series of the probe `key` (its target is gone).
    pub fn forget_probe(&self, key: &ProbeKey) {
        self.known_probes().remove(key);
        self.remove_probe(key);
    }

    /// Remove every series of one probe (absent ones are skipped).
    fn remove_probe(&self, key: &ProbeKey) {
        let labels = labels(key);
        let [region, target, probe] = labels;
        for result in RESULTS {
            let _ = self
                .runs
                .remove_label_values(&[region, target, probe, result]);
        }
        for operation in Operation::ALL {
            let operation = operation.as_str();
            let _ = self
                .operation_duration
                .remove_label_values(&[region, target, probe, operation]);
            for reason in Reason::ALL {
                let _ = self.operation_failures.remove_label_values(&[
                    region,
                    target,
                    probe,
                    operation,
                    reason.as_str(),
                ]);
            }
        }
        let _ = self.success.remove_label_values(&labels);
        let _ = self.run_duration.remove_label_values(&labels);
        let _ = self.messages_expected.remove_label_values(&labels);
        let _ = self.messages_delivered.remove_label_values(&labels);
        let _ = self.last_run.remove_label_values(&labels);
        let _ = self.panics.remove_label_values(&labels);
    }

    /// The known probes; a poisoned lock still holds a usable set.
    fn known_probes(&self) -> std::sync::MutexGuard<'_, BTreeSet<ProbeKey>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Count one run that panicked.
    pub fn observe_panic(&self, key: &ProbeKey) {
        self.panics.with_label_values(&labels(key)).inc();
    }

    /// Count one finished run.
    pub fn observe(&self, key: &ProbeKey, outcome: &ProbeOutcome) {
        let labels = labels(key);
        let [region, target, probe] = labels;
        let result = if outcome.passed() {
            "success"
        } else {
            "failure"
        };
        // The run's details first, the run itself last: a scrape that sees a
        // failed run counted also sees its reasons and deliveries.
        self.run_duration
            .with_label_values(&labels)
            .observe(outcome.duration.as_secs_f64());
        for step in &outcome.steps {
            self.operation_duration
                .with_label_values(&[region, target, probe, step.operation.as_str()])
                .observe(step.duration.as_secs_f64());
        }
        for failure in &outcome.failures {
            self.operation_failures
                .with_label_values(&[
                    region,
                    target,
                    probe,
                    failure.operation.as_str(),
                    failure.reason.as_str(),
                ])
                .inc();
        }
        self.messages_expected
            .with_label_values(&labels)
            .inc_by(outcome.messages_expected);
        self.messages_delivered
            .with_label_values(&labels)
            .inc_by(outcome.messages_delivered);
        self.runs
            .with_label_values(&[region, target, probe, result])
            .inc();
        self.success
            .with_label_values(&labels)
            .set(i64::from(outcome.passed()));
        let finished = outcome.started_at + outcome.duration;
        let unix = finished
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs_f64())
            .unwrap_or_default();
        self.last_run.with_label_values(&labels).set(unix);
    }
}

fn labels(key: &ProbeKey) -> [&str; 3] {
    [&key.region, &key.target, &key.probe]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Operation, Reason, StepTiming};
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    fn key(region: &str) -> ProbeKey {
        ProbeKey {
            region: region.into(),
            target: "mock".into(),
            probe: "group_message".into(),
        }
    }

    fn outcome(failures: Vec<Failure>) -> ProbeOutcome {
        ProbeOutcome {
            started_at: SystemTime::now(),
            duration: Duration::from_millis(40),
            steps: vec![StepTiming {
                operation: Operation::Send,
                duration: Duration::from_millis(7),
            }],
            failures,
            messages_expected: 9,
            messages_delivered: 6,
        }
    }

    #[test]
    fn runs_total_exists_for_both_results_before_any_run() {
        let metrics = MetricsRegistry::new().unwrap();
        metrics.probes.init_probe(&key("eu-west"));
        let text = metrics.render();
        for result in ["success", "failure"] {
            let series = format!(
                "chatprobe_probe_runs_total{{probe=\"group_message\",region=\"eu-west\",result=\"{result}\",target=\"mock\"}} 0"
            );
            assert!(text.contains(&series), "{text}");
        }
        assert!(text.contains("chatprobe_build_info{version=\""), "{text}");
        let failures_at_zero = text
            .lines()
            .filter(|line| line.starts_with("chatprobe_operation_failures_total{"))
            .filter(|line| line.ends_with(" 0"))
            .count();
        let reportable: usize = Reason::ALL.iter().map(|r| r.operations().len()).sum();
        assert_eq!(failures_at_zero, reportable);
        assert!(text.contains("chatprobe_operation_failures_total{operation=\"deliver\",probe=\"group_message\",reason=\"not_delivered\",region=\"eu-west\",target=\"mock\"} 0"), "{text}");
        assert!(text.contains("chatprobe_operation_failures_total{operation=\"cleanup\",probe=\"group_message\",reason=\"http_error\",region=\"eu-west\",target=\"mock\"} 0"), "{text}");
        assert!(
            !text.contains("operation=\"login\",probe=\"group_message\",reason=\"not_delivered\""),
            "{text}"
        );
    }

    #[test]
    fn families_come_by_name_and_series_by_label_values_every_scrape() {
        let metrics = MetricsRegistry::new().unwrap();
        for region in ["us-east", "ap-south", "eu-west"] {
            metrics.probes.init_probe(&key(region));
            metrics.probes.observe(&key(region), &outcome(vec![]));
        }
        metrics
            .targets
            .set_region("eu-west", [("mock", &BTreeMap::new())]);
        let text = metrics.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split(' ').next())
            .collect();
        assert!(
            families.windows(2).all(|pair| pair[0] < pair[1]),
            "{families:?}"
        );
        assert!(families.contains(&"chatprobe_target_info"), "{families:?}");
        assert!(
            families.contains(&"process_start_time_seconds"),
            "{families:?}"
        );
        let success_regions: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("chatprobe_probe_success{"))
            .filter_map(|line| line.split("region=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(success_regions, ["ap-south", "eu-west", "us-east"]);
        let without_process = |text: &str| {
            let lines = text.lines().filter(|line| !line.contains("process_"));
            lines.map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(without_process(&metrics.render()), without_process(&text));
    }

    #[test]
    fn buckets_rise_and_hold_the_objective_and_the_run_timeout() {
        assert!(BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(BUCKETS.contains(&LATENCY_OBJECTIVE_BUCKET));
        assert_eq!(BUCKETS.last(), Some(&RUN_TIMEOUT_BUCKET));
    }

    #[test]
    fn retain_probes_removes_every_series_of_the_others() {
        let metrics = MetricsRegistry::new().unwrap();
        for region in ["eu-west", "us-east"] {
            metrics.probes.init_probe(&key(region));
            metrics.probes.observe(&key(region), &outcome(vec![]));
        }
        metrics.probes.retain_probes([&key("us-east")]);
        let text = metrics.render();
        let probe_lines = || {
            text.lines().filter(|line| {
                line.starts_with("chatprobe_") && !line.starts_with("chatprobe_build_info")
            })
        };
        assert!(
            probe_lines().all(|line| line.contains("region=\"us-east\"")),
            "{text}"
        );
        assert!(
            probe_lines().any(|line| line.starts_with("chatprobe_last_run_timestamp_seconds")),
            "{text}"
        );
    }

    #[test]
    fn a_failed_run_counts_every_contract_series() {
        let metrics = MetricsRegistry::new().unwrap();
        let failure = Failure {
            operation: Operation::Deliver,
            reason: Reason::NotDelivered,
            detail: "3 of 9 missing".into(),
        };
        metrics
            .probes
            .observe(&key("eu-west"), &outcome(vec![failure]));
        metrics.probes.observe(&key("us-east"), &outcome(vec![]));
        let text = metrics.render();
        for series in [
            "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"failure\",target=\"mock\"} 1",
            "chatprobe_probe_runs_total{probe=\"group_message\",region=\"us-east\",result=\"success\",target=\"mock\"} 1",
            "chatprobe_probe_success{probe=\"group_message\",region=\"eu-west\",target=\"mock\"} 0",
            "chatprobe_probe_success{probe=\"group_message\",region=\"us-east\",target=\"mock\"} 1",
            "chatprobe_operation_failures_total{operation=\"deliver\",probe=\"group_message\",reason=\"not_delivered\",region=\"eu-west\",target=\"mock\"} 1",
            "chatprobe_operation_duration_seconds_bucket{operation=\"send\",probe=\"group_message\",region=\"eu-west\",target=\"mock\",le=\"0.01\"} 1",
            "chatprobe_probe_duration_seconds_bucket{probe=\"group_message\",region=\"eu-west\",target=\"mock\",le=\"0.005\"} 0",
            "chatprobe_probe_duration_seconds_bucket{probe=\"group_message\",region=\"eu-west\",target=\"mock\",le=\"30\"} 1",
            "chatprobe_probe_duration_seconds_bucket{probe=\"group_message\",region=\"eu-west\",target=\"mock\",le=\"60\"} 1",
            "chatprobe_operation_duration_seconds_bucket{operation=\"send\",probe=\"group_message\",region=\"eu-west\",target=\"mock\",le=\"2\"} 1",
            "chatprobe_messages_expected_total{probe=\"group_message\",region=\"eu-west\",target=\"mock\"} 9",
            "chatprobe_messages_delivered_total{probe=\"group_message\",region=\"eu-west\",target=\"mock\"} 6",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
        let last_run = text
            .lines()
            .find_map(|line| line.strip_prefix("chatprobe_last_run_timestamp_seconds{probe=\"group_message\",region=\"eu-west\",target=\"mock\"} "))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap();
        assert!(last_run > 1.6e9, "{last_run}");
    }
}
