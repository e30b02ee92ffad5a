//! The one task that reads Prometheus: it owns the [`Mirror`] of what was
//! read, refreshes it every [`REFRESH`] and publishes what the page shows;
//! requests render the latest publication and never wait on Prometheus.
//! When Prometheus cannot be read, the last good view stays on show,
//! marked: every cell stale, `overall` unknown, the banner says why.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::heap;
use super::source::{FleetSource, FleetView, Mirror};
use crate::status::{Health, StatusSnapshot, Timestamp};

/// How often Prometheus is read.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// One reading, as served.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    /// What the page shows.
    pub(crate) view: FleetView,
    /// Why the view may be wrong (Prometheus unreadable, all data stale, not read yet).
    pub(crate) notice: Option<String>,
    /// The error Prometheus gave, if it did.
    pub(crate) error: Option<String>,
}

/// The current time, unix seconds.
pub(crate) fn unix_now() -> u64 {
    Timestamp::from_system(SystemTime::now()).unix_seconds()
}

/// Starts the task reading `source`; it ends when every receiver is gone.
pub(crate) fn spawn(source: FleetSource) -> watch::Receiver<Arc<Shown>> {
    let waiting = Shown {
        view: empty_view(unix_now()),
        notice: Some("Reading Prometheus for the first time".to_owned()),
        error: None,
    };
    let (sender, receiver) = watch::channel(Arc::new(waiting));
    tokio::spawn(refresh_forever(source, sender));
    receiver
}

/// Reads and publishes every [`REFRESH`] until nobody listens.
async fn refresh_forever(source: FleetSource, sender: watch::Sender<Arc<Shown>>) {
    let mut ticker = tokio::time::interval(REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mirror: Option<Mirror> = None;
    let mut last_good: Option<Arc<Shown>> = None;
    while !sender.is_closed() {
        ticker.tick().await;
        let now = unix_now();
        let (started, before) = (std::time::Instant::now(), source.client.load());
        let result = read(&source, &mut mirror, now).await;
        let load = source.client.load().since(before);
        tracing::debug!(
            "refresh read Prometheus: {} queries, {} samples, {} points in {} ms",
            load.queries,
            load.samples,
            load.points,
            started.elapsed().as_millis()
        );
        let shown = match result {
            Ok(view) => {
                let shown = Arc::new(shown_fresh(view, source.stale_after));
                last_good = Some(Arc::clone(&shown));
                shown
            }
            Err(error) => {
                tracing::warn!("cannot read Prometheus: {error}");
                let last = last_good.as_ref().map(|shown| shown.view.clone());
                Arc::new(blind(last, now, &error.to_string()))
            }
        };
        sender.send_replace(shown);
        heap::trim();
    }
}

/// One refresh: the first read when nothing (or too little) is kept.
async fn read(
    source: &FleetSource,
    mirror: &mut Option<Mirror>,
    now: u64,
) -> Result<FleetView, super::prometheus::PrometheusError> {
    if mirror.as_ref().is_none_or(|kept| kept.behind(now)) {
        *mirror = None;
        let started = std::time::Instant::now();
        let first = source.first_read(now).await?;
        tracing::info!(
            "first read of Prometheus in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        *mirror = Some(first);
    }
    match mirror.as_mut() {
        Some(kept) => source.refresh(kept, unix_now()).await,
        None => Ok(empty_view(now)),
    }
}

/// A good reading, with a notice when every cell is stale.
fn shown_fresh(view: FleetView, stale_after: Duration) -> Shown {
    let notice = all_stale(&view.snapshot).then(|| {
        format!(
            "No fresh data: Prometheus has not scraped any agent for over {}",
            humantime::format_duration(stale_after)
        )
    });
    Shown {
        view,
        notice,
        error: None,
    }
}

/// Whether there are cells and every one of them is stale.
fn all_stale(snapshot: &StatusSnapshot) -> bool {
    !snapshot.cells.is_empty() && snapshot.cells.iter().all(|cell| cell.stale)
}

/// Nothing read.
fn empty_view(now: u64) -> FleetView {
    FleetView {
        snapshot: StatusSnapshot {
            generated_at: Timestamp::from_unix_seconds(now),
            overall: Health::Unknown,
            cells: Vec::new(),
            trends: Vec::new(),
            recent_failures: Vec::new(),
        },
        incidents: Vec::new(),
        uptime: Vec::new(),
    }
}

/// The last good reading (or nothing), marked as blind: overall `unknown`,
/// every cell stale, the banner naming the error.
fn blind(last_good: Option<FleetView>, now: u64, error: &str) -> Shown {
    let mut view = last_good.unwrap_or_else(|| empty_view(now));
    view.snapshot.generated_at = Timestamp::from_unix_seconds(now);
    view.snapshot.overall = Health::Unknown;
    for cell in &mut view.snapshot.cells {
        cell.stale = true;
    }
    Shown {
        view,
        notice: Some(format!("Blind: Prometheus cannot be read ({error})")),
        error: Some(error.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blind_page_is_never_green() {
        let shown = blind(None, 1000, "connection refused");
        assert_eq!(shown.view.snapshot.overall, Health::Unknown);
        assert_eq!(shown.error.as_deref(), Some("connection refused"));
        assert!(
            shown
                .notice
                .is_some_and(|notice| notice.starts_with("Blind: Prometheus cannot be read"))
        );
    }
}
