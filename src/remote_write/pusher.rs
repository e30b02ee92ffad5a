//! One receiver's two tasks and the queue between them. The sampler takes
//! a round every `interval` (written and encoded on a helper thread, as
//! `/metrics` renders, so the probes' thread never stalls) and queues its
//! batches; the sender sends the oldest batch, one at a time in order, and
//! on a failure waits (`Retry-After`, else the backoff) and sends it again.
//! Told to flush, the sampler takes a last round and ends every series it
//! pushed with a staleness marker, and the sender empties the queue or
//! stops at the flush deadline. What the last round pushed lives beside
//! the queue, so a restarted pusher (a reload that changed its entry) ends
//! the series its predecessor pushed that are gone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::encode::{Batch, Pushed, RoundEncoder};
use super::queue::{Dropped, Queue};
use super::send::{self, Answer, Sender};
use crate::config::RemoteWriteConfig;
use crate::metrics::{Exposition, MetricsRegistry};
use crate::metrics::{PushMetrics, push_result as result};

/// The least time between two log lines about one receiver's failures.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the sampler reads a round from.
#[derive(Clone)]
pub(crate) struct Source {
    /// The registry `/metrics` renders.
    pub(crate) registry: Arc<MetricsRegistry>,
    /// The agent's region, the label of its liveness series.
    pub(crate) region: String,
}

impl Source {
    /// Every series of a round: what `/metrics` serves, then the agent's
    /// liveness `chatprobe_agent_up{region="REGION"} 1` (what the shipped
    /// rules read of a pushing agent, as `up` of a scraped one).
    fn write(&self, out: &mut Exposition<'_>) {
        self.registry.expose(out);
        out.family(LIVENESS, LIVENESS_HELP, "gauge");
        out.sample(LIVENESS, &[("region", &self.region)], 1u64);
    }
}

/// The queue of one receiver and what its tasks share.
pub(crate) struct Shared {
    url: String,
    queue: Mutex<Queue>,
    /// What the last round pushed (taken out while a round is encoded).
    pushed: Mutex<Pushed>,
    wake: Notify,
    metrics: PushMetrics,
}

impl Shared {
    /// An empty queue for `config`'s URL.
    pub(crate) fn new(config: &RemoteWriteConfig, metrics: PushMetrics) -> Arc<Shared> {
        metrics.init_url(&config.url);
        Arc::new(Shared {
            url: config.url.clone(),
            queue: Mutex::new(Queue::new(
                config.queue.max_bytes,
                age_ms(config.queue.max_age),
            )),
            pushed: Mutex::new(Pushed::default()),
            wake: Notify::new(),
            metrics,
        })
    }

    /// Applies `config`'s queue bounds.
    pub(crate) fn set_bounds(&self, config: &RemoteWriteConfig) {
        let mut queue = self.lock();
        let dropped = queue.set_bounds(config.queue.max_bytes, age_ms(config.queue.max_age));
        count_dropped(&self.metrics, &self.url, dropped);
        self.metrics.set_queue_bytes(&self.url, queue.bytes());
    }

    /// Queues a round's batches and wakes the sender.
    fn push(&self, batches: Vec<Batch>) {
        let mut queue = self.lock();
        let dropped = queue.push(batches);
        count_dropped(&self.metrics, &self.url, dropped);
        self.metrics.set_queue_bytes(&self.url, queue.bytes());
        drop(queue);
        if dropped.queue_full > 0 {
            tracing::warn!(url = %self.url, samples = dropped.queue_full, "remote write queue full: oldest samples dropped");
        }
        self.wake.notify_one();
    }

    /// Removes the batch `seq` when it is still the front one; its samples.
    fn complete(&self, seq: u64) -> Option<usize> {
        let mut queue = self.lock();
        let samples = queue.complete(seq);
        self.metrics.set_queue_bytes(&self.url, queue.bytes());
        samples
    }

    /// Drops what is still queued (counted as `dropped_shutdown`); the samples dropped.
    pub(crate) fn discard(&self) -> usize {
        let mut queue = self.lock();
        let samples = queue.clear();
        self.metrics
            .count(&self.url, result::DROPPED_SHUTDOWN, samples);
        self.metrics.set_queue_bytes(&self.url, 0);
        samples
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        unpoisoned(&self.queue)
    }

    /// What the last round pushed, taken out (empty while a round has it).
    fn take_pushed(&self) -> Pushed {
        std::mem::take(&mut *unpoisoned(&self.pushed))
    }

    /// Records what a round pushed.
    fn set_pushed(&self, pushed: Pushed) {
        *unpoisoned(&self.pushed) = pushed;
    }
}

/// The lock of `mutex`; a poisoned one still holds usable bookkeeping.
fn unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the sender runs on or flushes and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    /// Empty the queue, stopping at this instant at the latest.
    Flush(Instant),
}

/// The running tasks of one receiver.
pub(crate) struct Pusher {
    /// The entry they run.
    pub(crate) config: RemoteWriteConfig,
    /// The region its labels and `User-Agent` name.
    pub(crate) region: String,
    /// Its queue.
    pub(crate) shared: Arc<Shared>,
    source: Source,
    sampler: JoinHandle<()>,
    sender: JoinHandle<()>,
    mode: watch::Sender<Mode>,
}

impl Pusher {
    /// Starts the tasks of `config` over `shared`'s queue.
    pub(crate) fn start(
        config: RemoteWriteConfig,
        region: &str,
        source: Source,
        shared: Arc<Shared>,
    ) -> Result<Pusher, send::ClientError> {
        let sender = Sender::new(&config, region)?;
        shared.set_bounds(&config);
        let (mode, modes) = watch::channel(Mode::Run);
        let encoder = encoder_of(&config, region);
        let sampler = tokio::spawn(sample_every(
            config.interval,
            source.clone(),
            Arc::clone(&shared),
            encoder,
        ));
        let sender = tokio::spawn(send_queued(Arc::clone(&shared), sender, modes));
        Ok(Pusher {
            config,
            region: region.to_string(),
            shared,
            source,
            sampler,
            sender,
            mode,
        })
    }

    /// Stops both tasks at once; the queue stays, for a successor.
    pub(crate) fn abort(self) -> Arc<Shared> {
        self.sampler.abort();
        self.sender.abort();
        self.shared
    }

    /// Takes a last round and ends every series with a staleness marker,
    /// then sends what is queued until `deadline`; what is left then is
    /// dropped and logged.
    pub(crate) async fn flush(self, deadline: Instant) {
        self.sampler.abort();
        let encoder = encoder_of(&self.config, &self.region);
        let last_round = take_round(&self.source, &self.shared, encoder, Last::Yes);
        if let Ok(Some((_, batches))) = tokio::time::timeout_at(deadline, last_round).await {
            self.shared.push(batches);
        }
        let _ = self.mode.send(Mode::Flush(deadline));
        let mut sender = self.sender;
        if tokio::time::timeout_at(deadline, &mut sender)
            .await
            .is_err()
        {
            sender.abort();
        }
        let left = self.shared.discard();
        if left > 0 {
            tracing::warn!(url = %self.shared.url, samples = left, "remote write: samples still queued at the drain deadline were dropped");
        }
    }
}

/// The round encoder of `config` for an agent of `region`.
fn encoder_of(config: &RemoteWriteConfig, region: &str) -> RoundEncoder {
    RoundEncoder::new(
        config.external_labels(region),
        config.queue.max_samples_per_send,
    )
}

/// Takes a round every `interval`, the first one now, and queues it.
async fn sample_every(
    interval: Duration,
    source: Source,
    shared: Arc<Shared>,
    mut encoder: RoundEncoder,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some((returned, batches)) = take_round(&source, &shared, encoder, Last::No).await
        else {
            return;
        };
        encoder = returned;
        shared.push(batches);
    }
}

/// Whether a round is the agent's last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// More follow.
    No,
    /// The agent stops: every series it pushed ends after it.
    Yes,
}

/// One round, written and encoded on a helper thread (with the staleness
/// markers of the series gone since the round before, and after the last
/// round those of every series): the encoder back and the batches, or
/// `None` (logged) when the helper thread failed.
async fn take_round(
    source: &Source,
    shared: &Arc<Shared>,
    mut encoder: RoundEncoder,
    last: Last,
) -> Option<(RoundEncoder, Vec<Batch>)> {
    let (source, shared) = (source.clone(), Arc::clone(shared));
    let work = tokio::task::spawn_blocking(move || {
        let taken_ms = unix_ms(SystemTime::now());
        let before = shared.take_pushed();
        let round = encoder.encode(taken_ms, &before, |out| source.write(out));
        let batches = match round {
            Ok(round) if last == Last::Yes => {
                let ended = encoder.end(&round.pushed, taken_ms + 1);
                ended.map(|markers| (round.skipped, [round.batches, markers].concat()))
            }
            Ok(round) => {
                shared.set_pushed(round.pushed);
                Ok((round.skipped, round.batches))
            }
            Err(err) => {
                shared.set_pushed(before);
                Err(err)
            }
        };
        (encoder, batches)
    });
    match work.await {
        Ok((encoder, Ok((skipped, batches)))) => {
            if skipped > 0 {
                tracing::warn!(
                    series = skipped,
                    "remote write: series with a label name twice were not sent"
                );
            }
            Some((encoder, batches))
        }
        Ok((encoder, Err(err))) => {
            tracing::error!("remote write: a round could not be encoded: {err}");
            Some((encoder, Vec::new()))
        }
        Err(err) => {
            tracing::error!("remote write: sampling stopped: {err}");
            None
        }
    }
}

/// Sends the queue's batches in order until told to flush and the queue
/// is empty, or the flush deadline passes.
async fn send_queued(shared: Arc<Shared>, sender: Sender, mut modes: watch::Receiver<Mode>) {
    let mut failures = Failures::default();
    loop {
        let mode = *modes.borrow_and_update();
        let (front, dropped) = shared.lock().front(unix_ms(SystemTime::now()));
        count_dropped(&shared.metrics, &shared.url, dropped);
        let Some(queued) = front else {
            shared.metrics.set_queue_bytes(&shared.url, 0);
            if let Mode::Flush(_) = mode {
                return;
            }
            tokio::select! {
                () = shared.wake.notified() => {}
                _ = modes.changed() => {}
            }
            continue;
        };
        let attempt = sender.send(queued.batch.body.clone());
        let answer = match mode {
            Mode::Run => attempt.await,
            Mode::Flush(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                Ok(answer) => answer,
                Err(_) => return,
            },
        };
        let wait = failures.record(&shared, queued.seq, queued.batch.samples, answer);
        if let Some(wait) = wait {
            let until = Instant::now() + wait;
            let until = match mode {
                Mode::Flush(deadline) if deadline <= until => return,
                _ => until,
            };
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = modes.changed() => {}
            }
        }
    }
}

/// The sender's run of failures, and its log lines about them.
#[derive(Default)]
struct Failures {
    /// Failed attempts in a row.
    in_a_row: u32,
    /// When the last line about a failure was logged.
    logged: Option<Instant>,
    /// Failures not logged since.
    unlogged: u64,
}

impl Failures {
    /// Counts `answer` to the batch `seq` of `samples`; how long to wait
    /// before the next attempt, when it failed.
    fn record(
        &mut self,
        shared: &Shared,
        seq: u64,
        samples: usize,
        answer: Answer,
    ) -> Option<Duration> {
        let (url, metrics) = (&shared.url, &shared.metrics);
        match answer {
            Answer::Accepted => {
                if shared.complete(seq).is_some() {
                    metrics.count(url, result::SENT, samples);
                }
                metrics.set_last_success(url, unix_seconds(SystemTime::now()));
                if self.in_a_row > 0 {
                    tracing::info!(url = %url, failed_attempts = self.in_a_row, "remote write delivering again");
                }
                (self.in_a_row, self.logged, self.unlogged) = (0, None, 0);
                None
            }
            Answer::Refused { reason } => {
                if shared.complete(seq).is_some() {
                    metrics.count(url, result::DROPPED_REJECTED, samples);
                }
                if self.may_log() {
                    tracing::error!(url = %url, samples, more_failures = self.unlogged, "remote write: the receiver refused a push, its samples are dropped: {reason}");
                    self.unlogged = 0;
                }
                None
            }
            Answer::Retry { after, reason } => {
                metrics.count(url, result::FAILED, samples);
                self.in_a_row = self.in_a_row.saturating_add(1);
                let wait = after.unwrap_or_else(|| send::backoff(self.in_a_row));
                if self.may_log() {
                    tracing::warn!(url = %url, attempts = self.in_a_row, retry_in_ms = wait.as_millis() as u64, more_failures = self.unlogged, "remote write: push failed, retrying: {reason}");
                    self.unlogged = 0;
                }
                Some(wait)
            }
        }
    }

    /// Whether a failure may be logged now (else it is counted for the next line).
    fn may_log(&mut self) -> bool {
        let now = Instant::now();
        if self.logged.is_some_and(|logged| now < logged + LOG_EVERY) {
            self.unlogged += 1;
            return false;
        }
        self.logged = Some(now);
        true
    }
}

/// `duration` in milliseconds, for the queue's ages.
fn age_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch.
fn unix_ms(time: SystemTime) -> i64 {
    age_ms(time.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// Seconds since the Unix epoch.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The name of the liveness series (**contract**: the shipped rules read it).
pub const LIVENESS: &str = "chatprobe_agent_up";
const LIVENESS_HELP: &str = "1 with every push of a pushing agent (pushed only): its liveness.";

/// Counts what a queue dropped.
fn count_dropped(metrics: &PushMetrics, url: &str, dropped: Dropped) {
    metrics.count(url, result::DROPPED_QUEUE_FULL, dropped.queue_full);
    metrics.count(url, result::DROPPED_TOO_OLD, dropped.too_old);
}
