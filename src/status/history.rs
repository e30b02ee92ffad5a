//! Bounded histories for a long-running agent: a ring buffer of the newest
//! items and a fixed window of time buckets, both in constant memory.

use std::collections::VecDeque;

use super::health::Health;

/// Keeps at most `capacity` items; pushing onto a full ring drops the oldest.
#[derive(Debug, Clone)]
pub(super) struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Ring<T> {
    /// An empty ring that will hold up to `capacity` items.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds `item` as the newest, dropping the oldest if the ring is full.
    pub(super) fn push(&mut self, item: T) {
        if self.capacity == 0 {
            return;
        }
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    /// The items, newest first.
    pub(super) fn newest_first(&self) -> impl Iterator<Item = &T> {
        self.items.iter().rev()
    }
}

/// How many runs ended in one time bucket, and how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BucketCounts {
    /// Runs that finished in the bucket.
    pub(crate) runs: u32,
    /// Of those, runs with at least one failure that is not a mere degradation.
    pub(crate) failed: u32,
    /// Of those, runs whose failures were all degradations (late or partial).
    pub(crate) degraded: u32,
}

impl BucketCounts {
    /// Counts one finished run of the given health.
    fn add(&mut self, health: Health) {
        self.runs = self.runs.saturating_add(1);
        match health {
            Health::Red => self.failed = self.failed.saturating_add(1),
            Health::Amber => self.degraded = self.degraded.saturating_add(1),
            Health::Green | Health::Unknown => {}
        }
    }
}

/// One slot of a [`Trend`]: which bucket it holds now, and its counts.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Unix seconds divided by the bucket width.
    bucket: u64,
    counts: BucketCounts,
}

/// Run counts per fixed-width time bucket over a sliding window: a ring of
/// slots indexed by time, so memory stays constant however long it runs.
#[derive(Debug, Clone)]
pub(super) struct Trend {
    bucket_seconds: u64,
    slots: Vec<Slot>,
}

impl Trend {
    /// A trend of `bucket_count` buckets of `bucket_seconds` each (both at least 1).
    pub(super) fn new(bucket_seconds: u64, bucket_count: usize) -> Self {
        Self {
            bucket_seconds: bucket_seconds.max(1),
            slots: vec![Slot::default(); bucket_count.max(1)],
        }
    }

    /// Counts a run that finished at `at_unix_seconds`. A run older than what
    /// the window still holds is ignored.
    pub(super) fn record(&mut self, at_unix_seconds: u64, health: Health) {
        let bucket = at_unix_seconds / self.bucket_seconds;
        let index = self.slot_index(bucket);
        let slot = &mut self.slots[index];
        if slot.bucket < bucket {
            *slot = Slot {
                bucket,
                counts: BucketCounts::default(),
            };
        }
        if slot.bucket == bucket {
            slot.counts.add(health);
        }
    }

    /// The window ending with the bucket that holds `now_unix_seconds`: the
    /// start (unix seconds) of its oldest bucket and every bucket's counts,
    /// oldest first (empty buckets count zero).
    pub(super) fn window(&self, now_unix_seconds: u64) -> (u64, Vec<BucketCounts>) {
        let newest = now_unix_seconds / self.bucket_seconds;
        let oldest = newest.saturating_sub(self.slots.len() as u64 - 1);
        let counts = (oldest..=newest)
            .map(|bucket| {
                let slot = &self.slots[self.slot_index(bucket)];
                if slot.bucket == bucket {
                    slot.counts
                } else {
                    BucketCounts::default()
                }
            })
            .collect();
        (oldest * self.bucket_seconds, counts)
    }

    fn slot_index(&self, bucket: u64) -> usize {
        // The remainder is below `slots.len()`, so it fits in usize.
        (bucket % self.slots.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_never_grows_past_capacity_and_keeps_the_newest() {
        let mut ring = Ring::new(3);
        for item in 0..10 {
            ring.push(item);
            assert!(ring.newest_first().count() <= 3);
        }
        assert_eq!(ring.newest_first().copied().collect::<Vec<_>>(), [9, 8, 7]);
    }

    #[test]
    fn ring_below_capacity_keeps_everything_in_order() {
        let mut ring = Ring::new(50);
        assert_eq!(ring.newest_first().count(), 0);
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.newest_first().copied().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn ring_of_zero_capacity_holds_nothing() {
        let mut ring = Ring::new(0);
        ring.push(1);
        assert_eq!(ring.newest_first().count(), 0);
    }

    #[test]
    fn trend_counts_runs_per_bucket_by_health() {
        let mut trend = Trend::new(10, 6);
        trend.record(1_000, Health::Green);
        trend.record(1_009, Health::Red);
        trend.record(1_010, Health::Amber);
        trend.record(1_055, Health::Green);
        let (start, buckets) = trend.window(1_055);
        assert_eq!(start, 1_000);
        assert_eq!(buckets.len(), 6);
        let expected_first = BucketCounts {
            runs: 2,
            failed: 1,
            degraded: 0,
        };
        assert_eq!(buckets[0], expected_first);
        assert_eq!(
            buckets[1],
            BucketCounts {
                runs: 1,
                failed: 0,
                degraded: 1
            }
        );
        assert_eq!(buckets[2..5], [BucketCounts::default(); 3]);
        assert_eq!(buckets[5].runs, 1);
    }

    #[test]
    fn trend_forgets_buckets_that_slid_out_of_the_window() {
        let mut trend = Trend::new(10, 6);
        trend.record(1_000, Health::Red);
        // Same slot, one full window later: the old count must not leak in.
        trend.record(1_060, Health::Green);
        let (start, buckets) = trend.window(1_060);
        assert_eq!(start, 1_010);
        assert_eq!(buckets.iter().map(|b| b.failed).sum::<u32>(), 0);
        assert_eq!(buckets.iter().map(|b| b.runs).sum::<u32>(), 1);
        // Long after the last run, the whole window is empty.
        let (_, later) = trend.window(10_000);
        assert!(later.iter().all(|b| b.runs == 0));
    }

    #[test]
    fn trend_ignores_runs_older_than_the_slot_it_would_overwrite() {
        let mut trend = Trend::new(10, 6);
        trend.record(1_060, Health::Green);
        trend.record(1_000, Health::Red);
        let (_, buckets) = trend.window(1_060);
        assert_eq!(buckets.iter().map(|b| b.runs).sum::<u32>(), 1);
        assert_eq!(buckets.iter().map(|b| b.failed).sum::<u32>(), 0);
    }

    #[test]
    fn trend_window_near_the_epoch_does_not_underflow() {
        let trend = Trend::new(10, 6);
        let (start, buckets) = trend.window(5);
        assert_eq!(start, 0);
        assert_eq!(buckets.len(), 1);
    }
}
