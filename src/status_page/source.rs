//! Reading the fleet from Prometheus, incrementally: a first read of the
//! last hour, the 90-day uptime and the incident history, then, every
//! refresh, only the steps since the last one ([`Mirror`] keeps what was
//! read, folded).
//!
//! The last hour is read at [`LIVE_STEP`] on steps aligned to it. A step is
//! taken in for good once it is [`SETTLE`] seconds old (Prometheus has every
//! scrape of it by then); the newer ones, up to the step holding now, are
//! read again at each refresh and shown on top (the head). Cells, incidents
//! and uptime all come from those same steps, so an ongoing incident shows
//! in the same refresh as its red cell, whatever the history's step.
//!
//! The first read stays small at fleet scale: every cell's state over the
//! hour is one point; only the cells that failed in it are read step by
//! step; the trends' runs are counted per probe. The history is read
//! sparsely: one query finds the cells and hours of the last 90 days with
//! failures (with the shipped recording rules loaded, from
//! `chatprobe:probe_failing`; else from the raw counter), and only those
//! cells in those hours (with a margin to see the rule open and the runs
//! that end it) are read at `--incident-step`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::incidents::{Incident, IncidentRule, IncidentTracker};
use super::last_hour::{LIVE_STEP, LastHour, Trends, aligned_up};
use super::prometheus::{PrometheusClient, PrometheusError, Series};
use super::samples::{self, CellSteps, Detail, Window};
use super::selector::CellSet;
use super::uptime::{self, DAY, DAYS, Uptime, UptimeRow};
use crate::outcome::ProbeKey;
use crate::status::{StatusSnapshot, TREND_WINDOW};

/// The coarse step of the history: an hour.
const HOUR: u64 = 3600;

/// Seconds after which a step is taken in for good.
pub(crate) const SETTLE: u64 = 30;

/// The most steps of the last hour one refresh reads at a time.
const MAX_STEPS_PER_READ: u64 = 30;

/// The most points a query over every cell asks for at once (Prometheus
/// refuses a query that would hold more than 50 million samples).
const MAX_POINTS_PER_QUERY: u64 = 120;

/// The raw query of cells with failed runs in the hour up to each point (a
/// counter that changed, or one born within the hour above 0).
const FAILED_HOURS: &str = concat!(
    r#"sum by (region, target, probe) ((("#,
    r#"chatprobe_probe_runs_total{result="failure"} - chatprobe_probe_runs_total{result="failure"} offset 1h"#,
    r#") != 0) or (chatprobe_probe_runs_total{result="failure"} > 0 unless "#,
    r#"chatprobe_probe_runs_total{result="failure"} offset 1h)) != 0"#
);

/// The same from the shipped recording rules: cells failing by them in the
/// hour up to each point (series only while failing: nothing to read for a
/// healthy fleet).
const FAILING_HOURS_RECORDED: &str =
    "max by (region, target, probe) (max_over_time(chatprobe:probe_failing[1h])) > 0";

/// Present when the shipped recording rules are loaded (for every cell).
const RULES_PROBE: &str = "count(chatprobe:probe_failed_runs:5m)";

/// The longest incident window the recorded `chatprobe:probe_failing`
/// covers (its 5 minutes).
const RECORDED_WINDOW: Duration = Duration::from_secs(300);

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
    /// The step the incident history is read at.
    pub(crate) step: Duration,
    /// How long without a scrape makes a cell stale.
    pub(crate) stale_after: Duration,
}

/// Everything read so far, folded.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    last_hour: LastHour,
    incidents: IncidentTracker,
    uptime: Uptime,
    /// The end of the last step taken in for good.
    read_until: u64,
}

impl Mirror {
    /// Takes in steps of the last hour for good.
    fn take_in(&mut self, cells: &[CellSteps]) {
        self.last_hour.ingest(cells, LIVE_STEP, Trends::Count);
        self.incidents.advance(cells);
        self.uptime.add_steps(cells);
    }

    /// Whether it is so far behind `now` (Prometheus was unreadable for
    /// long) that a first read is cheaper than catching up.
    pub(crate) fn behind(&self, now: u64) -> bool {
        self.read_until + TREND_WINDOW.as_secs() < settled(now)
    }

    /// Forgets what has left every window.
    fn prune(&mut self, now: u64) {
        self.last_hour.prune(now);
        self.incidents.forget_before(now.saturating_sub(DAYS * DAY));
        self.uptime.prune(now);
    }

    /// What the page shows at `now`, with `head` (the steps not yet taken
    /// in) on top.
    pub(crate) fn view(&self, head: &[CellSteps], now: u64, stale_after: Duration) -> FleetView {
        let mut incidents = self.incidents.clone();
        incidents.advance(head);
        let mut uptime = self.uptime.clone();
        uptime.add_steps(head);
        FleetView {
            snapshot: self.last_hour.snapshot(head, now, stale_after),
            incidents: incidents.incidents(now),
            uptime: uptime.rows(now),
        }
    }
}

/// The last step end at least [`SETTLE`] seconds before `now`.
pub(crate) fn settled(now: u64) -> u64 {
    let at = now.saturating_sub(SETTLE);
    at - at % LIVE_STEP
}

/// Where the history ends and the step-by-step hour begins: an hour before
/// `settled`, on a multiple of both steps (so neither leaves a gap).
pub(crate) fn history_end(settled: u64, history_step: u64) -> u64 {
    let both = lcm(LIVE_STEP, history_step.max(1));
    let at = settled.saturating_sub(TREND_WINDOW.as_secs());
    at - at % both
}

fn lcm(a: u64, b: u64) -> u64 {
    let gcd = |mut x: u64, mut y: u64| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    a / gcd(a, b) * b
}

/// The next read after `read_until` at `now`: up to the step holding now,
/// at most [`MAX_STEPS_PER_READ`] steps.
pub(crate) fn next_read(read_until: u64, now: u64) -> Window {
    let start = read_until + LIVE_STEP;
    let end = aligned_up(now, LIVE_STEP).max(start);
    Window {
        start,
        end: end.min(read_until + MAX_STEPS_PER_READ * LIVE_STEP),
        step: LIVE_STEP,
    }
}

/// `cells` cut after `at`: the steps up to it, and the later ones.
fn split(cells: Vec<CellSteps>, at: u64) -> (Vec<CellSteps>, Vec<CellSteps>) {
    let mut early = Vec::with_capacity(cells.len());
    let mut late = Vec::new();
    for cell in cells {
        let cut = cell.steps.partition_point(|step| step.at <= at);
        let mut steps = cell.steps;
        let later = steps.split_off(cut);
        if !later.is_empty() {
            late.push(CellSteps {
                key: cell.key.clone(),
                steps: later,
            });
        }
        if !steps.is_empty() {
            early.push(CellSteps {
                key: cell.key,
                steps,
            });
        }
    }
    (early, late)
}

impl FleetSource {
    /// The first read, as of `now`: everything up to the last settled step.
    pub(crate) async fn first_read(&self, now: u64) -> Result<Mirror, PrometheusError> {
        let read_until = settled(now);
        let history_step = self.step.as_secs().max(1);
        let live_from = history_end(read_until, history_step);
        let mut incidents = IncidentTracker::new(self.rule);
        self.read_history(&mut incidents, live_from).await?;
        let mut last_hour = LastHour::default();
        let hour = Window {
            start: read_until,
            end: read_until,
            step: read_until - live_from,
        };
        let states = samples::fetch(&self.client, hour, Detail::State, None).await?;
        let mut detailed: CellSet = states
            .iter()
            .filter(|cell| {
                // Failed runs in the hour, or failing now (a counter born
                // within the hour has no difference over it).
                cell.steps
                    .iter()
                    .any(|step| step.failed > 0 || step.last_passed == Some(false))
            })
            .map(|cell| cell.key.clone())
            .collect();
        detailed.extend(incidents.involved().cloned());
        let steps = Window {
            start: live_from + LIVE_STEP,
            end: read_until,
            step: LIVE_STEP,
        };
        let mut from = steps.start;
        while !detailed.is_empty() && from <= steps.end {
            // A piece at a time: a large outage is many cells to read.
            let to = (from + (MAX_STEPS_PER_READ - 1) * LIVE_STEP).min(steps.end);
            let piece = Window {
                start: from,
                end: to,
                step: LIVE_STEP,
            };
            let cells = samples::fetch(&self.client, piece, Detail::Full, Some(&detailed)).await?;
            last_hour.ingest(&cells, LIVE_STEP, Trends::Count);
            incidents.advance(&cells);
            from = to + LIVE_STEP;
        }
        let quiet: Vec<CellSteps> = states
            .into_iter()
            .filter(|cell| !detailed.contains(&cell.key))
            .collect();
        last_hour.ingest(&quiet, hour.step, Trends::Skip);
        for series in self.trend_runs(steps).await? {
            for &(at, runs) in &series.points {
                last_hour.at_least_runs(series.label("probe"), at, samples::count(runs));
            }
        }
        let mut mirror = Mirror {
            last_hour,
            incidents,
            uptime: self.read_uptime(read_until).await?,
            read_until,
        };
        mirror.prune(now);
        Ok(mirror)
    }

    /// Reads the steps since the last refresh into `mirror`; the view at `now`.
    pub(crate) async fn refresh(
        &self,
        mirror: &mut Mirror,
        now: u64,
    ) -> Result<FleetView, PrometheusError> {
        let settled = settled(now);
        let head = loop {
            let window = next_read(mirror.read_until, now);
            let cells = samples::fetch(&self.client, window, Detail::Full, None).await?;
            let (done, head) = split(cells, settled);
            mirror.take_in(&done);
            mirror.read_until = settled.min(window.end).max(mirror.read_until);
            if window.end >= aligned_up(now, LIVE_STEP) {
                break head;
            }
        };
        mirror.prune(now);
        Ok(mirror.view(&head, now, self.stale_after))
    }

    /// Runs per probe at each step of `window`, over every cell.
    async fn trend_runs(&self, window: Window) -> Result<Vec<Series>, PrometheusError> {
        let runs = "chatprobe_probe_runs_total";
        let query = format!(
            "sum by (probe) (clamp_min({runs} - {runs} offset {}s, 0))",
            window.step
        );
        self.range_in_pieces(&query, window).await
    }

    /// `query` over `window`, asked [`MAX_POINTS_PER_QUERY`] points at a time.
    async fn range_in_pieces(
        &self,
        query: &str,
        window: Window,
    ) -> Result<Vec<Series>, PrometheusError> {
        let step = window.step.max(1);
        let mut all = Vec::new();
        let mut start = window.start;
        while start <= window.end {
            let end = (start + (MAX_POINTS_PER_QUERY - 1) * step).min(window.end);
            all.extend(self.client.range(query, start, end, step).await?);
            start = end + step;
        }
        Ok(all)
    }

    /// The uptime of the past days, and of today up to `until`.
    async fn read_uptime(&self, until: u64) -> Result<Uptime, PrometheusError> {
        let mut uptime = Uptime::default();
        let days = uptime::past_days(until);
        let past = self
            .client
            .range(&uptime::query(DAY), days.start, days.end, days.step)
            .await?;
        uptime.add_series(&past, |at| at - DAY);
        let today = until - uptime::day_start(until);
        if today > 0 {
            let so_far = self
                .client
                .range(&uptime::query(today), until, until, today)
                .await?;
            uptime.add_series(&so_far, uptime::day_start);
        }
        Ok(uptime)
    }

    /// Feeds `incidents` the steps of every cell around its failures over
    /// the last 90 days, up to `until`.
    async fn read_history(
        &self,
        incidents: &mut IncidentTracker,
        until: u64,
    ) -> Result<(), PrometheusError> {
        let end = until - until % HOUR;
        let start = end.saturating_sub(DAYS * DAY);
        let query = self.failed_hours_query(until).await?;
        let hours = Window {
            start,
            end,
            step: HOUR,
        };
        let flagged = self.range_in_pieces(query, hours).await?;
        let hours = flagged.iter().flat_map(|series| {
            let key = samples::key_of(series);
            series.points.iter().map(move |&(at, _)| (at, key.clone()))
        });
        let step = self.step.as_secs().max(1);
        let lead = self.rule.window.as_secs() + step;
        for (span, cells) in spans(hours, lead, step, until) {
            // An incident's span can be long: read it a day at a time.
            let mut from = span.start;
            while from <= span.end {
                let to = (from + DAY - step).min(span.end);
                let part = Window {
                    start: from,
                    end: to,
                    step,
                };
                let read = samples::fetch(&self.client, part, Detail::Counts, Some(&cells)).await?;
                incidents.advance(&read);
                from = to + step;
            }
        }
        Ok(())
    }

    /// The query of cells and hours with failures: from the recording rules
    /// when they are loaded and cover the incident rule, else raw.
    async fn failed_hours_query(&self, at: u64) -> Result<&'static str, PrometheusError> {
        let covered = self.rule.window <= RECORDED_WINDOW && self.rule.failed_runs >= 2;
        if !covered {
            return Ok(FAILED_HOURS);
        }
        let recorded = self.client.range(RULES_PROBE, at, at, 1).await?;
        Ok(match recorded.is_empty() {
            true => FAILED_HOURS,
            false => FAILING_HOURS_RECORDED,
        })
    }
}

/// The windows to read at `step` for cells with failures in the hours
/// ending at the given times: each hour, `lead` seconds before it and the
/// hour after it (to see the runs that end an incident), up to `until`;
/// overlapping windows merged, each with the cells flagged in it.
pub(crate) fn spans(
    hours: impl Iterator<Item = (u64, ProbeKey)>,
    lead: u64,
    step: u64,
    until: u64,
) -> Vec<(Window, CellSet)> {
    let latest = until - until % step;
    let mut wanted: BTreeMap<(u64, u64), CellSet> = BTreeMap::new();
    for (hour, key) in hours {
        let start = hour.saturating_sub(HOUR + lead);
        let span = (start - start % step, (hour + HOUR).min(latest));
        if span.0 <= span.1 {
            wanted.entry(span).or_default().insert(key);
        }
    }
    let mut merged: Vec<(Window, CellSet)> = Vec::new();
    for ((start, end), cells) in wanted {
        match merged.last_mut() {
            Some((last, known)) if start <= last.end + step => {
                last.end = last.end.max(end);
                known.extend(cells);
            }
            _ => merged.push((Window { start, end, step }, cells)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str) -> ProbeKey {
        ProbeKey {
            region: "ap-south".into(),
            target: target.into(),
            probe: "group_message".into(),
        }
    }

    #[test]
    fn hours_with_failures_become_merged_windows_of_their_cells() {
        let until = 100 * HOUR + 1234;
        let hours = [
            (10 * HOUR, key("a")),
            (11 * HOUR, key("b")),
            (50 * HOUR, key("a")),
            (101 * HOUR, key("c")),
        ];
        let windows = spans(hours.into_iter(), 150, 15, until);
        let window = |start, end| Window {
            start,
            end,
            step: 15,
        };
        let cells = |names: &[&str]| names.iter().map(|name| key(name)).collect::<CellSet>();
        assert_eq!(
            windows,
            [
                (window(9 * HOUR - 150, 12 * HOUR), cells(&["a", "b"])),
                (window(49 * HOUR - 150, 51 * HOUR), cells(&["a"])),
                (window(100 * HOUR - 150, until - until % 15), cells(&["c"])),
            ]
        );
    }

    #[test]
    fn a_healthy_fleet_reads_nothing_more() {
        assert!(spans(std::iter::empty(), 150, 15, 1_000_000).is_empty());
    }

    #[test]
    fn the_hour_is_read_on_aligned_steps_and_settled_ones_are_kept() {
        let now = 1_000_007;
        assert_eq!(settled(now), 999_970);
        // A refresh reads from the step after the last kept one up to the
        // step holding now (a few seconds ahead).
        assert_eq!(
            next_read(999_950, now),
            Window {
                start: 999_960,
                end: 1_000_010,
                step: 10
            }
        );
        // After a long gap, at most 30 steps a read.
        assert_eq!(next_read(990_000, now).end, 990_300);
        // The history ends on a multiple of both steps, an hour back.
        assert_eq!(history_end(999_970, 15), 996_360);
        assert_eq!(history_end(999_970, 300), 996_300);
        assert_eq!(history_end(999_970, 1), 996_370);
    }

    #[test]
    fn steps_split_at_the_settled_one() {
        let step = |at| samples::Step {
            at,
            ..samples::Step::default()
        };
        let cells = vec![CellSteps {
            key: key("a"),
            steps: vec![step(10), step(20), step(30)],
        }];
        let (done, head) = split(cells, 20);
        assert_eq!(done[0].steps.len(), 2);
        assert_eq!(head[0].steps, [step(30)]);
        let (done, head) = split(
            vec![CellSteps {
                key: key("a"),
                steps: vec![step(40)],
            }],
            20,
        );
        assert!(done.is_empty());
        assert_eq!(head.len(), 1);
    }
}

#[cfg(test)]
mod mirror_tests {
    use super::*;
    use crate::outcome::{Operation, Reason};
    use crate::status_page::samples::Step;

    /// 2026-11-23T16:25:00Z.
    const BASE: u64 = 1_795_451_100;

    fn cell(runs: &str) -> CellSteps {
        let steps = runs
            .chars()
            .enumerate()
            .map(|(index, run)| {
                let at = BASE + 10 * index as u64;
                let failed = u32::from(run == 'F');
                Step {
                    at,
                    failed,
                    passed: 1 - failed,
                    last_passed: Some(failed == 0),
                    failures: match failed {
                        1 => vec![(Operation::Send, Reason::HttpError, 1)],
                        _ => Vec::new(),
                    },
                    sampled_at: Some(at),
                    ..Step::default()
                }
            })
            .collect();
        CellSteps {
            key: ProbeKey {
                region: "ap-south".into(),
                target: "mock".into(),
                probe: "group_message".into(),
            },
            steps,
        }
    }

    #[test]
    fn an_incident_seen_in_the_head_stays_once_its_steps_are_kept() {
        let whole = cell("PPFFFFPPPP");
        let mut mirror = Mirror {
            last_hour: LastHour::default(),
            incidents: IncidentTracker::new(IncidentRule::default()),
            uptime: Uptime::default(),
            read_until: BASE - 10,
        };
        let mut shown = Vec::new();
        for now in (BASE..BASE + 140).step_by(2) {
            let window = next_read(mirror.read_until, now);
            let read: Vec<CellSteps> = vec![CellSteps {
                key: whole.key.clone(),
                steps: whole
                    .steps
                    .iter()
                    .filter(|s| s.at >= window.start && s.at <= window.end && s.at <= now + 10)
                    .cloned()
                    .collect(),
            }];
            let (done, head) = split(read, settled(now));
            mirror.take_in(&done);
            mirror.read_until = settled(now).min(window.end).max(mirror.read_until);
            let view = mirror.view(&head, now, Duration::from_secs(60));
            shown.push(view.incidents.len());
        }
        let first = shown.iter().position(|&n| n > 0).expect("opened");
        assert!(shown[first..].iter().all(|&n| n == 1), "{shown:?}");
    }
}
