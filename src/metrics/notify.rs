//! The status page's notification metrics (**contract** names):
//! `chatprobe_notifications_sent_total{channel,event}`,
//! `chatprobe_notifications_failed_total{channel,reason}` (one per failed
//! attempt), `chatprobe_notification_queue_depth` (notifications in the
//! outbox) and `chatprobe_notification_oldest_seconds` (how long the oldest
//! of them has waited), written by the same text writer as the rest.

use std::sync::{Arc, Mutex, MutexGuard};

use super::exposition::Exposition;

label_enum! {
    /// Where a notification goes (the `channel` label).
    Channel {
        Email => "email", "a mail to a confirmed subscriber (or a confirmation to a new one)";
        Webhook => "webhook", "a signed JSON POST to a configured webhook";
    }
}

label_enum! {
    /// What a notification says (the `event` label; a webhook body's `event`).
    Event {
        Confirm => "confirm", "a confirmation mail with its link (email only)";
        IncidentOpened => "incident_opened", "an incident opened: its first statement";
        Statement => "statement", "a newer statement about an ongoing incident";
        IncidentResolved => "incident_resolved", "the incident ended: its resolved statement";
    }
}

label_enum! {
    /// Why an attempt to deliver a notification failed (the `reason` label).
    Failure {
        Unreachable => "unreachable", "the server refused or dropped the connection, or TLS failed: retried with backoff";
        Timeout => "timeout", "the server did not answer in time: retried with backoff";
        Temporary => "temporary", "the server answered a temporary failure (SMTP 4xx, HTTP 429 or 5xx): retried with backoff";
        Bounced => "bounced", "the SMTP server refused the address for good (5xx): not retried; the third bounce stops all mail to it";
        Rejected => "rejected", "refused for good otherwise (an SMTP login refused, a webhook's HTTP 4xx, a webhook no longer configured): not retried";
        Expired => "expired", "still failing 24 hours after it was queued: given up";
    }
}

const SENT: &str = "chatprobe_notifications_sent_total";
const SENT_HELP: &str = "Notifications delivered, by channel and event.";
const FAILED: &str = "chatprobe_notifications_failed_total";
const FAILED_HELP: &str = "Failed delivery attempts, by channel and reason.";
const DEPTH: &str = "chatprobe_notification_queue_depth";
const DEPTH_HELP: &str = "Notifications waiting in the outbox (all replicas sharing the store).";
const OLDEST: &str = "chatprobe_notification_oldest_seconds";
const OLDEST_HELP: &str =
    "How long the oldest waiting notification has waited, in seconds (0 when none).";

/// The series behind the lock.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Sent, by [`Channel::ALL`] × [`Event::ALL`].
    sent: [[u64; Event::ALL.len()]; Channel::ALL.len()],
    /// Failed, by [`Channel::ALL`] × [`Failure::ALL`].
    failed: [[u64; Failure::ALL.len()]; Channel::ALL.len()],
    /// The outbox's depth when last read.
    depth: u64,
    /// The oldest notification's wait when last read.
    oldest_seconds: u64,
}

/// The notification metrics, shared by the senders and `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotifyMetrics {
    series: Arc<Mutex<Series>>,
}

/// The position of `value` in `all`.
fn index<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter().position(|known| known == value).unwrap_or(0)
}

impl NotifyMetrics {
    /// Counts a delivered notification.
    pub(crate) fn sent(&self, channel: Channel, event: Event) {
        self.lock().sent[index(Channel::ALL, &channel)][index(Event::ALL, &event)] += 1;
    }

    /// Counts a failed attempt.
    pub(crate) fn failed(&self, channel: Channel, failure: Failure) {
        self.lock().failed[index(Channel::ALL, &channel)][index(Failure::ALL, &failure)] += 1;
    }

    /// Sets the outbox's depth and the oldest wait.
    pub(crate) fn set_queue(&self, depth: u64, oldest_seconds: u64) {
        let mut series = self.lock();
        series.depth = depth;
        series.oldest_seconds = oldest_seconds;
    }

    /// Writes the four families, every label pair from the start.
    pub(super) fn render(&self, out: &mut Exposition<'_>) {
        let series = self.lock().clone();
        out.family(SENT, SENT_HELP, "counter");
        for (channel, counts) in Channel::ALL.iter().zip(series.sent) {
            for (event, count) in Event::ALL.iter().zip(counts) {
                let labels = [("channel", channel.as_str()), ("event", event.as_str())];
                out.sample(SENT, &labels, count);
            }
        }
        out.family(FAILED, FAILED_HELP, "counter");
        for (channel, counts) in Channel::ALL.iter().zip(series.failed) {
            for (failure, count) in Failure::ALL.iter().zip(counts) {
                let labels = [("channel", channel.as_str()), ("reason", failure.as_str())];
                out.sample(FAILED, &labels, count);
            }
        }
        out.family(DEPTH, DEPTH_HELP, "gauge");
        out.sample(DEPTH, &[], series.depth);
        out.family(OLDEST, OLDEST_HELP, "gauge");
        out.sample(OLDEST, &[], series.oldest_seconds);
    }

    fn lock(&self) -> MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::text;

    #[test]
    fn every_series_exists_from_the_start_and_counts() {
        let metrics = NotifyMetrics::default();
        let render = || text(|out| metrics.render(out));
        let text = render();
        assert!(text.contains("chatprobe_notifications_sent_total{channel=\"webhook\",event=\"incident_resolved\"} 0\n"), "{text}");
        assert!(
            text.contains(
                "chatprobe_notifications_failed_total{channel=\"email\",reason=\"bounced\"} 0\n"
            ),
            "{text}"
        );
        metrics.sent(Channel::Email, Event::Confirm);
        metrics.failed(Channel::Webhook, Failure::Timeout);
        metrics.set_queue(7, 42);
        let text = render();
        for series in [
            "chatprobe_notifications_sent_total{channel=\"email\",event=\"confirm\"} 1\n",
            "chatprobe_notifications_failed_total{channel=\"webhook\",reason=\"timeout\"} 1\n",
            "chatprobe_notification_queue_depth 7\n",
            "chatprobe_notification_oldest_seconds 42\n",
        ] {
            assert!(text.contains(series), "{series} missing from {text}");
        }
    }
}
