//! A precise timer for delayed deliveries and other deferred work.
//!
//! Tokio's timer wheel has millisecond ticks and rounds up; a `delay` fault on
//! `deliver` must add exactly its delay. One thread sleeps on a condition
//! variable (nanosecond timeouts) until [`HANDOFF`] before the earliest
//! deadline, then hands every job due by then to one task on the runtime, which
//! stays on its worker thread (yielding between checks) until each deadline
//! and runs the job there. So the slow part of waking up, the sleeping thread
//! and then a parked worker, happens before the deadline, and the job's
//! frames are written by the worker that ran it. Jobs must be short and must
//! not block (they push into channels).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// How long before a deadline its job moves onto the runtime: more than a
/// sleeping thread and a parked worker take to wake up.
const HANDOFF: Duration = Duration::from_micros(500);

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
    /// Start the timer thread; jobs run on `runtime`.
    pub fn start(runtime: Handle) -> std::io::Result<Timer> {
        let inner = Arc::new(Inner::default());
        let worker = inner.clone();
        thread::Builder::new()
            .name("chatprobe-timer".into())
            .spawn(move || run(&worker, &runtime))?;
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

fn run(inner: &Inner, runtime: &Handle) {
    let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if queue.stopped {
            return;
        }
        let handoff_by = Instant::now() + HANDOFF;
        match queue.entries.peek().map(|head| head.deadline) {
            None => {
                queue = inner
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Some(deadline) if deadline > handoff_by => {
                queue = inner
                    .wake
                    .wait_timeout(queue, deadline - handoff_by)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            Some(_) => {
                let due = take_due(&mut queue.entries, handoff_by);
                runtime.spawn(run_on_time(due));
            }
        }
    }
}

/// The entries due by `by`, earliest first.
fn take_due(entries: &mut BinaryHeap<Entry>, by: Instant) -> Vec<Entry> {
    let mut due = Vec::new();
    while entries.peek().is_some_and(|head| head.deadline <= by) {
        due.extend(entries.pop());
    }
    due
}

/// Runs each job at its deadline, yielding to other tasks while it waits.
async fn run_on_time(due: Vec<Entry>) {
    for entry in due {
        while Instant::now() < entry.deadline {
            tokio::task::yield_now().await;
        }
        (entry.job)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_in_deadline_order_and_not_early() {
        let timer = Timer::start(Handle::current()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        // "now" and "soon" fall into one hand-off; "late" into a later one.
        for (label, micros) in [("late", 30_000u64), ("soon", 200), ("now", 0)] {
            let tx = tx.clone();
            timer.at(
                start + Duration::from_micros(micros),
                Box::new(move || tx.send((label, micros, Instant::now())).unwrap()),
            );
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            let received = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            let (label, micros, at) = received.unwrap().unwrap();
            assert!(
                at >= start + Duration::from_micros(micros),
                "{label} ran early"
            );
            seen.push(label);
        }
        assert_eq!(seen, ["now", "soon", "late"]);
    }
}
