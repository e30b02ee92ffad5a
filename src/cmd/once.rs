//! `chatprobe once --config FILE`: run every probe once against every target
//! (all at the same time), print a table of results, steps, latencies and
//! failures, and exit 0 only if every run passed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::wiring;
use crate::outcome::{ProbeKey, ProbeOutcome};
use crate::schedule::{self, Job};

/// Longest wait for one probe's cleanup after its run.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Run every probe of the config at `config_path` once and print the table;
/// the exit status is success only if every run passed.
pub async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = wiring::load_config(config_path)?;
    let jobs = wiring::build_jobs(&config)?;
    let runs = futures_util::future::join_all(
        jobs.into_iter()
            .map(|job| run_once(job, config.run_timeout)),
    )
    .await;
    print!("{}", table(&runs));
    if runs.iter().all(|(_, outcome)| outcome.passed()) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// One bounded run, then the probe's cleanup.
async fn run_once(mut job: Job, run_timeout: Duration) -> (ProbeKey, ProbeOutcome) {
    let outcome = schedule::run_bounded(&mut job, run_timeout).await;
    if tokio::time::timeout(CLEANUP_TIMEOUT, job.probe.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(probe = %job.key.probe, "cleanup did not finish in time");
    }
    (job.key, outcome)
}

/// The result table: a row per run, an indented line per step and per failure.
pub(crate) fn table(runs: &[(ProbeKey, ProbeOutcome)]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<16} {:<12} {:<8} {:>10}",
        "PROBE", "TARGET", "RESULT", "DURATION"
    );
    for (key, outcome) in runs {
        let result = if outcome.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(
            text,
            "{:<16} {:<12} {:<8} {:>10}",
            key.probe,
            key.target,
            result,
            millis(outcome.duration)
        );
        for (operation, count, slowest, total) in step_summary(outcome) {
            let _ = writeln!(
                text,
                "    step     {operation:<16} x{count:<3} slowest {:>10}  total {:>10}",
                millis(slowest),
                millis(total)
            );
        }
        for failure in &outcome.failures {
            let _ = writeln!(
                text,
                "    failure  {:<16} {}: {}",
                failure.operation.as_str(),
                failure.reason.as_str(),
                failure.detail
            );
        }
    }
    let passed = runs.iter().filter(|(_, outcome)| outcome.passed()).count();
    let _ = writeln!(text, "{passed} of {} probe runs passed", runs.len());
    text
}

/// Per operation, in order of first appearance: how many steps, the slowest, the total.
fn step_summary(outcome: &ProbeOutcome) -> Vec<(&'static str, usize, Duration, Duration)> {
    let mut summary: Vec<(&'static str, usize, Duration, Duration)> = Vec::new();
    for step in &outcome.steps {
        let operation = step.operation.as_str();
        match summary.iter_mut().find(|row| row.0 == operation) {
            Some(row) => {
                row.1 += 1;
                row.2 = row.2.max(step.duration);
                row.3 += step.duration;
            }
            None => summary.push((operation, 1, step.duration, step.duration)),
        }
    }
    summary
}

fn millis(duration: Duration) -> String {
    format!("{:.1}ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Operation, Reason, StepTiming};
    use std::time::SystemTime;

    #[test]
    fn table_shows_steps_and_failures() {
        let key = ProbeKey {
            region: "eu-west".into(),
            target: "mock".into(),
            probe: "leave_group".into(),
        };
        let outcome = ProbeOutcome {
            started_at: SystemTime::now(),
            duration: Duration::from_micros(12_345),
            steps: vec![
                StepTiming {
                    operation: Operation::Leave,
                    duration: Duration::from_millis(3),
                },
                StepTiming {
                    operation: Operation::Leave,
                    duration: Duration::from_millis(1),
                },
            ],
            failures: vec![Failure {
                operation: Operation::Leave,
                reason: Reason::LeaveRejected,
                detail: "HTTP 503".into(),
            }],
            messages_expected: 0,
            messages_delivered: 0,
        };
        let text = table(&[(key, outcome)]);
        assert!(
            text.contains("leave_group      mock         FAIL         12.3ms"),
            "{text}"
        );
        assert!(
            text.contains(
                "    step     leave            x2   slowest      3.0ms  total      4.0ms"
            ),
            "{text}"
        );
        assert!(
            text.contains("    failure  leave            leave_rejected: HTTP 503"),
            "{text}"
        );
        assert!(text.ends_with("0 of 1 probe runs passed\n"), "{text}");
    }
}
