//! The last hour of every cell, folded as it is read from Prometheus: what
//! the shared status page renders and `/api/status` serves (the agent's
//! schema): cells, trends per probe, recent failures.
//!
//! Nothing of the steps is kept: each cell keeps a summary (its last
//! result, its last failures, its streak), each probe a ring of trend
//! buckets and the page the newest failures, so the memory is a few
//! hundred bytes a cell however long the page runs, and each reading of
//! Prometheus asks only for the steps since the last.
//!
//! Prometheus keeps counts, not the runs themselves, so a cell's failures
//! are the failed steps counted in the last step that had any (their
//! detail says how many and when), and a trend bucket counts a failed run
//! as degraded when every failure of its step was a degradation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::samples::{CellSteps, Step};
use crate::outcome::{Operation, ProbeKey, Reason};
use crate::status::{
    CELL_FAILURES_MAX, CellView, FailureView, Health, RECENT_FAILURES, StatusSnapshot, StepFailure,
    TREND_BUCKET, TREND_WINDOW, Timestamp, TrendView,
};

/// The step the last hour is read at: one trend bucket (10 s).
pub(crate) const LIVE_STEP: u64 = TREND_BUCKET.as_secs();

/// `at` rounded up to a multiple of `step`.
pub(crate) fn aligned_up(at: u64, step: u64) -> u64 {
    at.div_ceil(step.max(1)) * step.max(1)
}

/// Runs of one trend bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    runs: u32,
    failed: u32,
    degraded: u32,
}

/// A step with failed steps: its end, its length and the failures.
type FailingStep = (u64, u64, Vec<(Operation, Reason, u32)>);

/// What one cell's steps so far add up to.
#[derive(Debug, Clone, Default)]
struct CellSummary {
    /// The end of the last step that knew the last result.
    latest_at: Option<u64>,
    /// Whether the last run passed.
    last_passed: bool,
    /// The last step with failed steps: its end, its length and the failures.
    failing_step: Option<FailingStep>,
    /// When the last run finished, by the agent's clock.
    last_run_at: Option<u64>,
    /// When Prometheus last scraped the cell.
    sampled_at: Option<u64>,
    /// The mean duration of the last step with runs.
    mean_duration: Option<f64>,
    /// Failed runs since the last step with a pass (that step's included).
    streak: u64,
    /// The end of the first step with a failed run of the streak.
    streak_since: Option<u64>,
    /// The end of the last step with a passing run.
    last_success_at: Option<u64>,
}

impl CellSummary {
    /// Takes in one step of `step_seconds`, later than the ones before.
    fn advance(&mut self, step: &Step, step_seconds: u64) {
        if let Some(passed) = step.last_passed {
            self.latest_at = Some(step.at);
            self.last_passed = passed;
        }
        if !step.failures.is_empty() {
            self.failing_step = Some((step.at, step_seconds, step.failures.clone()));
        }
        self.last_run_at = step.last_run_at.or(self.last_run_at);
        self.sampled_at = step.sampled_at.or(self.sampled_at);
        self.mean_duration = step.mean_duration.or(self.mean_duration);
        if step.passed > 0 {
            self.streak = u64::from(step.failed);
            self.streak_since = (step.failed > 0).then_some(step.at);
            self.last_success_at = Some(step.at);
        } else if step.failed > 0 {
            self.streak += u64::from(step.failed);
            self.streak_since = self.streak_since.or(Some(step.at));
        }
    }

    /// The cell as the page shows it at `now`, once a result is known.
    fn view(&self, key: &ProbeKey, now: u64, stale_after: Duration) -> Option<CellView> {
        let latest_at = self.latest_at?;
        let passed = self.last_passed;
        let (state, mut reasons, mut failures) = match (passed, &self.failing_step) {
            (true, _) => (Health::Green, Vec::new(), Vec::new()),
            (false, Some((at, seconds, failures))) => (
                health_of(failures),
                failures.iter().map(|&(_, reason, _)| reason).collect(),
                step_failures(*at, failures, *seconds),
            ),
            (false, None) => (Health::Red, Vec::new(), Vec::new()),
        };
        reasons.sort_unstable();
        reasons.dedup();
        failures.truncate(CELL_FAILURES_MAX);
        let last_run_at = self.last_run_at.unwrap_or(latest_at);
        let (consecutive_failures, failing_since) = match passed {
            true => (0, None),
            false => (self.streak, self.streak_since),
        };
        let last_success_at = match passed {
            true => Some(last_run_at),
            false => self.last_success_at,
        };
        let stale = self
            .sampled_at
            .unwrap_or(latest_at)
            .saturating_add(stale_after.as_secs())
            < now;
        Some(CellView {
            key: key.clone(),
            state,
            reasons,
            last_run_at: Timestamp::from_unix_seconds(last_run_at),
            age_seconds: now.saturating_sub(last_run_at),
            duration_seconds: self.mean_duration.unwrap_or(0.0),
            consecutive_failures,
            failing_since: failing_since.map(Timestamp::from_unix_seconds),
            last_success_at: last_success_at.map(Timestamp::from_unix_seconds),
            messages_expected: 0,
            messages_delivered: 0,
            failures,
            stale,
        })
    }
}

/// Whether a read's steps also count in the trends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trends {
    /// They do.
    Count,
    /// They do not (their runs were counted another way).
    Skip,
}

/// The last hour, folded.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastHour {
    cells: BTreeMap<ProbeKey, CellSummary>,
    /// Per probe, trend buckets by the end of each.
    trends: BTreeMap<String, BTreeMap<u64, Bucket>>,
    /// The newest failed steps, newest first.
    recent: Vec<FailureView>,
}

impl LastHour {
    /// Takes in the steps of `cells`, each of `step_seconds`, later than
    /// those taken in before.
    pub(crate) fn ingest(&mut self, cells: &[CellSteps], step_seconds: u64, trends: Trends) {
        for cell in cells {
            let summary = self.cells.entry(cell.key.clone()).or_default();
            for step in &cell.steps {
                summary.advance(step, step_seconds);
            }
            if trends == Trends::Count {
                let buckets = self.trends.entry(cell.key.probe.clone()).or_default();
                for step in &cell.steps {
                    count_step(buckets, step);
                }
            }
        }
        self.recent = newest_failures(cells, step_seconds, std::mem::take(&mut self.recent));
    }

    /// Raises the runs of `probe`'s bucket ending at `at` to at least `runs`
    /// (runs counted over every cell at once, where only some cells' steps
    /// were read).
    pub(crate) fn at_least_runs(&mut self, probe: &str, at: u64, runs: u32) {
        let bucket = self
            .trends
            .entry(probe.to_owned())
            .or_default()
            .entry(aligned_up(at, LIVE_STEP))
            .or_default();
        bucket.runs = bucket.runs.max(runs);
    }

    /// Forgets cells with no result for the last hour, and older buckets.
    pub(crate) fn prune(&mut self, now: u64) {
        let cutoff = now.saturating_sub(TREND_WINDOW.as_secs());
        self.cells
            .retain(|_, summary| summary.latest_at.is_some_and(|at| at >= cutoff));
        for buckets in self.trends.values_mut() {
            buckets.retain(|&at, _| at > cutoff);
        }
        self.trends.retain(|_, buckets| !buckets.is_empty());
    }

    /// The snapshot at `now`, with the steps of `head` (read, not yet
    /// taken in) on top; a cell Prometheus has not scraped for
    /// `stale_after` is marked stale and left out of `overall`.
    pub(crate) fn snapshot(
        &self,
        head: &[CellSteps],
        now: u64,
        stale_after: Duration,
    ) -> StatusSnapshot {
        let head_of: BTreeMap<&ProbeKey, &CellSteps> =
            head.iter().map(|cell| (&cell.key, cell)).collect();
        let keys: std::collections::BTreeSet<&ProbeKey> =
            self.cells.keys().chain(head_of.keys().copied()).collect();
        let views: Vec<CellView> = keys
            .into_iter()
            .filter_map(|key| {
                let mut summary = self.cells.get(key).cloned().unwrap_or_default();
                for step in head_of.get(key).iter().flat_map(|cell| &cell.steps) {
                    summary.advance(step, LIVE_STEP);
                }
                summary.view(key, now, stale_after)
            })
            .collect();
        let fresh = views
            .iter()
            .filter(|view| !view.stale)
            .map(|view| view.state);
        let mut trends = self.trends.clone();
        for cell in head {
            let buckets = trends.entry(cell.key.probe.clone()).or_default();
            for step in &cell.steps {
                count_step(buckets, step);
            }
        }
        StatusSnapshot {
            generated_at: Timestamp::from_unix_seconds(now),
            overall: Health::worst(fresh),
            trends: trend_views(&trends, now),
            recent_failures: newest_failures(head, LIVE_STEP, self.recent.clone()),
            cells: views,
        }
    }
}

/// Adds a step's runs to its bucket.
fn count_step(buckets: &mut BTreeMap<u64, Bucket>, step: &Step) {
    if step.passed == 0 && step.failed == 0 {
        return;
    }
    let bucket = buckets.entry(aligned_up(step.at, LIVE_STEP)).or_default();
    bucket.runs += step.passed + step.failed;
    match health_of(&step.failures) {
        Health::Amber => bucket.degraded += step.failed,
        _ => bucket.failed += step.failed,
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
fn step_failures(
    at: u64,
    failures: &[(Operation, Reason, u32)],
    step_seconds: u64,
) -> Vec<StepFailure> {
    failures
        .iter()
        .map(|&(operation, reason, count)| StepFailure {
            operation,
            reason,
            reason_text: reason.phrase(),
            detail: format!(
                "{count} failed {operation} step{} in the {step_seconds} s up to {} UTC",
                if count == 1 { "" } else { "s" },
                Timestamp::from_unix_seconds(at).clock()
            ),
        })
        .collect()
}

/// Runs per trend bucket for each probe, over all regions and targets, for
/// the hour up to the bucket holding `now`.
fn trend_views(trends: &BTreeMap<String, BTreeMap<u64, Bucket>>, now: u64) -> Vec<TrendView> {
    let bucket_seconds = LIVE_STEP;
    let count = usize::try_from(TREND_WINDOW.as_secs() / bucket_seconds).unwrap_or(1);
    let last = aligned_up(now, bucket_seconds);
    let start = last.saturating_sub(TREND_WINDOW.as_secs());
    trends
        .iter()
        .map(|(probe, buckets)| {
            let mut view = TrendView {
                probe: probe.clone(),
                start: Timestamp::from_unix_seconds(start),
                bucket_seconds,
                runs: vec![0; count],
                failed: vec![0; count],
                degraded: vec![0; count],
            };
            for (&at, bucket) in buckets.range(start + bucket_seconds..=last) {
                let index = ((at - start) / bucket_seconds) as usize - 1;
                view.runs[index] += bucket.runs;
                view.failed[index] += bucket.failed;
                view.degraded[index] += bucket.degraded;
            }
            view
        })
        .collect()
}

/// The newest [`RECENT_FAILURES`] failed steps of `cells` and `older`
/// (newest first), newest first.
fn newest_failures(
    cells: &[CellSteps],
    step_seconds: u64,
    older: Vec<FailureView>,
) -> Vec<FailureView> {
    let mut all: Vec<FailureView> = cells
        .iter()
        .flat_map(|cell| {
            cell.steps.iter().flat_map(move |step| {
                step_failures(step.at, &step.failures, step_seconds)
                    .into_iter()
                    .map(move |failure| FailureView {
                        at: Timestamp::from_unix_seconds(step.at),
                        key: cell.key.clone(),
                        failure,
                    })
            })
        })
        .collect();
    if all.is_empty() {
        return older;
    }
    all.extend(older);
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
        let mut last_hour = LastHour::default();
        last_hour.ingest(cells, LIVE_STEP, Trends::Count);
        last_hour.snapshot(&[], NOW, Duration::from_secs(60))
    }

    /// `cells` cut at `at`: the steps up to it, and the ones after.
    fn split(cells: &[CellSteps], at: u64) -> (Vec<CellSteps>, Vec<CellSteps>) {
        let part = |keep: &dyn Fn(&Step) -> bool| -> Vec<CellSteps> {
            cells
                .iter()
                .map(|cell| CellSteps {
                    key: cell.key.clone(),
                    steps: cell.steps.iter().filter(|s| keep(s)).cloned().collect(),
                })
                .collect()
        };
        (part(&|s| s.at <= at), part(&|s| s.at > at))
    }

    #[test]
    fn reading_in_pieces_or_as_a_head_on_top_shows_the_same() {
        let send = (Operation::Send, Reason::HttpError, 1);
        let cells = [
            CellSteps {
                key: key("ap-south"),
                steps: vec![
                    step(NOW - 40, 1, 0, vec![]),
                    step(NOW - 30, 0, 1, vec![send]),
                    step(NOW - 20, 1, 1, vec![send]),
                    step(NOW - 10, 0, 2, vec![send]),
                ],
            },
            CellSteps {
                key: key("eu-west"),
                steps: vec![step(NOW - 20, 1, 0, vec![]), step(NOW, 1, 0, vec![])],
            },
        ];
        let whole = board(&cells);
        let (early, late) = split(&cells, NOW - 25);
        let mut pieces = LastHour::default();
        pieces.ingest(&early, LIVE_STEP, Trends::Count);
        let with_head = pieces.snapshot(&late, NOW, Duration::from_secs(60));
        pieces.ingest(&late, LIVE_STEP, Trends::Count);
        let folded = pieces.snapshot(&[], NOW, Duration::from_secs(60));
        assert_eq!(whole, folded);
        assert_eq!(whole, with_head);
        let red = &whole.cells[0];
        // The pass at NOW - 20 ends the streak: its own failure and the two after it.
        assert_eq!(red.consecutive_failures, 3);
        assert_eq!(
            red.failing_since.map(Timestamp::unix_seconds),
            Some(NOW - 20)
        );
        assert_eq!(
            red.last_success_at.map(Timestamp::unix_seconds),
            Some(NOW - 20)
        );
    }

    #[test]
    fn cells_without_a_result_for_an_hour_are_forgotten() {
        let mut last_hour = LastHour::default();
        let old = CellSteps {
            key: key("ap-south"),
            steps: vec![step(NOW - 4000, 1, 0, vec![])],
        };
        last_hour.ingest(&[old], LIVE_STEP, Trends::Count);
        last_hour.prune(NOW);
        let snapshot = last_hour.snapshot(&[], NOW, Duration::from_secs(60));
        assert!(snapshot.cells.is_empty());
        assert!(snapshot.trends.is_empty());
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
