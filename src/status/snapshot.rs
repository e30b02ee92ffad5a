//! What the status page shows at one moment: the value `/api/status` serves as
//! JSON and the page renders as HTML (field by field in `docs/status-page.md`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use super::health::Health;
use crate::outcome::{Failure, Operation, ProbeKey, Reason};

/// Everything the status page shows, taken at `generated_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// When the snapshot was taken.
    pub(crate) generated_at: Timestamp,
    /// The worst state of all cells (`unknown` before any run finished).
    pub overall: Health,
    /// The latest state of each probe × region × target, sorted by region, target, probe.
    pub cells: Vec<CellView>,
    /// The trend of the last hour for each probe (all regions and targets), sorted by probe.
    pub trends: Vec<TrendView>,
    /// The most recent failures, newest first.
    pub recent_failures: Vec<FailureView>,
}

impl StatusSnapshot {
    /// How many cells are in `state`.
    pub(crate) fn count(&self, state: Health) -> usize {
        self.cells.iter().filter(|cell| cell.state == state).count()
    }
}

/// The latest run of one probe in one region against one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellView {
    /// Which probe, region and target (`region`, `target`, `probe` in JSON).
    #[serde(flatten)]
    pub key: ProbeKey,
    /// The colour of the last run.
    pub state: Health,
    /// The distinct reasons the last run failed with, sorted (empty when it passed).
    pub reasons: Vec<Reason>,
    /// When the last run finished.
    pub(crate) last_run_at: Timestamp,
    /// Seconds from `last_run_at` to the snapshot.
    pub age_seconds: u64,
    /// How long the last run took, in seconds.
    pub(crate) duration_seconds: f64,
    /// Runs in a row, up to the last one, that did not pass (0 when it passed).
    pub consecutive_failures: u64,
    /// When the current streak of failed runs began (null when passing).
    pub failing_since: Option<Timestamp>,
    /// When a run last passed (null if none did yet).
    pub last_success_at: Option<Timestamp>,
    /// Message deliveries the last run waited for.
    pub(crate) messages_expected: u64,
    /// Of those, the ones that arrived intact within the deadline.
    pub(crate) messages_delivered: u64,
    /// The failures of the last run (at most a few, in the order found).
    pub(crate) failures: Vec<StepFailure>,
    /// The source has not heard of this cell for longer than it should
    /// have (only the fleet page, fed by Prometheus, sets it; omitted from
    /// JSON when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stale: bool,
}

/// One failed step, with its reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepFailure {
    /// The step that failed.
    pub(crate) operation: Operation,
    /// Why, from the closed set.
    pub(crate) reason: Reason,
    /// The reason in plain words.
    pub(crate) reason_text: &'static str,
    /// What was observed (shortened if long).
    pub detail: String,
}

impl From<&Failure> for StepFailure {
    fn from(failure: &Failure) -> Self {
        Self {
            operation: failure.operation,
            reason: failure.reason,
            reason_text: failure.reason.phrase(),
            detail: failure.detail.clone(),
        }
    }
}

/// One failure in the recent failures list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureView {
    /// When the failed run finished.
    pub(crate) at: Timestamp,
    /// Which probe, region and target (`region`, `target`, `probe` in JSON).
    #[serde(flatten)]
    pub(crate) key: ProbeKey,
    /// The failed step (`operation`, `reason`, `reason_text`, `detail` in JSON).
    #[serde(flatten)]
    pub failure: StepFailure,
}

/// Runs of one probe per time bucket over the last hour, oldest bucket first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrendView {
    /// The probe's name.
    pub probe: String,
    /// The start of the oldest bucket.
    pub start: Timestamp,
    /// The width of each bucket.
    pub bucket_seconds: u64,
    /// Runs that finished in each bucket.
    pub runs: Vec<u32>,
    /// Of those, runs that failed (red).
    pub failed: Vec<u32>,
    /// Of those, runs that were only degraded (amber).
    pub degraded: Vec<u32>,
}

impl TrendView {
    /// How many buckets, counted back from the newest, reach the oldest one
    /// with a run (0 when there is none).
    pub(crate) fn buckets_with_history(&self) -> usize {
        self.runs
            .iter()
            .position(|&runs| runs > 0)
            .map_or(0, |oldest| self.runs.len() - oldest)
    }

    /// The same trend cut to its newest `count` buckets.
    pub(crate) fn newest(&self, count: usize) -> TrendView {
        let skip = self.runs.len().saturating_sub(count);
        let tail = |series: &[u32]| series.get(skip..).unwrap_or_default().to_vec();
        let skipped_seconds = self.bucket_seconds.saturating_mul(skip as u64);
        TrendView {
            probe: self.probe.clone(),
            start: Timestamp::from_unix_seconds(
                self.start.unix_seconds().saturating_add(skipped_seconds),
            ),
            bucket_seconds: self.bucket_seconds,
            runs: tail(&self.runs),
            failed: tail(&self.failed),
            degraded: tail(&self.degraded),
        }
    }

    /// The same trend with every `factor` consecutive buckets summed into
    /// one, grouped from the newest (the oldest group counts as if padded
    /// with empty buckets).
    pub(crate) fn coarser(&self, factor: usize) -> TrendView {
        let factor = factor.max(1);
        let padding = (factor - self.runs.len() % factor) % factor;
        let sums = |series: &[u32]| -> Vec<u32> {
            let mut grouped: Vec<u32> = series
                .rchunks(factor)
                .map(|group| group.iter().fold(0u32, |sum, &n| sum.saturating_add(n)))
                .collect();
            grouped.reverse();
            grouped
        };
        let padded_seconds = self.bucket_seconds.saturating_mul(padding as u64);
        TrendView {
            probe: self.probe.clone(),
            start: Timestamp::from_unix_seconds(
                self.start.unix_seconds().saturating_sub(padded_seconds),
            ),
            bucket_seconds: self.bucket_seconds.saturating_mul(factor as u64),
            runs: sums(&self.runs),
            failed: sums(&self.failed),
            degraded: sums(&self.degraded),
        }
    }
}

/// A wall-clock time in whole seconds since the Unix epoch, clamped to years
/// 1970–9999; serialized as RFC 3339 UTC (`2026-11-23T16:25:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
    const MAX_SECONDS: u64 = 253_402_300_799;

    /// `seconds` since the epoch, clamped to what RFC 3339 can write.
    pub(crate) fn from_unix_seconds(seconds: u64) -> Self {
        Self(seconds.min(Self::MAX_SECONDS))
    }

    /// A system time, clamped to 1970–9999.
    pub(crate) fn from_system(time: SystemTime) -> Self {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Self::from_unix_seconds(seconds)
    }

    /// Seconds since the epoch.
    pub fn unix_seconds(self) -> u64 {
        self.0
    }

    /// Seconds from `earlier` to `self` (0 if `earlier` is later).
    pub(crate) fn seconds_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `2026-11-23T16:25:00Z`.
    pub(crate) fn rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.0)).to_string()
    }

    /// The time of day, `16:25:00` (UTC).
    pub(crate) fn clock(self) -> String {
        let full = self.rfc3339();
        full.get(11..19).unwrap_or(&full).to_owned()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(runs: Vec<u32>) -> TrendView {
        TrendView {
            probe: "group_message".into(),
            start: Timestamp::from_unix_seconds(1_000),
            bucket_seconds: 10,
            failed: vec![0; runs.len()],
            degraded: vec![0; runs.len()],
            runs,
        }
    }

    #[test]
    fn history_reaches_back_to_the_oldest_bucket_with_a_run() {
        assert_eq!(trend(vec![0, 0, 3, 0, 1]).buckets_with_history(), 3);
        assert_eq!(trend(vec![2, 0]).buckets_with_history(), 2);
        assert_eq!(trend(vec![0, 0]).buckets_with_history(), 0);
    }

    #[test]
    fn a_trend_cut_to_its_newest_buckets_starts_later() {
        let cut = trend(vec![1, 2, 3, 4]).newest(2);
        assert_eq!(cut.runs, [3, 4]);
        assert_eq!(cut.failed.len(), 2);
        assert_eq!(cut.start.unix_seconds(), 1_020);
        assert_eq!(trend(vec![1, 2]).newest(5).runs, [1, 2]);
    }

    #[test]
    fn a_coarser_trend_sums_buckets_from_the_newest() {
        let coarse = trend(vec![1, 2, 3, 4, 5]).coarser(2);
        assert_eq!(coarse.runs, [1, 5, 9]);
        assert_eq!(coarse.bucket_seconds, 20);
        // The oldest group is padded by one empty bucket before the start.
        assert_eq!(coarse.start.unix_seconds(), 990);
        assert_eq!(trend(vec![1, 2]).coarser(1).runs, [1, 2]);
        assert_eq!(trend(vec![1, 2]).coarser(0).runs, [1, 2]);
    }

    #[test]
    fn timestamps_print_as_rfc3339_utc() {
        let at = Timestamp::from_unix_seconds(1_795_451_100);
        assert_eq!(at.rfc3339(), "2026-11-23T16:25:00Z");
        assert_eq!(at.clock(), "16:25:00");
        assert_eq!(serde_json::json!(at), "2026-11-23T16:25:00Z");
    }

    #[test]
    fn timestamps_out_of_range_are_clamped_instead_of_panicking() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(
            Timestamp::from_system(before_epoch).rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_seconds(u64::MAX).rfc3339(),
            "9999-12-31T23:59:59Z"
        );
    }
}
