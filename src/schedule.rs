//! The scheduler: owns timing, jitter and whole-run timeouts. Probes only
//! "run once"; each runs in a loop of its own that starts at a random point of
//! its first interval (so probes spread out), never overlaps itself (a slow
//! run delays the next, missed slots are skipped), and hands every finished
//! run to the [`Recorder`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};
use crate::probe::Probe;
use crate::record::Recorder;

/// One probe the scheduler runs.
pub struct Job {
    /// Its labels.
    pub key: ProbeKey,
    /// Time between the starts of two runs (before jitter).
    pub interval: Duration,
    /// The operation a run cut off by the run timeout is reported on.
    pub timeout_operation: Operation,
    /// The probe.
    pub probe: Box<dyn Probe>,
}

/// Timing shared by every job.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Fraction of the interval by which each wait is randomly shortened or lengthened.
    pub jitter: f64,
    /// Safety net on one whole run.
    pub run_timeout: Duration,
}

/// Whether the first round of every probe has finished (for `/readyz`).
/// Once ready, it stays ready, across reloads too.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True once every probe of the first scheduler has finished a run.
    pub fn is_ready(&self) -> bool {
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
pub struct Scheduler {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Start one loop per job (call inside a tokio runtime).
    pub fn start(
        jobs: Vec<Job>,
        timing: Timing,
        recorder: Arc<Recorder>,
        readiness: Readiness,
    ) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let first_round = Arc::new(FirstRound {
            pending: AtomicUsize::new(jobs.len()),
            readiness,
        });
        let loops = jobs
            .into_iter()
            .map(|job| {
                recorder.init(&job.key);
                let probe_loop = ProbeLoop {
                    job,
                    timing,
                    recorder: Arc::clone(&recorder),
                    stopped: stopped.clone(),
                    first_round: Arc::clone(&first_round),
                };
                tokio::spawn(probe_loop.run())
            })
            .collect();
        Scheduler { stop, loops }
    }

    /// Stop scheduling, cancel runs in flight, let every probe clean up
    /// ([`Probe::shutdown`]); loops still busy after `grace` are aborted.
    /// Returns how many loops had to be aborted.
    pub async fn shutdown(self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut aborted = 0;
        for mut handle in self.loops {
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
        let mut wait = spread;
        while self.sleep(wait).await {
            let started = Instant::now();
            let run = run_bounded(&mut self.job, self.timing.run_timeout);
            let outcome = tokio::select! {
                outcome = run => outcome,
                _ = self.stopped.wait_for(|stop| *stop) => break,
            };
            self.recorder.record(&self.job.key, &outcome);
            if std::mem::take(&mut first) {
                self.first_round.finished_one();
            }
            let sample = rand::rng().random_range(-1.0..=1.0);
            wait = next_wait(
                self.job.interval,
                self.timing.jitter,
                sample,
                started.elapsed(),
            );
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
pub async fn run_bounded(job: &mut Job, run_timeout: Duration) -> ProbeOutcome {
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

/// Delay before a probe's first run: `fraction` (in `[0, 1)`) of its interval,
/// so the probes of an agent start spread over their first interval.
pub fn first_delay(interval: Duration, fraction: f64) -> Duration {
    interval.mul_f64(fraction.clamp(0.0, 1.0))
}

/// Wait after a run that took `elapsed`: the interval stretched by
/// `jitter * sample` (`sample` in `[-1, 1]`), counted from the run's start.
/// A run longer than that skips the slots it overran: the next run starts at
/// the next slot boundary, so runs never pile up.
pub fn next_wait(interval: Duration, jitter: f64, sample: f64, elapsed: Duration) -> Duration {
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
    }

    #[async_trait]
    impl Probe for SlowProbe {
        async fn run(&mut self) -> ProbeOutcome {
            let started_at = SystemTime::now();
            self.starts.lock().unwrap().push(Instant::now());
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
                failures: Vec::new(),
                messages_expected: 0,
                messages_delivered: 0,
            }
        }

        async fn shutdown(&mut self) {
            self.shut_down.store(true, Ordering::SeqCst);
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
        let metrics = MetricsRegistry::new().unwrap();
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
        };
        let job = Job {
            key: key(),
            interval: Duration::from_secs(1),
            timeout_operation: Operation::Deliver,
            probe: Box::new(probe),
        };
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
        let metrics = MetricsRegistry::new().unwrap();
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
        };
        let job = Job {
            key: key(),
            interval: Duration::from_secs(10),
            timeout_operation: Operation::Deliver,
            probe: Box::new(probe),
        };
        let timing = Timing {
            jitter: 0.2,
            run_timeout: Duration::from_secs(5),
        };
        let begin = Instant::now();
        let scheduler = Scheduler::start(vec![job], timing, recorder, Readiness::default());
        tokio::time::sleep(Duration::from_secs(200)).await;
        scheduler.shutdown(Duration::from_secs(5)).await;
        let starts = starts.lock().unwrap();
        assert!(starts[0] - begin < Duration::from_secs(10));
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(8) && gap <= Duration::from_secs(12),
                "{gap:?}"
            );
        }
        assert!((16..=25).contains(&starts.len()), "{} runs", starts.len());
    }
}
