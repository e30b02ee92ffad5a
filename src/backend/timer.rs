//! A precise timer for delayed deliveries and other deferred work.
//!
//! Tokio's timer wheel has millisecond ticks and rounds up; a `delay` fault on
//! `deliver` must add exactly its delay. One thread sleeps on a condition
//! variable (nanosecond timeouts) until [`HANDOFF`] before the earliest
//! deadline, then hands every job due by then to the one dispatch task on the
//! runtime, which stays on its worker thread (yielding between checks) until
//! each deadline and runs the job there. So the slow part of waking up, the
//! sleeping thread and then a parked worker, happens before the deadline, and
//! the job's frames are written by the worker that ran it. One thread and one
//! task keep jobs in deadline order, so a `delay` never reorders deliveries
//! (a job added less than [`HANDOFF`] before its deadline runs after those
//! already handed over). Jobs must be short and must not block (they push
//! into channels, or take the model's lock for a `resurrect`).
//!
//! The timer holds at most its capacity of jobs (the backend's
//! `max_delayed_deliveries`): one more is refused ([`TimerFull`]) and counted,
//! and the caller decides what happens instead.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// How long before a deadline its job moves onto the runtime: more than a
/// sleeping thread and a parked worker take to wake up.
const HANDOFF: Duration = Duration::from_micros(500);

/// Deferred work.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// A job refused because the timer already holds its capacity of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the timer already holds {capacity} jobs, the backend's `max_delayed_deliveries`")]
pub(super) struct TimerFull {
    /// The capacity that was reached.
    pub(crate) capacity: usize,
}

/// Jobs waiting on the timer and jobs it refused, for `/admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(super) struct TimerStats {
    /// Jobs waiting for their deadline (handed-over ones no longer count).
    pub(crate) delayed_pending: usize,
    /// Jobs refused since start because the timer was full.
    pub(crate) delayed_refused: u64,
}

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

struct Queue {
    entries: BinaryHeap<Entry>,
    capacity: usize,
    refused: u64,
    next_order: u64,
    stopped: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            entries: BinaryHeap::new(),
            capacity,
            refused: 0,
            next_order: 0,
            stopped: false,
        }
    }

    /// Add `job` (unless stopped); whether it is now the earliest. Refused
    /// (and counted) when the queue holds its capacity already.
    fn enqueue(&mut self, deadline: Instant, job: Job) -> Result<bool, TimerFull> {
        if self.stopped {
            return Ok(false);
        }
        if self.entries.len() >= self.capacity {
            self.refused += 1;
            return Err(TimerFull {
                capacity: self.capacity,
            });
        }
        let order = self.next_order;
        self.next_order += 1;
        let earliest = self
            .entries
            .peek()
            .is_none_or(|head| deadline < head.deadline);
        self.entries.push(Entry {
            deadline,
            order,
            job,
        });
        Ok(earliest)
    }
}

/// Handle to the timer thread; dropping the last handle stops it (pending jobs are dropped).
pub(super) struct Timer {
    inner: Arc<Inner>,
}

impl Timer {
    /// Start the timer thread and its dispatch task on `runtime`, holding at
    /// most `capacity` waiting jobs.
    pub(super) fn start(runtime: &Handle, capacity: usize) -> std::io::Result<Timer> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::new(capacity)),
            wake: Condvar::new(),
        });
        let worker = inner.clone();
        let (handoff, due) = mpsc::unbounded_channel();
        runtime.spawn(dispatch(due));
        thread::Builder::new()
            .name("chatprobe-timer".into())
            .spawn(move || run(&worker, &handoff))?;
        Ok(Timer { inner })
    }

    /// Run `job` on the runtime at `deadline` (at once if it has passed);
    /// refused, and `job` dropped, when the timer holds its capacity already.
    pub(super) fn at(&self, deadline: Instant, job: Job) -> Result<(), TimerFull> {
        let earliest = self.lock().enqueue(deadline, job)?;
        if earliest {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Jobs waiting and jobs refused so far.
    pub(super) fn stats(&self) -> TimerStats {
        let queue = self.lock();
        TimerStats {
            delayed_pending: queue.entries.len(),
            delayed_refused: queue.refused,
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

/// The timer thread: hands the jobs due within [`HANDOFF`] to the dispatch
/// task, earliest first, until the timer is dropped.
fn run(inner: &Inner, handoff: &mpsc::UnboundedSender<Vec<Entry>>) {
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
                if handoff.send(due).is_err() {
                    return; // the runtime is gone
                }
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

/// The dispatch task: runs each handed-over job at its deadline, in order,
/// yielding to other tasks while it waits.
async fn dispatch(mut due: mpsc::UnboundedReceiver<Vec<Entry>>) {
    while let Some(entries) = due.recv().await {
        for entry in entries {
            while Instant::now() < entry.deadline {
                tokio::task::yield_now().await;
            }
            (entry.job)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    impl Timer {
        /// Add every job under one lock, so the timer thread sees all of them at
        /// once: no job is handed over before an earlier one is queued.
        fn at_all(&self, jobs: Vec<(Instant, Job)>) {
            let mut queue = self.lock();
            for (deadline, job) in jobs {
                queue.enqueue(deadline, job).unwrap();
            }
            drop(queue);
            self.inner.wake.notify_one();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_in_deadline_order_and_not_early() {
        let timer = Timer::start(&Handle::current(), 10_000).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        // "now" and "soon" fall into one hand-off; "late" into a later one.
        let jobs = [("late", 30_000u64), ("soon", 200), ("now", 0)]
            .into_iter()
            .map(|(label, micros)| {
                let tx = tx.clone();
                let job: Job = Box::new(move || tx.send((label, micros, Instant::now())).unwrap());
                (start + Duration::from_micros(micros), job)
            })
            .collect();
        timer.at_all(jobs);
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

    /// Jobs handed over in different batches still run in deadline order,
    /// also while other tasks keep the workers busy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn order_holds_across_hand_offs_on_a_busy_runtime() {
        let timer = Timer::start(&Handle::current(), 10_000).unwrap();
        let busy: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async {
                    let until = Instant::now() + Duration::from_millis(150);
                    while Instant::now() < until {
                        std::thread::sleep(Duration::from_micros(300));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now() + Duration::from_millis(5);
        // Inserted out of order; 100 µs apart, so they span many hand-offs.
        let mut order: Vec<u64> = (0..1000).collect();
        order.sort_by_key(|index| (index * 7919) % 1000);
        let jobs = order
            .into_iter()
            .map(|index| {
                let tx = tx.clone();
                let job: Job = Box::new(move || tx.send(index).unwrap());
                (start + Duration::from_micros(100 * index), job)
            })
            .collect();
        timer.at_all(jobs);
        let mut ran = Vec::new();
        while ran.len() < 1000 {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            ran.push(next.unwrap().unwrap());
        }
        assert!(ran.is_sorted(), "jobs ran out of deadline order");
        for task in busy {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_timer_refuses_and_counts() {
        let timer = Timer::start(&Handle::current(), 2).unwrap();
        let later = Instant::now() + Duration::from_secs(3600);
        for _ in 0..2 {
            timer.at(later, Box::new(|| ())).unwrap();
        }
        let refused = timer.at(later, Box::new(|| ())).unwrap_err();
        assert_eq!(refused, TimerFull { capacity: 2 });
        let stats = timer.stats();
        assert_eq!((stats.delayed_pending, stats.delayed_refused), (2, 1));
    }
}
