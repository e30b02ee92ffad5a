//! Remote write's own metrics (**contract** names), served on `/metrics`
//! beside the others and pushed with them:
//! `chatprobe_remote_write_samples_total{url,result}`,
//! `chatprobe_remote_write_queue_bytes{url}` and
//! `chatprobe_remote_write_last_success_timestamp_seconds{url}`.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use super::queue::Dropped;
use crate::metrics::MetricsRegistry;

/// The `result` values of `chatprobe_remote_write_samples_total` (**contract**).
pub mod result {
    /// Delivered: the receiver answered 2xx.
    pub const SENT: &str = "sent";
    /// In a push that failed and is retried (5xx, 429, no connection, a
    /// timeout), once per attempt: the samples stay queued.
    pub const FAILED: &str = "failed";
    /// Refused for good (a 4xx other than 429): dropped, the answer logged.
    pub const DROPPED_REJECTED: &str = "dropped_rejected";
    /// Pushed out of the full queue by newer samples (`queue.max_bytes`).
    pub const DROPPED_QUEUE_FULL: &str = "dropped_queue_full";
    /// Older than `queue.max_age` before they could be sent.
    pub const DROPPED_TOO_OLD: &str = "dropped_too_old";
    /// Still queued when the shutdown drain ended, or when a reload removed the URL.
    pub const DROPPED_SHUTDOWN: &str = "dropped_shutdown";
    /// Every value, each series created at 0 for every URL.
    pub const ALL: [&str; 6] = [
        SENT,
        FAILED,
        DROPPED_REJECTED,
        DROPPED_QUEUE_FULL,
        DROPPED_TOO_OLD,
        DROPPED_SHUTDOWN,
    ];
}

/// The three families, registered once per process.
#[derive(Clone)]
pub struct PushMetrics {
    samples: IntCounterVec,
    queue_bytes: IntGaugeVec,
    last_success: GaugeVec,
}

impl PushMetrics {
    /// Creates the families and adds them to what `registry` renders.
    pub fn register(registry: &MetricsRegistry) -> prometheus::Result<PushMetrics> {
        let metrics = PushMetrics {
            samples: IntCounterVec::new(
                Opts::new(
                    "chatprobe_remote_write_samples_total",
                    "Samples by what became of them: sent, failed (an attempt to be retried), dropped_rejected, dropped_queue_full, dropped_too_old, dropped_shutdown.",
                ),
                &["url", "result"],
            )?,
            queue_bytes: IntGaugeVec::new(
                Opts::new(
                    "chatprobe_remote_write_queue_bytes",
                    "Bytes of compressed samples queued for the receiver.",
                ),
                &["url"],
            )?,
            last_success: GaugeVec::new(
                Opts::new(
                    "chatprobe_remote_write_last_success_timestamp_seconds",
                    "Unix time of the last push the receiver accepted (0 before the first).",
                ),
                &["url"],
            )?,
        };
        registry.register(Box::new(metrics.samples.clone()))?;
        registry.register(Box::new(metrics.queue_bytes.clone()))?;
        registry.register(Box::new(metrics.last_success.clone()))?;
        Ok(metrics)
    }

    /// Every series of `url`, at 0 (those it already has keep their values).
    pub fn init_url(&self, url: &str) {
        for result in result::ALL {
            self.samples.with_label_values(&[url, result]);
        }
        self.queue_bytes.with_label_values(&[url]);
        self.last_success.with_label_values(&[url]);
    }

    /// Removes every series of `url` (a reload dropped it).
    pub fn forget_url(&self, url: &str) {
        for result in result::ALL {
            let _ = self.samples.remove_label_values(&[url, result]);
        }
        let _ = self.queue_bytes.remove_label_values(&[url]);
        let _ = self.last_success.remove_label_values(&[url]);
    }

    /// Counts `samples` of `url` as `result`.
    pub fn count(&self, url: &str, result: &str, samples: usize) {
        if samples > 0 {
            let samples = u64::try_from(samples).unwrap_or(u64::MAX);
            self.samples
                .with_label_values(&[url, result])
                .inc_by(samples);
        }
    }

    /// Counts what a queue dropped.
    pub fn count_dropped(&self, url: &str, dropped: Dropped) {
        self.count(url, result::DROPPED_QUEUE_FULL, dropped.queue_full);
        self.count(url, result::DROPPED_TOO_OLD, dropped.too_old);
    }

    /// Sets the queue's size.
    pub fn set_queue_bytes(&self, url: &str, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.queue_bytes.with_label_values(&[url]).set(bytes);
    }

    /// Records a push accepted at `unix_seconds`.
    pub fn set_last_success(&self, url: &str, unix_seconds: f64) {
        self.last_success
            .with_label_values(&[url])
            .set(unix_seconds);
    }
}
