//! Remote write's own metrics (**contract** names), served on `/metrics`
//! beside the others and pushed with them:
//! `chatprobe_remote_write_samples_total{url,result}`,
//! `chatprobe_remote_write_queue_bytes{url}` and
//! `chatprobe_remote_write_last_success_timestamp_seconds{url}`: one row of
//! plain counts per receiver, written by the same text writer as the rest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::exposition::Exposition;

/// The `result` values of `chatprobe_remote_write_samples_total` (**contract**).
pub(crate) mod result {
    /// Delivered: the receiver answered 2xx.
    pub(crate) const SENT: &str = "sent";
    /// In a push that failed and is retried (5xx, 429, no connection, a
    /// timeout), once per attempt: the samples stay queued.
    pub(crate) const FAILED: &str = "failed";
    /// Refused for good (a 4xx other than 429): dropped, the answer logged.
    pub(crate) const DROPPED_REJECTED: &str = "dropped_rejected";
    /// Pushed out of the full queue by newer samples (`queue.max_bytes`).
    pub(crate) const DROPPED_QUEUE_FULL: &str = "dropped_queue_full";
    /// Older than `queue.max_age` before they could be sent.
    pub(crate) const DROPPED_TOO_OLD: &str = "dropped_too_old";
    /// Still queued when the shutdown drain ended, or when a reload removed the URL.
    pub(crate) const DROPPED_SHUTDOWN: &str = "dropped_shutdown";
    /// Every value, each series created at 0 for every URL.
    pub(crate) const ALL: [&str; 6] = [
        SENT,
        FAILED,
        DROPPED_REJECTED,
        DROPPED_QUEUE_FULL,
        DROPPED_TOO_OLD,
        DROPPED_SHUTDOWN,
    ];
}

const SAMPLES: &str = "chatprobe_remote_write_samples_total";
const SAMPLES_HELP: &str = "Samples by what became of them: sent, failed (an attempt to be retried), dropped_rejected, dropped_queue_full, dropped_too_old, dropped_shutdown.";
const QUEUE_BYTES: &str = "chatprobe_remote_write_queue_bytes";
const QUEUE_BYTES_HELP: &str = "Bytes of compressed samples queued for the receiver.";
const LAST_SUCCESS: &str = "chatprobe_remote_write_last_success_timestamp_seconds";
const LAST_SUCCESS_HELP: &str =
    "Unix time of the last push the receiver accepted (0 before the first).";

/// One receiver's series.
#[derive(Debug, Clone, Default)]
struct Receiver {
    /// Samples per `result`, in [`result::ALL`] order.
    samples: [u64; result::ALL.len()],
    queue_bytes: u64,
    last_success: f64,
}

/// Every receiver's series, by URL (none until a receiver is configured).
#[derive(Debug, Clone, Default)]
pub(crate) struct PushMetrics {
    receivers: Arc<Mutex<BTreeMap<String, Receiver>>>,
}

impl PushMetrics {
    /// Every series of `url`, at 0 (those it already has keep their values).
    pub(crate) fn init_url(&self, url: &str) {
        self.lock().entry(url.to_string()).or_default();
    }

    /// Removes every series of `url` (a reload dropped it).
    pub(crate) fn forget_url(&self, url: &str) {
        self.lock().remove(url);
    }

    /// Counts `samples` of `url` as `result` (one of [`result::ALL`]).
    pub(crate) fn count(&self, url: &str, result: &str, samples: usize) {
        let Some(index) = result::ALL.iter().position(|known| *known == result) else {
            debug_assert!(false, "unknown remote write result {result}");
            return;
        };
        let samples = u64::try_from(samples).unwrap_or(u64::MAX);
        self.with(url, |receiver| receiver.samples[index] += samples);
    }

    /// Sets the queue's size.
    pub(crate) fn set_queue_bytes(&self, url: &str, bytes: u64) {
        self.with(url, |receiver| receiver.queue_bytes = bytes);
    }

    /// Records a push accepted at `unix_seconds`.
    pub(crate) fn set_last_success(&self, url: &str, unix_seconds: f64) {
        self.with(url, |receiver| receiver.last_success = unix_seconds);
    }

    /// Writes the three families (nothing while no receiver is configured).
    pub(super) fn render(&self, out: &mut Exposition<'_>) {
        let receivers = self.lock().clone();
        if receivers.is_empty() {
            return;
        }
        out.family(SAMPLES, SAMPLES_HELP, "counter");
        for (url, receiver) in &receivers {
            for (result, count) in result::ALL.iter().zip(receiver.samples) {
                out.sample(SAMPLES, &[("result", result), ("url", url)], count);
            }
        }
        out.family(QUEUE_BYTES, QUEUE_BYTES_HELP, "gauge");
        for (url, receiver) in &receivers {
            out.sample(QUEUE_BYTES, &[("url", url)], receiver.queue_bytes);
        }
        out.family(LAST_SUCCESS, LAST_SUCCESS_HELP, "gauge");
        for (url, receiver) in &receivers {
            out.sample(LAST_SUCCESS, &[("url", url)], receiver.last_success);
        }
    }

    fn with(&self, url: &str, change: impl FnOnce(&mut Receiver)) {
        change(self.lock().entry(url.to_string()).or_default());
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Receiver>> {
        self.receivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::text;

    #[test]
    fn a_receiver_has_every_result_at_zero_and_counts_what_happened() {
        let metrics = PushMetrics::default();
        let render = || text(|out| metrics.render(out));
        assert_eq!(render(), "");
        metrics.init_url("http://r/api/v1/write");
        metrics.count("http://r/api/v1/write", result::SENT, 7);
        metrics.set_queue_bytes("http://r/api/v1/write", 512);
        let text = render();
        assert!(text.contains("chatprobe_remote_write_samples_total{result=\"sent\",url=\"http://r/api/v1/write\"} 7\n"), "{text}");
        assert!(text.contains("chatprobe_remote_write_samples_total{result=\"dropped_too_old\",url=\"http://r/api/v1/write\"} 0\n"), "{text}");
        assert!(
            text.contains(
                "chatprobe_remote_write_queue_bytes{url=\"http://r/api/v1/write\"} 512\n"
            ),
            "{text}"
        );
        metrics.forget_url("http://r/api/v1/write");
        assert_eq!(render(), "");
    }
}
