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
//! into channels).

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

impl Queue {
    /// Add `job` (unless stopped); whether it is now the earliest.
    fn enqueue(&mut self, deadline: Instant, job: Job) -> bool {
        if self.stopped {
            return false;
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
        earliest
    }
}

/// Handle to the timer thread; dropping the last handle stops it (pending jobs are dropped).
pub struct Timer {
    inner: Arc<Inner>,
}

impl Timer {
    /// Start the timer thread and its dispatch task on `runtime`.
    pub fn start(runtime: &Handle) -> std::io::Result<Timer> {
        let inner = Arc::new(Inner::default());
        let worker = inner.clone();
        let (handoff, due) = mpsc::unbounded_channel();
        runtime.spawn(dispatch(due));
        thread::Builder::new()
            .name("chatprobe-timer".into())
            .spawn(move || run(&worker, &handoff))?;
        Ok(Timer { inner })
    }

    /// Run `job` on the runtime at `deadline` (at once if it has passed).
    pub fn at(&self, deadline: Instant, job: Job) {
        let earliest = self.lock().enqueue(deadline, job);
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
                queue.enqueue(deadline, job);
            }
            drop(queue);
            self.inner.wake.notify_one();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_in_deadline_order_and_not_early() {
        let timer = Timer::start(&Handle::current()).unwrap();
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
        let timer = Timer::start(&Handle::current()).unwrap();
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
}
