//! The status page's report metrics (**contract** names):
//! `chatprobe_user_reports_total{problem,region}` (counted reports),
//! `chatprobe_user_reports_refused_total{reason}` (those not counted, by
//! [`Refused`]), `chatprobe_crowd_level{problem,region}` (0 normal,
//! 1 elevated, 2 high), `chatprobe_store_errors_total` (store operations
//! that failed) and `chatprobe_store_operation_duration_seconds` (how long
//! each took), written by the same text writer as the rest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::BUCKETS;
use super::exposition::{BucketBounds, Exposition, Histogram};

label_enum! {
    /// Why a report was not counted (the `reason` label of
    /// `chatprobe_user_reports_refused_total`).
    Refused {
        Duplicate => "duplicate", "the same reporter's report of the same problem already counted within the window (answered 200, not counted)";
        RateLimited => "rate_limited", "the reporter, or everyone together, went over the rate limit (answered 429)";
        Invalid => "invalid", "a malformed request: wrong content type, too large, bad JSON or form, an unknown problem or region (answered 4xx)";
        CrossSite => "cross_site", "a browser posted it from another site (answered 403)";
        Sampled => "sampled", "this hour's cap of stored reports was reached (answered 200, not stored)";
    }
}

const COUNTED: &str = "chatprobe_user_reports_total";
const COUNTED_HELP: &str = "Reports users made that counted, by problem and region.";
const REFUSED: &str = "chatprobe_user_reports_refused_total";
const REFUSED_HELP: &str =
    "Reports that did not count, by reason: duplicate, rate_limited, invalid, cross_site, sampled.";
const CROWD: &str = "chatprobe_crowd_level";
const CROWD_HELP: &str =
    "The crowd signal of each problem and region: 0 normal, 1 elevated, 2 high.";
const STORE_ERRORS: &str = "chatprobe_store_errors_total";
const STORE_ERRORS_HELP: &str =
    "Store operations that failed or timed out (reports were answered 503).";
const STORE_SECONDS: &str = "chatprobe_store_operation_duration_seconds";
const STORE_SECONDS_HELP: &str = "How long each store operation took, failed ones included.";

/// The series behind the lock.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Counted reports by (problem, region).
    counted: BTreeMap<(String, String), u64>,
    /// Refused reports, in [`Refused::ALL`] order.
    refused: [u64; Refused::ALL.len()],
    /// The last crowd level by (problem, region).
    crowd: BTreeMap<(String, String), u8>,
    /// Failed store operations.
    store_errors: u64,
    /// Every store operation's duration.
    store_seconds: Histogram,
}

/// The report metrics, shared by the handlers and `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReportMetrics {
    series: Arc<Mutex<Series>>,
}

impl ReportMetrics {
    /// Counts a counted report.
    pub(crate) fn count(&self, problem: &str, region: &str) {
        *self
            .lock()
            .counted
            .entry((problem.to_string(), region.to_string()))
            .or_default() += 1;
    }

    /// Counts a refused report.
    pub(crate) fn refuse(&self, reason: Refused) {
        if let Some(index) = Refused::ALL.iter().position(|known| *known == reason) {
            self.lock().refused[index] += 1;
        }
    }

    /// Counts a failed store operation.
    pub(crate) fn store_error(&self) {
        self.lock().store_errors += 1;
    }

    /// Records how long a store operation took.
    pub(crate) fn store_operation(&self, seconds: f64) {
        self.lock().store_seconds.observe(BUCKETS, seconds);
    }

    /// Replaces the crowd levels with `levels` ((problem, region) → 0, 1, 2).
    pub(crate) fn set_crowd(&self, levels: BTreeMap<(String, String), u8>) {
        self.lock().crowd = levels;
    }

    /// Writes the five families; every problem and region with a crowd level
    /// has its counted series, at 0 before its first report.
    pub(super) fn render(&self, out: &mut Exposition<'_>) {
        let series = self.lock().clone();
        let mut counted = series.counted.clone();
        for key in series.crowd.keys() {
            counted.entry(key.clone()).or_default();
        }
        out.family(COUNTED, COUNTED_HELP, "counter");
        for ((problem, region), count) in &counted {
            out.sample(COUNTED, &[("problem", problem), ("region", region)], *count);
        }
        out.family(REFUSED, REFUSED_HELP, "counter");
        for (reason, count) in Refused::ALL.iter().zip(series.refused) {
            out.sample(REFUSED, &[("reason", reason.as_str())], count);
        }
        out.family(CROWD, CROWD_HELP, "gauge");
        for ((problem, region), level) in &series.crowd {
            out.sample(
                CROWD,
                &[("problem", problem), ("region", region)],
                u64::from(*level),
            );
        }
        out.family(STORE_ERRORS, STORE_ERRORS_HELP, "counter");
        out.sample(STORE_ERRORS, &[], series.store_errors);
        out.family(STORE_SECONDS, STORE_SECONDS_HELP, "histogram");
        out.histogram(
            STORE_SECONDS,
            &[],
            &BucketBounds::of(BUCKETS),
            &series.store_seconds,
        );
    }

    fn lock(&self) -> MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::text;

    #[test]
    fn every_reason_starts_at_zero_and_crowded_cells_have_counts() {
        let metrics = ReportMetrics::default();
        let render = || text(|out| metrics.render(out));
        let text = render();
        for reason in Refused::ALL {
            let series = format!("chatprobe_user_reports_refused_total{{reason=\"{reason}\"}} 0\n");
            assert!(text.contains(&series), "{text}");
        }
        metrics.set_crowd(BTreeMap::from([(
            ("cannot_add".into(), "eu-west".into()),
            2,
        )]));
        metrics.count("not_sending", "unknown");
        metrics.refuse(Refused::Sampled);
        metrics.store_operation(0.003);
        let text = render();
        for series in [
            "chatprobe_user_reports_total{problem=\"cannot_add\",region=\"eu-west\"} 0\n",
            "chatprobe_user_reports_total{problem=\"not_sending\",region=\"unknown\"} 1\n",
            "chatprobe_crowd_level{problem=\"cannot_add\",region=\"eu-west\"} 2\n",
            "chatprobe_user_reports_refused_total{reason=\"sampled\"} 1\n",
            "chatprobe_store_errors_total 0\n",
            "chatprobe_store_operation_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "chatprobe_store_operation_duration_seconds_count 1\n",
        ] {
            assert!(text.contains(series), "{series} missing from {text}");
        }
    }
}
