//! Everything the fleet page shows, read from Prometheus in one go: the
//! last hour (the board), daily counts (uptime) and the incident history.
//!
//! The history is read sparsely: one cheap query finds the hours of the
//! last 90 days with failed runs, and only those (with a margin to see the
//! rule open and the runs that end it) are read at the fine step, so a
//! healthy fleet costs one query however long the history.

use std::collections::BTreeMap;
use std::time::Duration;

use super::incidents::{self, Incident, IncidentRule};
use super::last_hour;
use super::prometheus::{PrometheusClient, PrometheusError};
use super::samples::{self, CellSteps, Detail, Window};
use super::uptime::{self, DAY, DAYS, UptimeRow};
use crate::outcome::ProbeKey;
use crate::status::StatusSnapshot;

/// The coarse step of the history: an hour.
const HOUR: u64 = 3600;

/// Per cell, runs that failed in the hour up to each point (points only
/// for hours with some).
const FAILED_HOURS: &str = r#"sum by (region, target, probe) (increase(chatprobe_probe_runs_total{result="failure"}[1h])) > 0"#;

/// What the fleet page shows, as Prometheus answered.
#[derive(Debug, Clone)]
pub(crate) struct FleetView {
    /// Cells, trends and recent failures (the agent's schema).
    pub(crate) snapshot: StatusSnapshot,
    /// Every incident of the last 90 days, newest first.
    pub(crate) incidents: Vec<Incident>,
    /// Day bars per probe and region.
    pub(crate) uptime: Vec<UptimeRow>,
}

/// Reads the fleet from a Prometheus-compatible query API.
#[derive(Debug, Clone)]
pub(crate) struct FleetSource {
    /// The query API.
    pub(crate) client: PrometheusClient,
    /// When incidents open and end.
    pub(crate) rule: IncidentRule,
    /// The step incidents are derived at.
    pub(crate) step: Duration,
    /// How long without a scrape makes a cell stale.
    pub(crate) stale_after: Duration,
}

impl FleetSource {
    /// Everything, as of `now` (unix seconds).
    pub(crate) async fn read(&self, now: u64) -> Result<FleetView, PrometheusError> {
        let recent = last_hour::recent_window(now);
        let days = uptime::window(now);
        let (cells, daily, history) = tokio::try_join!(
            samples::fetch(&self.client, recent, Detail::Full),
            self.client
                .range(uptime::QUERY, days.start, days.end, days.step),
            self.history(now),
        )?;
        Ok(FleetView {
            snapshot: last_hour::snapshot(&cells, recent, now, self.stale_after),
            incidents: incidents::derive(&history, self.rule, now),
            uptime: uptime::rows(&daily, days),
        })
    }

    /// The steps of every cell around its failures over the last 90 days.
    async fn history(&self, now: u64) -> Result<Vec<CellSteps>, PrometheusError> {
        let end = now - now % HOUR + HOUR;
        let start = end.saturating_sub(DAYS * DAY);
        let flagged = self.client.range(FAILED_HOURS, start, end, HOUR).await?;
        let hours = flagged
            .iter()
            .flat_map(|series| series.points.iter().map(|&(at, _)| at));
        let step = self.step.as_secs().max(1);
        let lead = self.rule.window.as_secs() + step;
        let mut merged: BTreeMap<ProbeKey, Vec<samples::Step>> = BTreeMap::new();
        for span in spans(hours, lead, step, now) {
            for cell in samples::fetch(&self.client, span, Detail::Counts).await? {
                merged.entry(cell.key).or_default().extend(cell.steps);
            }
        }
        Ok(merged
            .into_iter()
            .map(|(key, steps)| CellSteps { key, steps })
            .collect())
    }
}

/// The windows to read at `step` for hours with failures ending at
/// `hours`: each hour, `lead` seconds before it and the hour after it (to
/// see the runs that end an incident), up to `now`; overlapping windows merged.
pub(crate) fn spans(
    hours: impl Iterator<Item = u64>,
    lead: u64,
    step: u64,
    now: u64,
) -> Vec<Window> {
    let latest = now - now % step;
    let mut wanted: Vec<(u64, u64)> = hours
        .map(|hour| {
            let start = hour.saturating_sub(HOUR + lead);
            (start - start % step, (hour + HOUR).min(latest))
        })
        .filter(|(start, end)| start <= end)
        .collect();
    wanted.sort_unstable();
    let mut merged: Vec<Window> = Vec::new();
    for (start, end) in wanted {
        match merged.last_mut() {
            Some(last) if start <= last.end + step => last.end = last.end.max(end),
            _ => merged.push(Window { start, end, step }),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_with_failures_become_merged_windows_up_to_now() {
        let now = 100 * HOUR + 1234;
        let hours = [10 * HOUR, 11 * HOUR, 50 * HOUR, 101 * HOUR];
        let windows = spans(hours.into_iter(), 150, 15, now);
        assert_eq!(
            windows,
            [
                Window {
                    start: 9 * HOUR - 150,
                    end: 12 * HOUR,
                    step: 15
                },
                Window {
                    start: 49 * HOUR - 150,
                    end: 51 * HOUR,
                    step: 15
                },
                Window {
                    start: 100 * HOUR - 150,
                    end: now - now % 15,
                    step: 15
                },
            ]
        );
    }

    #[test]
    fn a_healthy_fleet_reads_nothing_more() {
        assert!(spans(std::iter::empty(), 150, 15, 1_000_000).is_empty());
    }
}
