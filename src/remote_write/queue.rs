//! The queue of one receiver: batches waiting to be sent, oldest first,
//! bounded in bytes (their compressed bodies). A new round that does not fit
//! pushes the oldest batches out; a batch older than the entry's `max_age`
//! is dropped before it is sent. Pure bookkeeping, no I/O or clock of its
//! own: times are passed in.

use std::collections::VecDeque;

use super::encode::Batch;

/// A batch in the queue, numbered so the sender can tell whether the batch
/// it sent is still the front one when its answer comes.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// Its number, unique in this queue.
    pub(crate) seq: u64,
    /// The batch.
    pub(crate) batch: Batch,
}

/// Samples the queue let go of, by why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Pushed out by newer batches when the queue was full.
    pub(crate) queue_full: usize,
    /// Older than `max_age` before they could be sent.
    pub(crate) too_old: usize,
}

/// Bounded batches, oldest first.
#[derive(Debug)]
pub(crate) struct Queue {
    batches: VecDeque<Queued>,
    bytes: u64,
    max_bytes: u64,
    max_age_ms: i64,
    next_seq: u64,
}

impl Queue {
    /// An empty queue of at most `max_bytes`, keeping samples `max_age_ms` at most.
    pub(crate) fn new(max_bytes: u64, max_age_ms: i64) -> Queue {
        Queue {
            batches: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age_ms,
            next_seq: 0,
        }
    }

    /// New bounds (a reload); what no longer fits goes at once, oldest first.
    pub(crate) fn set_bounds(&mut self, max_bytes: u64, max_age_ms: i64) -> Dropped {
        self.max_bytes = max_bytes;
        self.max_age_ms = max_age_ms;
        Dropped {
            queue_full: self.shrink_to(max_bytes),
            too_old: 0,
        }
    }

    /// Appends `batches` (one round, in order), dropping the oldest batches
    /// while the queue is over its bound.
    pub(crate) fn push(&mut self, batches: Vec<Batch>) -> Dropped {
        for batch in batches {
            self.bytes += body_bytes(&batch);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.batches.push_back(Queued { seq, batch });
        }
        Dropped {
            queue_full: self.shrink_to(self.max_bytes),
            too_old: 0,
        }
    }

    /// The oldest batch that is not too old at `now_ms` (those that are go
    /// first, counted), or `None` when the queue is empty.
    pub(crate) fn front(&mut self, now_ms: i64) -> (Option<Queued>, Dropped) {
        let mut dropped = Dropped::default();
        while let Some(front) = self.batches.front() {
            if now_ms.saturating_sub(front.batch.taken_ms) <= self.max_age_ms {
                return (Some(front.clone()), dropped);
            }
            dropped.too_old += self.pop_front();
        }
        (None, dropped)
    }

    /// Removes the batch `seq` when it is still the front one (it was sent,
    /// or refused for good); its samples, or `None` when it had already gone.
    pub(crate) fn complete(&mut self, seq: u64) -> Option<usize> {
        let front = self.batches.front()?;
        (front.seq == seq).then(|| self.pop_front())
    }

    /// Empties the queue; the samples it held.
    pub(crate) fn clear(&mut self) -> usize {
        let samples = self.samples();
        self.batches.clear();
        self.bytes = 0;
        samples
    }

    /// Bytes held (the batches' compressed bodies).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Samples held.
    pub(crate) fn samples(&self) -> usize {
        self.batches.iter().map(|queued| queued.batch.samples).sum()
    }

    /// Drops the oldest batches until at most `bound` bytes are held; the samples dropped.
    fn shrink_to(&mut self, bound: u64) -> usize {
        let mut dropped = 0;
        while self.bytes > bound && !self.batches.is_empty() {
            dropped += self.pop_front();
        }
        dropped
    }

    /// Removes the front batch; its samples.
    fn pop_front(&mut self) -> usize {
        match self.batches.pop_front() {
            Some(queued) => {
                self.bytes -= body_bytes(&queued.batch);
                queued.batch.samples
            }
            None => 0,
        }
    }
}

/// What a batch counts against the bound.
fn body_bytes(batch: &Batch) -> u64 {
    batch.body.len() as u64
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn batch(bytes: usize, samples: usize, taken_ms: i64) -> Batch {
        Batch {
            body: Bytes::from(vec![0; bytes]),
            samples,
            taken_ms,
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_batches_and_counts_their_samples() {
        let mut queue = Queue::new(250, 1000);
        assert_eq!(
            queue.push(vec![batch(100, 1, 0), batch(100, 2, 0)]),
            Dropped::default()
        );
        let dropped = queue.push(vec![batch(100, 4, 10)]);
        assert_eq!(
            dropped,
            Dropped {
                queue_full: 1,
                too_old: 0
            }
        );
        assert_eq!((queue.bytes(), queue.samples()), (200, 6));
        let (front, _) = queue.front(10);
        assert_eq!(front.map(|q| q.batch.samples), Some(2));
        // A batch larger than the bound does not stay.
        assert_eq!(queue.push(vec![batch(300, 8, 20)]).queue_full, 14);
        assert_eq!(queue.samples(), 0);
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn batches_older_than_max_age_are_dropped_before_sending() {
        let mut queue = Queue::new(1000, 100);
        queue.push(vec![batch(10, 1, 0), batch(10, 2, 50), batch(10, 3, 200)]);
        let (front, dropped) = queue.front(120);
        assert_eq!(dropped.too_old, 1);
        assert_eq!(front.map(|q| q.batch.samples), Some(2));
        let (front, dropped) = queue.front(1000);
        assert_eq!((front.is_none(), dropped.too_old), (true, 5));
    }

    #[test]
    fn only_the_front_batch_completes_and_new_bounds_apply_at_once() {
        let mut queue = Queue::new(1000, 1000);
        queue.push(vec![batch(10, 1, 0), batch(10, 2, 0), batch(10, 3, 0)]);
        let (front, _) = queue.front(0);
        let seq = front.map(|q| q.seq).unwrap_or(u64::MAX);
        assert_eq!(queue.complete(seq + 1), None);
        assert_eq!(queue.complete(seq), Some(1));
        assert_eq!(queue.complete(seq), None);
        assert_eq!(queue.set_bounds(10, 1000).queue_full, 2);
        assert_eq!(queue.samples(), 3);
        assert_eq!(queue.clear(), 3);
        assert_eq!(queue.bytes(), 0);
    }
}
