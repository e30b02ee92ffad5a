//! The agent's Prometheus metrics (**contract** names, types and labels; see
//! `docs/metrics.md`), kept in a registry of their own so one
//! process can hold several regions (`demo`).

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::{Metric, MetricType};

use exposition::TextSink;

mod exposition;
mod notify;
mod probes;
mod push;
mod reports;
mod target_info;

pub(crate) use exposition::{Exposition, SampleSink, SeriesRef, Value};
pub(crate) use notify::NotifyMetrics;
pub use notify::{Channel, Event, Failure};
pub(crate) use probes::ProbeMetrics;
pub(crate) use push::{PushMetrics, result as push_result};
pub use reports::Refused;
pub(crate) use reports::ReportMetrics;
pub(crate) use target_info::TargetInfo;

/// The default delivery latency objective in seconds (a probe's
/// `latency_objective`): a bucket bound, so the rules can count deliveries
/// slower than it exactly (`le="2"`) instead of interpolating a quantile.
pub(crate) const LATENCY_OBJECTIVE_BUCKET: f64 = 2.0;

/// The default `run_timeout` in seconds: a bucket bound, so runs cut by the
/// timeout land in a bucket of their own.
pub(crate) const RUN_TIMEOUT_BUCKET: f64 = 60.0;

/// Histogram buckets in seconds, 5 ms to 60 s, with bounds at
/// [`LATENCY_OBJECTIVE_BUCKET`] and [`RUN_TIMEOUT_BUCKET`] (**contract**: the
/// metrics doc and the rules' unit tests use exactly these).
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

/// Every metric the agent serves: `chatprobe_build_info`, the process
/// metrics, `chatprobe_target_info`, remote write's and the probe metrics, all written by one
/// text writer ([`exposition`]).
pub struct MetricsRegistry {
    /// The process metrics (CPU, memory, open files), read at each render.
    process: ProcessCollector,
    /// The probe metrics.
    pub probes: ProbeMetrics,
    /// `chatprobe_target_info`.
    pub(crate) targets: TargetInfo,
    /// Remote write's own metrics (none while no receiver is configured).
    pub(crate) push: PushMetrics,
    /// The length of the last rendering, to size the next one's buffer.
    last_render_len: AtomicUsize,
}

impl Default for MetricsRegistry {
    fn default() -> MetricsRegistry {
        MetricsRegistry {
            process: ProcessCollector::for_self(),
            probes: ProbeMetrics::default(),
            targets: TargetInfo::default(),
            push: PushMetrics::default(),
            last_render_len: AtomicUsize::new(0),
        }
    }
}

impl MetricsRegistry {
    /// Every metric in the Prometheus text format, as [`Self::expose`] writes them.
    pub fn render(&self) -> String {
        let last_len = self.last_render_len.load(Ordering::Relaxed);
        let mut text = String::with_capacity(last_len + last_len / 8);
        self.expose(&mut Exposition::new(&mut TextSink::new(&mut text)));
        self.last_render_len.store(text.len(), Ordering::Relaxed);
        text
    }

    /// Every metric, through `out`: build info, the process metrics, the
    /// target info, remote write's, then the probe families by name (the
    /// one exposition path of `/metrics` and of remote write).
    pub(crate) fn expose(&self, out: &mut Exposition<'_>) {
        out.family(BUILD_INFO, BUILD_INFO_HELP, "gauge");
        out.sample(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1u64);
        write_process(out, &self.process);
        self.targets.render(out);
        self.push.render(out);
        self.probes.render(out);
    }
}

impl Exposed for MetricsRegistry {
    fn render(&self) -> String {
        MetricsRegistry::render(self)
    }
}

/// What a `/metrics` endpoint serves: a whole exposition in the text format.
pub(crate) trait Exposed: Send + Sync + 'static {
    /// Every family, rendered now.
    fn render(&self) -> String;
}

/// Every metric the fleet status page serves: `chatprobe_build_info`, the
/// process metrics, the report metrics and the notification metrics.
pub(crate) struct StatusPageMetrics {
    /// The process metrics, read at each render.
    process: ProcessCollector,
    /// The report metrics.
    pub(crate) reports: ReportMetrics,
    /// The notification metrics.
    pub(crate) notify: NotifyMetrics,
}

impl StatusPageMetrics {
    /// The status page's metrics over `reports` and `notify`.
    pub(crate) fn new(reports: ReportMetrics, notify: NotifyMetrics) -> StatusPageMetrics {
        StatusPageMetrics {
            process: ProcessCollector::for_self(),
            reports,
            notify,
        }
    }
}

impl Exposed for StatusPageMetrics {
    fn render(&self) -> String {
        exposition::text(|out| {
            write_build_info(out);
            write_process(out, &self.process);
            self.reports.render(out);
            self.notify.render(out);
        })
    }
}

/// `chatprobe_build_info` (**contract**).
const BUILD_INFO: &str = "chatprobe_build_info";
const BUILD_INFO_HELP: &str = "Always 1; the version label says which build runs.";

/// `chatprobe_build_info 1` with this build's version.
fn write_build_info(out: &mut Exposition<'_>) {
    out.family(BUILD_INFO, BUILD_INFO_HELP, "gauge");
    out.sample(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1);
}

/// The process metrics as the `prometheus` crate reads them (from `/proc`),
/// written through `out` (unlabelled counters and gauges).
fn write_process(out: &mut Exposition<'_>, process: &ProcessCollector) {
    for family in process.collect() {
        let (kind, value): (&str, fn(&Metric) -> f64) = match family.get_field_type() {
            MetricType::COUNTER => ("counter", |metric| metric.get_counter().get_value()),
            _ => ("gauge", |metric| metric.get_gauge().get_value()),
        };
        out.family(family.name(), family.help(), kind);
        for metric in family.get_metric() {
            out.sample(family.name(), &[], value(metric));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason, StepTiming};
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
        let metrics = MetricsRegistry::default();
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
    fn each_family_comes_once_and_series_in_probe_order_every_scrape() {
        let metrics = MetricsRegistry::default();
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
        let distinct: std::collections::BTreeSet<&&str> = families.iter().collect();
        assert_eq!(distinct.len(), families.len(), "{families:?}");
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
        let metrics = MetricsRegistry::default();
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
        let metrics = MetricsRegistry::default();
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
