//! A precise timer for delayed deliveries and other deferred work.
//!
//! Tokio's timer wheel has millisecond ticks and rounds up; a `delay` fault on
//! `deliver` must add exactly its delay, so one thread sleeps on a condition
//! variable (nanosecond timeouts) until the earliest deadline and runs the due
//! jobs. Jobs must be short and must not block (they push into channels).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

/// Deferred work.
pub type Job = Box<dyn FnOnce() + Send>;

struct Entry {
    deadline: Instant,
    order: u64,
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that the max-heap pops the earliest deadline (then the oldest entry).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.order).cmp(&(self.deadline, self.order))
    }
}

#[derive(Default)]
struct Queue {
    entries: BinaryHeap<Entry>,
    next_order: u64,
    stopped: bool,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Handle to the timer thread; dropping the last handle stops it (pending jobs are dropped).
pub struct Timer {
    inner: Arc<Inner>,
}

impl Timer {
    /// Start the timer thread.
    pub fn start() -> std::io::Result<Timer> {
        let inner = Arc::new(Inner::default());
        let worker = inner.clone();
        thread::Builder::new()
            .name("chatprobe-timer".into())
            .spawn(move || run(&worker))?;
        Ok(Timer { inner })
    }

    /// Run `job` on the timer thread at `deadline` (at once if it has passed).
    pub fn at(&self, deadline: Instant, job: Job) {
        let mut queue = self.lock();
        if queue.stopped {
            return;
        }
        let order = queue.next_order;
        queue.next_order += 1;
        let earliest = queue
            .entries
            .peek()
            .is_none_or(|head| deadline < head.deadline);
        queue.entries.push(Entry {
            deadline,
            order,
            job,
        });
        drop(queue);
        if earliest {
            self.inner.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let mut queue = self.lock();
        queue.stopped = true;
        queue.entries.clear();
        drop(queue);
        self.inner.wake.notify_one();
    }
}

fn run(inner: &Inner) {
    let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if queue.stopped {
            return;
        }
        let now = Instant::now();
        match queue.entries.peek().map(|head| head.deadline) {
            None => {
                queue = inner
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Some(deadline) if deadline > now => {
                queue = inner
                    .wake
                    .wait_timeout(queue, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            Some(_) => {
                if let Some(entry) = queue.entries.pop() {
                    drop(queue);
                    (entry.job)();
                    queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_run_in_deadline_order_and_not_early() {
        let timer = Timer::start().unwrap();
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (label, millis) in [("late", 30u64), ("early", 10), ("middle", 20)] {
            let tx = tx.clone();
            timer.at(
                start + Duration::from_millis(millis),
                Box::new(move || tx.send((label, Instant::now())).unwrap()),
            );
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (label, at) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            seen.push(label);
            let wanted = match label {
                "early" => 10,
                "middle" => 20,
                _ => 30,
            };
            assert!(at >= start + Duration::from_millis(wanted));
        }
        assert_eq!(seen, ["early", "middle", "late"]);
    }
}
