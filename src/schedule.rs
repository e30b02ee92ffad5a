//! The scheduler: owns timing, jitter and whole-run timeouts. Probes only
//! "run once"; each runs in a loop of its own that starts at a random point of
//! its first interval (so probes spread out), never overlaps itself (a slow
//! run delays the next, missed slots are skipped), and hands every finished
//! run to the [`Recorder`]. A first failure (a failed run after a passed one)
//! is confirmed by the next run after a short pause instead of a whole
//! interval. A run that panics (a bug of the agent) is caught,
//! logged and counted, and the loop goes on with a probe rebuilt from its
//! setup, after a backoff. Probes can be added and removed while the others
//! run on (target files changing).

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};
use crate::probe::Probe;
use crate::record::Recorder;

/// One probe the scheduler runs.
pub(crate) struct Job {
    /// Its labels.
    pub(crate) key: ProbeKey,
    /// Time between the starts of two runs (before jitter).
    pub(crate) interval: Duration,
    /// The operation a run cut off by the run timeout is reported on.
    pub(crate) timeout_operation: Operation,
    /// The probe.
    pub(crate) probe: Box<dyn Probe>,
    /// Builds the probe afresh from its setup (after a run panicked, its
    /// state may be broken).
    pub(crate) rebuild: ProbeBuilder,
}

/// Builds one probe from its setup.
pub(crate) type ProbeBuilder = Box<dyn Fn() -> Box<dyn Probe> + Send + Sync>;

/// Longest wait before a probe whose runs keep panicking runs again.
const PANIC_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Timing shared by every job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Fraction of the interval by which each wait is randomly shortened or lengthened.
    pub(crate) jitter: f64,
    /// Safety net on one whole run.
    pub(crate) run_timeout: Duration,
}

/// Whether the first round of every probe has finished (for `/readyz`).
/// Once ready, it stays ready, across reloads too.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True once every probe of the first scheduler has finished a run.
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Counts down the probes that have not finished their first run yet.
struct FirstRound {
    pending: AtomicUsize,
    readiness: Readiness,
}

impl FirstRound {
    fn finished_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.readiness.0.store(true, Ordering::Release);
        }
    }
}

/// The running probe loops.
pub(crate) struct Scheduler {
    timing: Timing,
    recorder: Arc<Recorder>,
    readiness: Readiness,
    loops: Vec<RunningLoop>,
    /// Loops of removed probes, stopping: cleaning up, then ending.
    retiring: Vec<JoinHandle<()>>,
}

/// One probe's loop and the switch that stops it.
struct RunningLoop {
    key: ProbeKey,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Scheduler {
    /// Start one loop per job (call inside a tokio runtime). With no job at
    /// all, the agent is ready at once.
    pub(crate) fn start(
        jobs: Vec<Job>,
        timing: Timing,
        recorder: Arc<Recorder>,
        readiness: Readiness,
    ) -> Scheduler {
        if jobs.is_empty() {
            readiness.0.store(true, Ordering::Release);
        }
        let mut scheduler = Scheduler {
            timing,
            recorder,
            readiness,
            loops: Vec::new(),
            retiring: Vec::new(),
        };
        scheduler.add(jobs);
        scheduler
    }

    /// Start one loop per job besides those running; each starts at a
    /// random point of its first interval.
    pub(crate) fn add(&mut self, jobs: Vec<Job>) {
        let first_round = Arc::new(FirstRound {
            pending: AtomicUsize::new(jobs.len()),
            readiness: self.readiness.clone(),
        });
        for job in jobs {
            self.recorder.init(&job.key);
            let (stop, stopped) = watch::channel(false);
            let key = job.key.clone();
            let probe_loop = ProbeLoop {
                job,
                timing: self.timing,
                recorder: Arc::clone(&self.recorder),
                stopped,
                first_round: Arc::clone(&first_round),
            };
            let handle = tokio::spawn(probe_loop.run());
            self.loops.push(RunningLoop { key, stop, handle });
        }
    }

    /// Stop the probes of the targets named in `targets`: their series and
    /// status cells go now; each cancels its run in flight and cleans up
    /// ([`Probe::shutdown`]) in the background, aborted after `grace`. The
    /// others run on.
    pub(crate) fn remove_targets(&mut self, targets: &BTreeSet<&str>, grace: Duration) {
        let (removed, kept) = std::mem::take(&mut self.loops)
            .into_iter()
            .partition(|running| targets.contains(running.key.target.as_str()));
        self.loops = kept;
        self.retiring.retain(|handle| !handle.is_finished());
        for running in removed {
            let _ = running.stop.send(true);
            self.recorder.forget(&running.key);
            let mut handle = running.handle;
            self.retiring.push(tokio::spawn(async move {
                if tokio::time::timeout(grace, &mut handle).await.is_err() {
                    handle.abort();
                    tracing::warn!(region = %running.key.region, target = %running.key.target,
                        probe = %running.key.probe, "a removed probe was still cleaning up at the drain deadline and was stopped");
                }
            }));
        }
    }

    /// How many probes run (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.loops.len()
    }

    /// Stop scheduling, cancel runs in flight, let every probe clean up
    /// ([`Probe::shutdown`]); loops still busy after `grace` are aborted.
    /// Returns how many loops had to be aborted.
    pub(crate) async fn shutdown(self, grace: Duration) -> usize {
        for running in &self.loops {
            let _ = running.stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + grace;
        let handles = self.loops.into_iter().map(|running| running.handle);
        let mut aborted = 0;
        for mut handle in handles.chain(self.retiring) {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
                aborted += 1;
            }
        }
        aborted
    }
}

/// One job's loop.
struct ProbeLoop {
    job: Job,
    timing: Timing,
    recorder: Arc<Recorder>,
    stopped: watch::Receiver<bool>,
    first_round: Arc<FirstRound>,
}

impl ProbeLoop {
    async fn run(mut self) {
        let spread = first_delay(self.job.interval, rand::rng().random());
        let mut first = true;
        let mut panics_in_a_row = 0;
        let mut last_passed = true;
        let mut wait = spread;
        while self.sleep(wait).await {
            let started = Instant::now();
            let run = AssertUnwindSafe(run_bounded(&mut self.job, self.timing.run_timeout));
            // Biased: a probe told to stop (its target removed, its series
            // forgotten) records nothing more.
            let ended = tokio::select! {
                biased;
                _ = self.stopped.wait_for(|stop| *stop) => break,
                ended = run.catch_unwind() => ended,
            };
            let mut confirm = false;
            match ended {
                Ok(outcome) => {
                    panics_in_a_row = 0;
                    self.recorder.record(&self.job.key, &outcome);
                    confirm = last_passed && !outcome.passed();
                    last_passed = outcome.passed();
                }
                Err(panic) => {
                    panics_in_a_row += 1;
                    self.recorder
                        .record_panic(&self.job.key, &panic_message(panic.as_ref()));
                    self.job.probe = (self.job.rebuild)();
                }
            }
            if std::mem::take(&mut first) {
                self.first_round.finished_one();
            }
            wait = if confirm {
                confirm_wait(self.job.interval)
            } else {
                let sample = rand::rng().random_range(-1.0..=1.0);
                next_wait(
                    self.job.interval,
                    self.timing.jitter,
                    sample,
                    started.elapsed(),
                )
            }
            .max(panic_backoff(self.job.interval, panics_in_a_row));
        }
        // A probe stopped before its first run (its target removed) does not
        // hold readiness back.
        if first {
            self.first_round.finished_one();
        }
        self.job.probe.shutdown().await;
    }

    /// Sleep `wait`; false when told to stop first.
    async fn sleep(&mut self, wait: Duration) -> bool {
        if *self.stopped.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.stopped.wait_for(|stop| *stop) => false,
        }
    }
}

/// One run, cut off after `run_timeout` and then reported as a `timeout` failure.
pub(crate) async fn run_bounded(job: &mut Job, run_timeout: Duration) -> ProbeOutcome {
    let started_at = SystemTime::now();
    let started = Instant::now();
    match tokio::time::timeout(run_timeout, job.probe.run()).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome {
            started_at,
            duration: started.elapsed(),
            steps: Vec::new(),
            failures: vec![Failure {
                operation: job.timeout_operation,
                reason: Reason::Timeout,
                detail: format!(
                    "the whole run took longer than the run timeout ({}) and was cut off",
                    humantime::format_duration(run_timeout)
                ),
            }],
            messages_expected: 0,
            messages_delivered: 0,
        },
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Least wait after the `panics_in_a_row`-th consecutive panicking run
/// (none after a run that did not panic): the interval doubled per panic
/// after the first, at most [`PANIC_BACKOFF_MAX`] (or the interval, when longer).
pub(crate) fn panic_backoff(interval: Duration, panics_in_a_row: u32) -> Duration {
    if panics_in_a_row == 0 {
        return Duration::ZERO;
    }
    let doubled = interval.saturating_mul(1 << (panics_in_a_row - 1).min(16));
    doubled.min(PANIC_BACKOFF_MAX.max(interval))
}

/// Pause before the run that confirms a first failure: a failed run that
/// follows a passed one (or starts the probe) is run again after this, not a
/// whole interval later, so the two failed runs the alert rules want take
/// about one run's time (see `docs/alerts.md`, "Detection budget").
const CONFIRM_PAUSE: Duration = Duration::from_millis(500);

/// Wait before the run that confirms a first failure: [`CONFIRM_PAUSE`], or
/// the interval when that is shorter.
pub(crate) fn confirm_wait(interval: Duration) -> Duration {
    CONFIRM_PAUSE.min(interval)
}

/// Delay before a probe's first run: `fraction` (in `[0, 1)`) of its interval,
/// so the probes of an agent start spread over their first interval.
pub(crate) fn first_delay(interval: Duration, fraction: f64) -> Duration {
    interval.mul_f64(fraction.clamp(0.0, 1.0))
}

/// Wait after a run that took `elapsed`: the interval stretched by
/// `jitter * sample` (`sample` in `[-1, 1]`), counted from the run's start.
/// A run longer than that skips the slots it overran: the next run starts at
/// the next slot boundary, so runs never pile up.
pub(crate) fn next_wait(
    interval: Duration,
    jitter: f64,
    sample: f64,
    elapsed: Duration,
) -> Duration {
    let jittered = interval.mul_f64(1.0 + jitter * sample.clamp(-1.0, 1.0));
    if elapsed < jittered {
        return jittered - elapsed;
    }
    let interval_nanos = interval.as_nanos().max(1);
    let into_slot = elapsed.as_nanos() % interval_nanos;
    Duration::from_nanos(u64::try_from(interval_nanos - into_slot).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsRegistry;
    use crate::record::LineStyle;
    use async_trait::async_trait;
    use std::sync::Mutex;

    #[test]
    fn waits_stay_within_the_jitter_band() {
        let interval = Duration::from_secs(10);
        let ran = Duration::from_secs(1);
        assert_eq!(next_wait(interval, 0.1, -1.0, ran), Duration::from_secs(8));
        assert_eq!(next_wait(interval, 0.1, 1.0, ran), Duration::from_secs(10));
        assert_eq!(next_wait(interval, 0.0, 0.7, ran), Duration::from_secs(9));
        assert_eq!(next_wait(interval, 0.1, 5.0, ran), Duration::from_secs(10));
    }

    #[test]
    fn an_overrun_skips_to_the_next_slot() {
        let interval = Duration::from_secs(10);
        let overran = Duration::from_secs(23);
        assert_eq!(
            next_wait(interval, 0.1, 0.0, overran),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn first_runs_spread_over_the_first_interval() {
        let interval = Duration::from_secs(30);
        assert_eq!(first_delay(interval, 0.0), Duration::ZERO);
        assert_eq!(first_delay(interval, 0.5), Duration::from_secs(15));
        assert!(first_delay(interval, 0.999) < interval);
    }

    /// A probe that records how many of its runs overlap and how long each takes.
    struct SlowProbe {
        run_time: Duration,
        in_flight: Arc<AtomicUsize>,
        max_in_flight: Arc<AtomicUsize>,
        starts: Arc<Mutex<Vec<Instant>>>,
        shut_down: Arc<AtomicBool>,
        /// The runs (counted from 0) that fail, with a `send` error.
        fails: &'static [usize],
    }

    #[async_trait]
    impl Probe for SlowProbe {
        async fn run(&mut self) -> ProbeOutcome {
            let started_at = SystemTime::now();
            let run = {
                let mut starts = self.starts.lock().unwrap();
                starts.push(Instant::now());
                starts.len() - 1
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            // Decrement even when the run is cancelled mid-sleep.
            struct Leave<'a>(&'a AtomicUsize);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _leave = Leave(&self.in_flight);
            tokio::time::sleep(self.run_time).await;
            ProbeOutcome {
                started_at,
                duration: self.run_time,
                steps: Vec::new(),
                failures: self
                    .fails
                    .contains(&run)
                    .then(|| Failure {
                        operation: Operation::Send,
                        reason: Reason::HttpError,
                        detail: "503".into(),
                    })
                    .into_iter()
                    .collect(),
                messages_expected: 0,
                messages_delivered: 0,
            }
        }

        async fn shutdown(&mut self) {
            self.shut_down.store(true, Ordering::SeqCst);
        }
    }

    /// A job of `probe` (which never panics) every `interval`.
    fn job_of(probe: SlowProbe, interval: Duration) -> Job {
        Job {
            key: key(),
            interval,
            timeout_operation: Operation::Deliver,
            probe: Box::new(probe),
            rebuild: Box::new(|| unreachable!("the probe never panics")),
        }
    }

    fn key() -> ProbeKey {
        ProbeKey {
            region: "eu-west".into(),
            target: "mock".into(),
            probe: "slow".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_never_overlaps_itself_and_times_out() {
        let metrics = MetricsRegistry::default();
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::new(crate::status::StatusBoard::new()),
            LineStyle::Log,
        ));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let shut_down = Arc::new(AtomicBool::new(false));
        let probe = SlowProbe {
            run_time: Duration::from_secs(3600),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::clone(&max_in_flight),
            starts: Arc::clone(&starts),
            shut_down: Arc::clone(&shut_down),
            fails: &[],
        };
        let job = job_of(probe, Duration::from_secs(1));
        let timing = Timing {
            jitter: 0.1,
            run_timeout: Duration::from_millis(2500),
        };
        let readiness = Readiness::default();
        let scheduler = Scheduler::start(vec![job], timing, recorder, readiness.clone());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(readiness.is_ready());
        assert_eq!(scheduler.shutdown(Duration::from_secs(5)).await, 0);
        assert!(shut_down.load(Ordering::SeqCst));
        assert_eq!(max_in_flight.load(Ordering::SeqCst), 1);
        let starts = starts.lock().unwrap();
        assert!((9..=12).contains(&starts.len()), "{} runs", starts.len());
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(2500));
        }
        let text = metrics.render();
        let timeouts: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("chatprobe_operation_failures_total{operation=\"deliver\",probe=\"slow\",reason=\"timeout\",region=\"eu-west\",target=\"mock\"} "))
            .and_then(|value| value.parse().ok())
            .unwrap();
        // Every run timed out; the last may have been cancelled by the shutdown.
        assert!(
            timeouts == starts.len() || timeouts + 1 == starts.len(),
            "{timeouts} of {}",
            starts.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runs_follow_the_interval_within_the_jitter() {
        let metrics = MetricsRegistry::default();
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::new(crate::status::StatusBoard::new()),
            LineStyle::Log,
        ));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let probe = SlowProbe {
            run_time: Duration::from_millis(100),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            starts: Arc::clone(&starts),
            shut_down: Arc::new(AtomicBool::new(false)),
            fails: &[],
        };
        let job = job_of(probe, Duration::from_secs(10));
        let timing = Timing {
            jitter: 0.2,
            run_timeout: Duration::from_secs(5),
        };
        let begin = Instant::now();
        let scheduler = Scheduler::start(vec![job], timing, recorder, Readiness::default());
        tokio::time::sleep(Duration::from_secs(200)).await;
        scheduler.shutdown(Duration::from_secs(5)).await;
        let starts = starts.lock().unwrap();
        // Tokio's timers fire on whole milliseconds, rounding a deadline up:
        // a wait drawn at the very edge of its band ends up to 1 ms past it.
        let resolution = Duration::from_millis(1);
        let first = starts[0] - begin;
        assert!(first < Duration::from_secs(10) + resolution, "{first:?}");
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(8) && gap <= Duration::from_secs(12) + resolution,
                "{gap:?}"
            );
        }
        assert!((16..=25).contains(&starts.len()), "{} runs", starts.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_failure_is_confirmed_after_a_short_pause() {
        let metrics = MetricsRegistry::default();
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::new(crate::status::StatusBoard::new()),
            LineStyle::Log,
        ));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let run_time = Duration::from_millis(100);
        // Pass, fail (confirmed), fail, fail, pass, fail (confirmed: it passes).
        let probe = SlowProbe {
            run_time,
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            starts: Arc::clone(&starts),
            shut_down: Arc::new(AtomicBool::new(false)),
            fails: &[1, 2, 3, 5],
        };
        let interval = Duration::from_secs(10);
        let job = Job {
            key: key(),
            interval,
            timeout_operation: Operation::Deliver,
            probe: Box::new(probe),
            rebuild: Box::new(|| unreachable!("the probe never panics")),
        };
        let timing = Timing {
            jitter: 0.0,
            run_timeout: Duration::from_secs(5),
        };
        let scheduler = Scheduler::start(vec![job], timing, recorder, Readiness::default());
        tokio::time::sleep(Duration::from_secs(75)).await;
        scheduler.shutdown(Duration::from_secs(5)).await;
        let starts = starts.lock().unwrap();
        let gaps: Vec<Duration> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        let confirmed = run_time + CONFIRM_PAUSE;
        let resolution = Duration::from_millis(1);
        let expected = [interval, confirmed, interval, interval, interval, confirmed];
        assert!(gaps.len() >= expected.len(), "{gaps:?}");
        for (gap, want) in gaps.iter().zip(expected) {
            assert!(*gap >= want && *gap <= want + resolution, "{gaps:?}");
        }
    }

    /// A job of a [`SlowProbe`] on `target` taking 100 ms a run, every second;
    /// its run starts and whether it was shut down.
    fn quick_job(target: &str) -> (Job, Arc<Mutex<Vec<Instant>>>, Arc<AtomicBool>) {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let shut_down = Arc::new(AtomicBool::new(false));
        let probe = SlowProbe {
            run_time: Duration::from_millis(100),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            starts: Arc::clone(&starts),
            shut_down: Arc::clone(&shut_down),
            fails: &[],
        };
        let job = Job {
            key: ProbeKey {
                target: target.into(),
                ..key()
            },
            interval: Duration::from_secs(1),
            timeout_operation: Operation::Deliver,
            probe: Box::new(probe),
            rebuild: Box::new(|| unreachable!("the probe never panics")),
        };
        (job, starts, shut_down)
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_target_stops_and_cleans_up_while_the_others_run_on() {
        let metrics = MetricsRegistry::default();
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::new(crate::status::StatusBoard::new()),
            LineStyle::Log,
        ));
        let (job_a, starts_a, shut_a) = quick_job("a");
        let (job_b, starts_b, shut_b) = quick_job("b");
        let timing = Timing {
            jitter: 0.0,
            run_timeout: Duration::from_secs(5),
        };
        let mut scheduler =
            Scheduler::start(vec![job_a, job_b], timing, recorder, Readiness::default());
        tokio::time::sleep(Duration::from_secs(5)).await;
        scheduler.remove_targets(&BTreeSet::from(["a"]), Duration::from_secs(5));
        assert_eq!(scheduler.len(), 1);
        assert!(!metrics.render().contains("target=\"a\""));
        let (ran_a, ran_b) = (
            starts_a.lock().unwrap().len(),
            starts_b.lock().unwrap().len(),
        );
        let (job_c, starts_c, _) = quick_job("c");
        scheduler.add(vec![job_c]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            shut_a.load(Ordering::SeqCst),
            "the removed probe cleaned up"
        );
        assert!(!shut_b.load(Ordering::SeqCst));
        assert_eq!(starts_a.lock().unwrap().len(), ran_a);
        assert!(starts_b.lock().unwrap().len() >= ran_b + 4);
        assert!(starts_c.lock().unwrap().len() >= 4, "the added probe runs");
        let text = metrics.render();
        assert!(!text.contains("target=\"a\""), "{text}");
        assert!(text.contains("target=\"c\""), "{text}");
        assert_eq!(scheduler.shutdown(Duration::from_secs(5)).await, 0);
        assert!(shut_b.load(Ordering::SeqCst));
    }

    /// A probe whose every run panics while `panicking` holds, and passes after.
    struct PanickyProbe {
        runs: Arc<AtomicUsize>,
        panicking: Arc<AtomicBool>,
    }

    #[async_trait]
    impl Probe for PanickyProbe {
        async fn run(&mut self) -> ProbeOutcome {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.panicking.load(Ordering::SeqCst) {
                panic!("a bug in the probe");
            }
            ProbeOutcome {
                started_at: SystemTime::now(),
                duration: Duration::ZERO,
                steps: Vec::new(),
                failures: Vec::new(),
                messages_expected: 0,
                messages_delivered: 0,
            }
        }

        async fn shutdown(&mut self) {}
    }

    fn metric(text: &str, name: &str) -> u64 {
        let prefix = format!("{name}{{probe=\"slow\",region=\"eu-west\",target=\"mock\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_run_is_counted_and_the_probe_rebuilt_after_a_backoff() {
        let metrics = MetricsRegistry::default();
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::new(crate::status::StatusBoard::new()),
            LineStyle::Log,
        ));
        let runs = Arc::new(AtomicUsize::new(0));
        let panicking = Arc::new(AtomicBool::new(true));
        let builds = Arc::new(AtomicUsize::new(0));
        let build = {
            let (runs, panicking, builds) = (runs.clone(), panicking.clone(), builds.clone());
            move || -> Box<dyn Probe> {
                builds.fetch_add(1, Ordering::SeqCst);
                Box::new(PanickyProbe {
                    runs: Arc::clone(&runs),
                    panicking: Arc::clone(&panicking),
                })
            }
        };
        let job = Job {
            key: key(),
            interval: Duration::from_secs(1),
            timeout_operation: Operation::Deliver,
            probe: build(),
            rebuild: Box::new(build),
        };
        let timing = Timing {
            jitter: 0.0,
            run_timeout: Duration::from_secs(5),
        };
        let scheduler = Scheduler::start(vec![job], timing, recorder, Readiness::default());
        assert_eq!(metric(&metrics.render(), "chatprobe_probe_panics_total"), 0);
        // Panics in a row back off 1, 2, 4, 8, 16 s: five runs in the first 31 s or so.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let panicked = runs.load(Ordering::SeqCst);
        assert!((4..=5).contains(&panicked), "{panicked} runs");
        assert_eq!(builds.load(Ordering::SeqCst), panicked + 1);
        panicking.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(scheduler.shutdown(Duration::from_secs(5)).await, 0);
        let text = metrics.render();
        assert_eq!(
            metric(&text, "chatprobe_probe_panics_total") as usize,
            panicked
        );
        let passed = text
            .lines()
            .find_map(|line| line.strip_prefix("chatprobe_probe_runs_total{probe=\"slow\",region=\"eu-west\",result=\"success\",target=\"mock\"} "))
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap();
        assert!(passed >= 10, "{passed} passing runs after the panics");
    }

    #[test]
    fn the_panic_backoff_doubles_up_to_its_cap() {
        let second = Duration::from_secs(1);
        assert_eq!(panic_backoff(second, 0), Duration::ZERO);
        assert_eq!(panic_backoff(second, 1), second);
        assert_eq!(panic_backoff(second, 3), Duration::from_secs(4));
        assert_eq!(panic_backoff(second, 40), PANIC_BACKOFF_MAX);
        let hour = Duration::from_secs(3600);
        assert_eq!(panic_backoff(hour, 5), hour);
    }
}
