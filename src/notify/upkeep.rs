//! The notifications' background work: every [`MEASURE_EVERY`] the
//! outbox's depth and its oldest row's wait into
//! `chatprobe_notification_queue_depth` and
//! `chatprobe_notification_oldest_seconds`; every [`EXPIRE_EVERY`] (and at
//! start) unconfirmed subscriptions past 24 hours forgotten.

use std::sync::Arc;
use std::time::Duration;

use super::{Notify, outbox, subscriptions, unix_now};

/// How often the outbox is measured.
pub(crate) const MEASURE_EVERY: Duration = Duration::from_secs(5);
/// How often unconfirmed subscriptions are expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(600);

/// Runs the upkeep of `notify` until the task is dropped.
pub(crate) async fn run(notify: Arc<Notify>) {
    let mut measure = tokio::time::interval(MEASURE_EVERY);
    measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = measure.tick() => measure_outbox(&notify).await,
            _ = expire.tick() => expire_unconfirmed(&notify).await,
        }
    }
}

/// Sets the queue gauges from the store (left as they were when it cannot be read).
async fn measure_outbox(notify: &Notify) {
    match outbox::depth(&notify.store).await {
        Ok((depth, oldest)) => {
            let waited = oldest.map_or(0, |oldest| (unix_now() - oldest).max(0));
            notify
                .metrics
                .set_queue(depth, u64::try_from(waited).unwrap_or(0));
        }
        Err(error) => tracing::warn!("notify: cannot measure the outbox: {error}"),
    }
}

/// Forgets unconfirmed subscriptions past their 24 hours.
async fn expire_unconfirmed(notify: &Notify) {
    match subscriptions::expire(&notify.store, unix_now()).await {
        Ok(0) => {}
        Ok(expired) => tracing::info!("notify: forgot {expired} unconfirmed subscriptions"),
        Err(error) => tracing::warn!("notify: cannot expire subscriptions: {error}"),
    }
}
