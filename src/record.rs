//! Where every finished probe run goes: one [`Recorder`] fans it out to the
//! metrics, the status board, and a log line (the agent) or a one-line
//! summary (the demo).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::metrics::ProbeMetrics;
use crate::outcome::{ProbeKey, ProbeOutcome};
use crate::status::StatusBoard;

/// How each finished run is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineStyle {
    /// A structured `tracing` event (the agent; text or JSON per `--log-format`).
    Log,
    /// A compact human line on stderr (the demo's live view).
    Summary,
}

/// Receives every finished run of every probe.
pub(crate) struct Recorder {
    metrics: ProbeMetrics,
    board: Arc<StatusBoard>,
    style: LineStyle,
}

impl Recorder {
    /// A recorder feeding `metrics` and `board` and writing lines in `style`.
    pub(crate) fn new(
        metrics: ProbeMetrics,
        board: Arc<StatusBoard>,
        style: LineStyle,
    ) -> Recorder {
        Recorder {
            metrics,
            board,
            style,
        }
    }

    /// Announce a probe before its first run (creates its metric series).
    pub(crate) fn init(&self, key: &ProbeKey) {
        self.metrics.init_probe(key);
    }

    /// Forget a probe that stopped for good (its target is gone): its
    /// series and its status cell.
    pub(crate) fn forget(&self, key: &ProbeKey) {
        self.metrics.forget_probe(key);
        self.board.forget(key);
    }

    /// Take one finished run.
    pub(crate) fn record(&self, key: &ProbeKey, outcome: &ProbeOutcome) {
        self.metrics.observe(key, outcome);
        self.board.record(key, outcome);
        match self.style {
            LineStyle::Log => log_run(key, outcome),
            LineStyle::Summary => eprintln!("{}", summary_line(key, outcome)),
        }
    }

    /// Take one run that panicked: counted and logged with its labels.
    pub(crate) fn record_panic(&self, key: &ProbeKey, message: &str) {
        self.metrics.observe_panic(key);
        tracing::error!(region = %key.region, target = %key.target, probe = %key.probe,
            panic = %message, "probe run panicked; the probe is rebuilt and runs again after a backoff");
    }
}

/// `operation/reason` of every failure, comma-separated.
fn reasons(outcome: &ProbeOutcome) -> String {
    let labels: Vec<String> = outcome
        .failures
        .iter()
        .map(|failure| format!("{}/{}", failure.operation, failure.reason))
        .collect();
    labels.join(",")
}

fn log_run(key: &ProbeKey, outcome: &ProbeOutcome) {
    let duration_ms = outcome.duration.as_millis() as u64;
    if outcome.failures.is_empty() {
        tracing::info!(
            region = %key.region, target = %key.target, probe = %key.probe,
            result = "success", duration_ms, "probe run passed"
        );
        return;
    }
    let mut details = String::new();
    for failure in &outcome.failures {
        let _ = write!(
            details,
            "{}{}/{}: {}",
            if details.is_empty() { "" } else { "; " },
            failure.operation,
            failure.reason,
            failure.detail
        );
    }
    // Cleanup failures alone leave the run passed, yet stay in the log.
    let (result, message) = if outcome.passed() {
        ("success", "probe run passed; its cleanup failed")
    } else {
        ("failure", "probe run failed")
    };
    tracing::warn!(
        region = %key.region, target = %key.target, probe = %key.probe,
        result, duration_ms, reasons = %reasons(outcome), details = %details,
        "{message}"
    );
}

/// `12:03:04 eu-west  group_message  pass  41ms` or `... FAIL ... deliver/not_delivered`.
pub(crate) fn summary_line(key: &ProbeKey, outcome: &ProbeOutcome) -> String {
    let finished = outcome.started_at + outcome.duration;
    let stamp = humantime::format_rfc3339_seconds(finished).to_string();
    let clock = stamp.get(11..19).unwrap_or(&stamp);
    let verdict = if outcome.passed() { "pass" } else { "FAIL" };
    format!(
        "{clock} {:<9} {:<14} {verdict} {:>6}ms {}",
        key.region,
        key.probe,
        outcome.duration.as_millis(),
        reasons(outcome)
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Operation, Reason};
    use std::time::{Duration, SystemTime};

    #[test]
    fn summary_names_region_probe_verdict_and_reasons() {
        let key = ProbeKey {
            region: "ap-south".into(),
            target: "mock".into(),
            probe: "group_message".into(),
        };
        let outcome = ProbeOutcome {
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 12 + 3 * 60 + 4),
            duration: Duration::from_millis(41),
            steps: Vec::new(),
            failures: vec![Failure {
                operation: Operation::Deliver,
                reason: Reason::NotDelivered,
                detail: "x".into(),
            }],
            messages_expected: 3,
            messages_delivered: 0,
        };
        let line = summary_line(&key, &outcome);
        assert_eq!(
            line,
            "12:03:04 ap-south  group_message  FAIL     41ms deliver/not_delivered"
        );
    }
}
