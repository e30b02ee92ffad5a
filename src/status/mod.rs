//! The status page: what each probe found lately, per region and target, kept
//! in memory in constant space and served as HTML (`/`) and JSON (`/api/status`).
//!
//! [`StatusBoard`] is fed one record per finished probe run and is shared by
//! the scheduler and the HTTP handlers; [`router`] serves it.

mod chart;
mod health;
mod history;
pub(crate) mod html;
mod page;
mod routes;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

pub use health::Health;
pub(crate) use page::CellHtml;
pub use page::{Frame, render as render_page, render_framed};
pub use routes::{HEADERS, router};
pub(crate) use snapshot::{
    CellView, FailureView, StatusSnapshot, StepFailure, Timestamp, TrendView,
};

use crate::outcome::{Failure, ProbeKey, ProbeOutcome, Reason};
use history::{Ring, Trend};

/// How many failures the recent failures list keeps.
pub const RECENT_FAILURES: usize = 50;
/// How far back the trend reaches.
pub(crate) const TREND_WINDOW: Duration = Duration::from_secs(60 * 60);
/// The width of one trend bucket.
pub(crate) const TREND_BUCKET: Duration = Duration::from_secs(10);
/// Failure details longer than this many characters are shortened.
pub const DETAIL_MAX_CHARS: usize = 300;
/// How many failures of a cell's last run are kept.
pub(crate) const CELL_FAILURES_MAX: usize = 8;

/// The latest state of every probe × region × target, the trend of the last
/// hour per probe and the last [`RECENT_FAILURES`] failures. Memory is
/// bounded: one cell per configured probe × region × target, one fixed-size
/// trend per probe, one ring of failures.
#[derive(Debug)]
pub struct StatusBoard {
    state: Mutex<BoardState>,
}

/// What the board holds, behind its lock.
#[derive(Debug)]
struct BoardState {
    cells: BTreeMap<ProbeKey, Cell>,
    trends: BTreeMap<String, Trend>,
    recent_failures: Ring<RecentFailure>,
}

/// The latest run of one probe × region × target, and its streak.
#[derive(Debug, Clone)]
struct Cell {
    health: Health,
    reasons: Vec<Reason>,
    last_run_at: Timestamp,
    last_duration: Duration,
    failures: Vec<Failure>,
    messages_expected: u64,
    messages_delivered: u64,
    consecutive_failures: u64,
    failing_since: Option<Timestamp>,
    last_success_at: Option<Timestamp>,
}

/// One entry of the recent failures ring.
#[derive(Debug, Clone)]
struct RecentFailure {
    at: Timestamp,
    key: ProbeKey,
    failure: Failure,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(BoardState {
                cells: BTreeMap::new(),
                trends: BTreeMap::new(),
                recent_failures: Ring::new(RECENT_FAILURES),
            }),
        }
    }

    /// Forgets the cell of the probe `key` (its target is gone); recent
    /// failures and trends stay, as history.
    pub(crate) fn forget(&self, key: &ProbeKey) {
        self.lock().cells.remove(key);
    }

    /// Forgets the cells of probes not in `kept` (removed by a reload), and
    /// the trends of probe names no kept probe has; recent failures stay, as
    /// history.
    pub fn retain_probes<'a>(&self, kept: impl IntoIterator<Item = &'a ProbeKey>) {
        let kept: BTreeSet<&ProbeKey> = kept.into_iter().collect();
        let mut state = self.lock();
        state.cells.retain(|key, _| kept.contains(key));
        state
            .trends
            .retain(|probe, _| kept.iter().any(|key| &key.probe == probe));
    }

    /// Records one finished run of the probe `key`.
    pub fn record(&self, key: &ProbeKey, outcome: &ProbeOutcome) {
        let finished = outcome
            .started_at
            .checked_add(outcome.duration)
            .unwrap_or(outcome.started_at);
        let at = Timestamp::from_system(finished);
        let failures: Vec<Failure> = outcome.failures.iter().map(shortened).collect();
        let health = Health::of(&failures);

        let mut state = self.lock();
        match state.trends.get_mut(&key.probe) {
            Some(trend) => trend.record(at.unix_seconds(), health),
            None => {
                let mut trend = new_trend();
                trend.record(at.unix_seconds(), health);
                state.trends.insert(key.probe.clone(), trend);
            }
        }
        for failure in &failures {
            state.recent_failures.push(RecentFailure {
                at,
                key: key.clone(),
                failure: failure.clone(),
            });
        }
        let cell = next_cell(state.cells.get(key), at, health, outcome, failures);
        match state.cells.get_mut(key) {
            Some(slot) => *slot = cell,
            None => {
                state.cells.insert(key.clone(), cell);
            }
        }
    }

    /// Everything the page shows, as of now.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.snapshot_at(SystemTime::now())
    }

    /// Everything the page shows, as of `now`.
    pub fn snapshot_at(&self, now: SystemTime) -> StatusSnapshot {
        let now = Timestamp::from_system(now);
        let state = self.lock();
        let cells: Vec<CellView> = state
            .cells
            .iter()
            .map(|(key, cell)| cell_view(key, cell, now))
            .collect();
        let trends = state
            .trends
            .iter()
            .map(|(probe, trend)| trend_view(probe, trend, now))
            .collect();
        let recent_failures = state
            .recent_failures
            .newest_first()
            .map(|recent| FailureView {
                at: recent.at,
                key: recent.key.clone(),
                failure: StepFailure::from(&recent.failure),
            })
            .collect();
        StatusSnapshot {
            generated_at: now,
            overall: Health::worst(cells.iter().map(|cell| cell.state)),
            cells,
            trends,
            recent_failures,
        }
    }

    /// The state, even if a thread panicked while holding the lock (every
    /// update leaves it consistent).
    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn new_trend() -> Trend {
    let bucket_seconds = TREND_BUCKET.as_secs();
    let bucket_count = TREND_WINDOW.as_secs() / bucket_seconds;
    Trend::new(bucket_seconds, usize::try_from(bucket_count).unwrap_or(1))
}

/// The failure with its detail cut to [`DETAIL_MAX_CHARS`] characters.
fn shortened(failure: &Failure) -> Failure {
    let detail = match failure.detail.char_indices().nth(DETAIL_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &failure.detail[..cut]),
        None => failure.detail.clone(),
    };
    Failure {
        operation: failure.operation,
        reason: failure.reason,
        detail,
    }
}

/// The cell after a run that finished at `at` as `health`, given the cell before it.
fn next_cell(
    previous: Option<&Cell>,
    at: Timestamp,
    health: Health,
    outcome: &ProbeOutcome,
    mut failures: Vec<Failure>,
) -> Cell {
    let passed = outcome.passed();
    let mut reasons: Vec<Reason> = failures
        .iter()
        .filter(|f| f.fails_run())
        .map(|f| f.reason)
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    let (streak, since, last_success) = match previous {
        Some(cell) => (
            cell.consecutive_failures,
            cell.failing_since,
            cell.last_success_at,
        ),
        None => (0, None, None),
    };
    failures.truncate(CELL_FAILURES_MAX);
    Cell {
        health,
        reasons,
        last_run_at: at,
        last_duration: outcome.duration,
        failures,
        messages_expected: outcome.messages_expected,
        messages_delivered: outcome.messages_delivered,
        consecutive_failures: if passed { 0 } else { streak.saturating_add(1) },
        failing_since: if passed { None } else { since.or(Some(at)) },
        last_success_at: if passed { Some(at) } else { last_success },
    }
}

fn cell_view(key: &ProbeKey, cell: &Cell, now: Timestamp) -> CellView {
    CellView {
        key: key.clone(),
        state: cell.health,
        reasons: cell.reasons.clone(),
        last_run_at: cell.last_run_at,
        age_seconds: now.seconds_since(cell.last_run_at),
        duration_seconds: cell.last_duration.as_secs_f64(),
        consecutive_failures: cell.consecutive_failures,
        failing_since: cell.failing_since,
        last_success_at: cell.last_success_at,
        messages_expected: cell.messages_expected,
        messages_delivered: cell.messages_delivered,
        failures: cell.failures.iter().map(StepFailure::from).collect(),
        stale: false,
    }
}

fn trend_view(probe: &str, trend: &Trend, now: Timestamp) -> TrendView {
    let (start, buckets) = trend.window(now.unix_seconds());
    TrendView {
        probe: probe.to_owned(),
        start: Timestamp::from_unix_seconds(start),
        bucket_seconds: TREND_BUCKET.as_secs(),
        runs: buckets.iter().map(|b| b.runs).collect(),
        failed: buckets.iter().map(|b| b.failed).collect(),
        degraded: buckets.iter().map(|b| b.degraded).collect(),
    }
}
