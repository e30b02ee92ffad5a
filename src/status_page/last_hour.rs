//! The last hour of every cell, as Prometheus holds it, turned into the
//! snapshot the shared status page renders and `/api/status` serves (the
//! agent's schema): cells, trends per probe, recent failures.
//!
//! Prometheus keeps counts, not the runs themselves, so a cell's failures
//! are the failed steps counted in the last step that had any (their
//! detail says how many and when), and a trend bucket counts a failed run
//! as degraded when every failure of its step was a degradation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::samples::{CellSteps, Step, Window};
use crate::outcome::{Operation, Reason};
use crate::status::{
    CELL_FAILURES_MAX, CellView, FailureView, Health, RECENT_FAILURES, StatusSnapshot, StepFailure,
    TREND_BUCKET, TREND_WINDOW, Timestamp, TrendView,
};

/// The window the board reads: the last hour up to `now`, one point per
/// trend bucket.
pub(crate) fn recent_window(now: u64) -> Window {
    let step = TREND_BUCKET.as_secs();
    Window {
        start: now.saturating_sub(TREND_WINDOW.as_secs() - step),
        end: now,
        step,
    }
}

/// The snapshot of `cells` (read over `window`) at `now`; a cell Prometheus
/// has not scraped for `stale_after` is marked stale and left out of `overall`.
pub(crate) fn snapshot(
    cells: &[CellSteps],
    window: Window,
    now: u64,
    stale_after: Duration,
) -> StatusSnapshot {
    let views: Vec<CellView> = cells
        .iter()
        .filter_map(|cell| cell_view(cell, window.step, now, stale_after))
        .collect();
    let fresh = views
        .iter()
        .filter(|view| !view.stale)
        .map(|view| view.state);
    StatusSnapshot {
        generated_at: Timestamp::from_unix_seconds(now),
        overall: Health::worst(fresh),
        trends: trends(cells, window),
        recent_failures: recent_failures(cells, window.step),
        cells: views,
    }
}

/// The colour of a step's failed runs: amber when every failure was a degradation.
fn health_of(failures: &[(Operation, Reason, u32)]) -> Health {
    match failures
        .iter()
        .all(|(_, reason, _)| reason.is_degradation())
    {
        true if !failures.is_empty() => Health::Amber,
        _ => Health::Red,
    }
}

/// What a failed step says in words: how many, in which seconds.
fn step_failures(step: &Step, step_seconds: u64) -> Vec<StepFailure> {
    step.failures
        .iter()
        .map(|&(operation, reason, count)| StepFailure {
            operation,
            reason,
            reason_text: reason.phrase(),
            detail: format!(
                "{count} failed {operation} step{} in the {step_seconds} s up to {} UTC",
                if count == 1 { "" } else { "s" },
                Timestamp::from_unix_seconds(step.at).clock()
            ),
        })
        .collect()
}

fn cell_view(
    cell: &CellSteps,
    step_seconds: u64,
    now: u64,
    stale_after: Duration,
) -> Option<CellView> {
    let latest = cell.steps.iter().rev().find(|s| s.last_passed.is_some())?;
    let passed = latest.last_passed == Some(true);
    let failing_step = cell.steps.iter().rev().find(|s| !s.failures.is_empty());
    let (state, mut reasons, mut failures) = match (passed, failing_step) {
        (true, _) => (Health::Green, Vec::new(), Vec::new()),
        (false, Some(step)) => (
            health_of(&step.failures),
            step.failures.iter().map(|&(_, reason, _)| reason).collect(),
            step_failures(step, step_seconds),
        ),
        (false, None) => (Health::Red, Vec::new(), Vec::new()),
    };
    reasons.sort_unstable();
    reasons.dedup();
    failures.truncate(CELL_FAILURES_MAX);
    let last_run_at = cell
        .steps
        .iter()
        .rev()
        .find_map(|s| s.last_run_at)
        .unwrap_or(latest.at);
    let sampled_at = cell.steps.iter().rev().find_map(|s| s.sampled_at);
    let (consecutive_failures, failing_since) = match passed {
        true => (0, None),
        false => failing_streak(&cell.steps),
    };
    let last_success_at = match passed {
        true => Some(last_run_at),
        false => cell.steps.iter().rev().find(|s| s.passed > 0).map(|s| s.at),
    };
    let stale = sampled_at
        .unwrap_or(latest.at)
        .saturating_add(stale_after.as_secs())
        < now;
    Some(CellView {
        key: cell.key.clone(),
        state,
        reasons,
        last_run_at: Timestamp::from_unix_seconds(last_run_at),
        age_seconds: now.saturating_sub(last_run_at),
        duration_seconds: cell
            .steps
            .iter()
            .rev()
            .find_map(|s| s.mean_duration)
            .unwrap_or(0.0),
        consecutive_failures,
        failing_since: failing_since.map(Timestamp::from_unix_seconds),
        last_success_at: last_success_at.map(Timestamp::from_unix_seconds),
        messages_expected: 0,
        messages_delivered: 0,
        failures,
        stale,
    })
}

/// Failed runs since the last pass, and the end of the first step with one.
fn failing_streak(steps: &[Step]) -> (u64, Option<u64>) {
    let mut count = 0u64;
    let mut since = None;
    for step in steps.iter().rev() {
        if step.failed > 0 {
            count += u64::from(step.failed);
            since = Some(step.at);
        }
        if step.passed > 0 {
            break;
        }
    }
    (count, since)
}

/// Runs per trend bucket for each probe, over all regions and targets.
fn trends(cells: &[CellSteps], window: Window) -> Vec<TrendView> {
    let bucket_seconds = TREND_BUCKET.as_secs();
    let buckets = usize::try_from(TREND_WINDOW.as_secs() / bucket_seconds).unwrap_or(1);
    let start = window.start.saturating_sub(window.step);
    let mut by_probe: BTreeMap<&str, TrendView> = BTreeMap::new();
    for cell in cells {
        let trend = by_probe
            .entry(&cell.key.probe)
            .or_insert_with(|| TrendView {
                probe: cell.key.probe.clone(),
                start: Timestamp::from_unix_seconds(start),
                bucket_seconds,
                runs: vec![0; buckets],
                failed: vec![0; buckets],
                degraded: vec![0; buckets],
            });
        for step in &cell.steps {
            let Some(index) = step
                .at
                .checked_sub(start + bucket_seconds)
                .map(|offset| (offset / bucket_seconds) as usize)
                .filter(|&index| index < buckets)
            else {
                continue;
            };
            trend.runs[index] += step.passed + step.failed;
            match health_of(&step.failures) {
                Health::Amber => trend.degraded[index] += step.failed,
                _ => trend.failed[index] += step.failed,
            }
        }
    }
    by_probe.into_values().collect()
}

/// The newest failed steps of all cells, newest first.
fn recent_failures(cells: &[CellSteps], step_seconds: u64) -> Vec<FailureView> {
    let mut all: Vec<FailureView> = cells
        .iter()
        .flat_map(|cell| {
            cell.steps.iter().flat_map(move |step| {
                step_failures(step, step_seconds)
                    .into_iter()
                    .map(move |failure| FailureView {
                        at: Timestamp::from_unix_seconds(step.at),
                        key: cell.key.clone(),
                        failure,
                    })
            })
        })
        .collect();
    all.sort_by_key(|failure| std::cmp::Reverse(failure.at));
    all.truncate(RECENT_FAILURES);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ProbeKey;

    const NOW: u64 = 1_795_451_100;

    fn key(region: &str) -> ProbeKey {
        ProbeKey {
            region: region.into(),
            target: "mock".into(),
            probe: "group_message".into(),
        }
    }

    fn step(at: u64, passed: u32, failed: u32, failures: Vec<(Operation, Reason, u32)>) -> Step {
        Step {
            at,
            passed,
            failed,
            last_passed: Some(failed == 0),
            failures,
            last_run_at: Some(at - 1),
            sampled_at: Some(at),
            mean_duration: Some(0.5),
        }
    }

    fn board(cells: &[CellSteps]) -> StatusSnapshot {
        snapshot(cells, recent_window(NOW), NOW, Duration::from_secs(60))
    }

    #[test]
    fn cells_take_the_last_result_and_its_reasons() {
        let send = (Operation::Send, Reason::HttpError, 2);
        let late = (Operation::Deliver, Reason::LateDelivery, 1);
        let snapshot = board(&[
            CellSteps {
                key: key("ap-south"),
                steps: vec![
                    step(NOW - 30, 1, 0, vec![]),
                    step(NOW - 20, 0, 1, vec![send]),
                    step(NOW - 10, 0, 1, vec![send]),
                ],
            },
            CellSteps {
                key: key("eu-west"),
                steps: vec![step(NOW - 10, 0, 1, vec![late])],
            },
            CellSteps {
                key: key("us-east"),
                steps: vec![step(NOW - 10, 2, 0, vec![])],
            },
        ]);
        let states: Vec<Health> = snapshot.cells.iter().map(|c| c.state).collect();
        assert_eq!(states, [Health::Red, Health::Amber, Health::Green]);
        assert_eq!(snapshot.overall, Health::Red);
        let red = &snapshot.cells[0];
        assert_eq!(red.reasons, [Reason::HttpError]);
        assert_eq!(red.consecutive_failures, 2);
        assert_eq!(
            red.failing_since.map(Timestamp::unix_seconds),
            Some(NOW - 20)
        );
        assert_eq!(
            red.last_success_at.map(Timestamp::unix_seconds),
            Some(NOW - 30)
        );
        assert!(red.failures[0].detail.starts_with("2 failed send steps"));
        assert_eq!(snapshot.recent_failures.len(), 3);
        assert_eq!(snapshot.trends.len(), 1);
        let trend = &snapshot.trends[0];
        assert_eq!(trend.runs.iter().sum::<u32>(), 6);
        assert_eq!(trend.failed.iter().sum::<u32>(), 2);
        assert_eq!(trend.degraded.iter().sum::<u32>(), 1);
        // The window ends at NOW; the steps ending at NOW - 10 fill the bucket before the last.
        assert_eq!(trend.runs[trend.runs.len() - 2..], [4, 0]);
    }

    #[test]
    fn a_cell_not_scraped_lately_is_stale_and_left_out_of_overall() {
        let snapshot = board(&[CellSteps {
            key: key("ap-south"),
            steps: vec![step(NOW - 600, 1, 0, vec![])],
        }]);
        assert!(snapshot.cells[0].stale);
        assert_eq!(snapshot.overall, Health::Unknown);
    }
}
