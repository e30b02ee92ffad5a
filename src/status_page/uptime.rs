//! Uptime per probe and region: for each of the last 90 days (UTC), the
//! share of runs that passed. The days before the page started are read
//! once (one range query of daily counts, one for today so far); from then
//! on the steps the page reads anyway count in, so the 90 days are never
//! read again.

use std::collections::BTreeMap;

use super::incidents::Incident;
use super::prometheus::Series;
use super::samples::{CellSteps, Window};

/// Seconds in a day.
pub(crate) const DAY: u64 = 86_400;
/// How many days the bars cover.
pub(crate) const DAYS: u64 = 90;

/// The query of runs by probe, region and result in the `seconds` up to
/// each point: the counter's difference when it is not negative, else (a
/// restart, or a series born within the span) the counter itself, as the
/// shipped rules count; two samples a series and point, where
/// `increase()` would read every sample of the day.
pub(crate) fn query(seconds: u64) -> String {
    let runs = "chatprobe_probe_runs_total";
    format!("sum by (probe, region, result) ((({runs} - {runs} offset {seconds}s) >= 0) or {runs})")
}

/// One point per day, at the end of each of the last [`DAYS`] days (UTC),
/// today included.
pub(crate) fn window(now: u64) -> Window {
    let end = now - now % DAY + DAY;
    Window {
        start: end - (DAYS - 1) * DAY,
        end,
        step: DAY,
    }
}

/// Midnight (UTC) at the start of the day holding `at`.
pub(crate) fn day_start(at: u64) -> u64 {
    at - at % DAY
}

/// The days before today to read at first: points at each midnight of the
/// last [`DAYS`] days but today, each counting the day before it.
pub(crate) fn past_days(now: u64) -> Window {
    let today = day_start(now);
    Window {
        start: today.saturating_sub((DAYS - 2) * DAY),
        end: today,
        step: DAY,
    }
}

/// One day of one probe in one region.
/// One day of one probe in one region.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Day {
    /// Midnight (UTC) at its start, unix seconds.
    pub(crate) start: u64,
    /// Runs that passed (as Prometheus estimates them).
    pub(crate) passed: f64,
    /// Runs that failed.
    pub(crate) failed: f64,
}

impl Day {
    /// The share of runs that passed, or `None` without runs.
    pub(crate) fn share(&self) -> Option<f64> {
        let total = self.passed + self.failed;
        (total > 0.0).then(|| self.passed / total)
    }
}

/// The days of one probe in one region, oldest first (every day of the
/// window, with or without runs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UptimeRow {
    /// The probe.
    pub(crate) probe: String,
    /// The region (empty in a row of every region).
    pub(crate) region: String,
    /// One per day, oldest first.
    pub(crate) days: Vec<Day>,
}

impl UptimeRow {
    /// The share of passing runs over all its days, or `None` without runs.
    pub(crate) fn share(&self) -> Option<f64> {
        let passed: f64 = self.days.iter().map(|day| day.passed).sum();
        let failed: f64 = self.days.iter().map(|day| day.failed).sum();
        Day {
            start: 0,
            passed,
            failed,
        }
        .share()
    }

    /// The incidents of its probe in its region (in any, for a row of
    /// every region) that overlap `day`.
    pub(crate) fn incidents_on<'a>(
        &'a self,
        day: &'a Day,
        incidents: &'a [Incident],
    ) -> impl Iterator<Item = &'a Incident> + 'a {
        incidents.iter().filter(move |incident| {
            incident.probe == self.probe
                && (self.region.is_empty() || incident.regions.contains(&self.region))
                && incident.overlaps(day.start, day.start + DAY)
        })
    }
}

/// Runs per probe, region and day, added up as they are read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Uptime {
    /// (probe, region) → day start → (passed, failed).
    days: BTreeMap<(String, String), BTreeMap<u64, (f64, f64)>>,
}

impl Uptime {
    /// Adds counts by `probe`, `region` and `result` (the answer of
    /// [`query`]), each point counted on the day `day_of` its time.
    pub(crate) fn add_series(&mut self, series: &[Series], day_of: impl Fn(u64) -> u64) {
        for one in series {
            for &(at, value) in &one.points {
                let value = if value.is_finite() {
                    value.max(0.0)
                } else {
                    0.0
                };
                let (passed, failed) = match one.label("result") {
                    "success" => (value, 0.0),
                    "failure" => (0.0, value),
                    _ => continue,
                };
                self.add(
                    one.label("probe"),
                    one.label("region"),
                    day_of(at),
                    passed,
                    failed,
                );
            }
        }
    }

    /// Adds the runs of each step of `cells` on the day it ends in.
    pub(crate) fn add_steps(&mut self, cells: &[CellSteps]) {
        for cell in cells {
            for step in &cell.steps {
                let day = day_start(step.at.saturating_sub(1));
                let (passed, failed) = (f64::from(step.passed), f64::from(step.failed));
                if passed + failed > 0.0 {
                    self.add(&cell.key.probe, &cell.key.region, day, passed, failed);
                }
            }
        }
    }

    fn add(&mut self, probe: &str, region: &str, day: u64, passed: f64, failed: f64) {
        let counts = self
            .days
            .entry((probe.to_owned(), region.to_owned()))
            .or_default()
            .entry(day)
            .or_default();
        counts.0 += passed;
        counts.1 += failed;
    }

    /// Forgets the days before the last [`DAYS`].
    pub(crate) fn prune(&mut self, now: u64) {
        let first = window(now).start - DAY;
        for days in self.days.values_mut() {
            days.retain(|&day, _| day >= first);
        }
    }

    /// The rows of the last [`DAYS`] days at `now`, sorted by probe and
    /// region, every day of the window in each, with or without runs.
    pub(crate) fn rows(&self, now: u64) -> Vec<UptimeRow> {
        let window = window(now);
        let first_day = window.start - DAY;
        self.days
            .iter()
            .map(|((probe, region), counts)| UptimeRow {
                probe: probe.clone(),
                region: region.clone(),
                days: (0..DAYS)
                    .map(|index| {
                        let start = first_day + index * DAY;
                        let (passed, failed) = counts.get(&start).copied().unwrap_or_default();
                        Day {
                            start,
                            passed,
                            failed,
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T16:25:00Z.
    const NOW: u64 = 1_795_451_100;

    fn series(region: &str, result: &str, points: &[(u64, f64)]) -> Series {
        Series {
            labels: [
                ("probe", "group_message"),
                ("region", region),
                ("result", result),
            ]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn the_window_ends_with_today_and_covers_ninety_days() {
        let window = window(NOW);
        assert_eq!(window.end % DAY, 0);
        assert!(window.end > NOW && window.end - NOW < DAY);
        assert_eq!((window.end - window.start) / DAY + 1, DAYS);
    }

    #[test]
    fn each_day_gets_its_share_of_passing_runs() {
        let today = day_start(NOW);
        let mut uptime = Uptime::default();
        // Yesterday from the past days' query (its point at today's midnight),
        // today so far from the query at the first read.
        uptime.add_series(
            &[
                series("ap-south", "success", &[(today, 100.0)]),
                series("ap-south", "failure", &[(today, 0.0)]),
            ],
            |at| at - DAY,
        );
        uptime.add_series(
            &[
                series("ap-south", "success", &[(NOW - 60, 80.0)]),
                series("ap-south", "failure", &[(NOW - 60, 10.0)]),
                series("eu-west", "success", &[(NOW - 60, 5.0)]),
            ],
            day_start,
        );
        // Then the steps read since.
        uptime.add_steps(&[CellSteps {
            key: crate::outcome::ProbeKey {
                region: "ap-south".into(),
                target: "mock".into(),
                probe: "group_message".into(),
            },
            steps: vec![crate::status_page::samples::Step {
                at: NOW,
                passed: 10,
                ..Default::default()
            }],
        }]);
        let rows = uptime.rows(NOW);
        assert_eq!(rows.len(), 2);
        let ap_south = &rows[0];
        assert_eq!(ap_south.region, "ap-south");
        assert_eq!(ap_south.days.len(), DAYS as usize);
        let last = ap_south.days.last().expect("today");
        assert_eq!(last.start, today);
        assert_eq!(last.share(), Some(0.9));
        assert_eq!(ap_south.days[ap_south.days.len() - 2].share(), Some(1.0));
        assert_eq!(ap_south.days[0].share(), None);
        assert_eq!(ap_south.share(), Some(190.0 / 200.0));
    }

    #[test]
    fn a_day_lists_the_incidents_that_overlap_it_in_its_region() {
        let mut uptime = Uptime::default();
        uptime.add_series(&[series("ap-south", "success", &[(NOW, 1.0)])], day_start);
        let rows = uptime.rows(NOW);
        let row = &rows[0];
        let today = row.days.last().expect("today");
        let incident = |region: &str, start: u64, end: Option<u64>| Incident {
            probe: "group_message".into(),
            regions: [region.to_owned()].into(),
            targets: ["mock".to_owned()].into(),
            reasons: BTreeMap::new(),
            started_at: crate::status::Timestamp::from_unix_seconds(start),
            ended_at: end.map(crate::status::Timestamp::from_unix_seconds),
            duration_seconds: 0,
        };
        let incidents = [
            incident("ap-south", today.start + 60, Some(today.start + 120)),
            incident(
                "ap-south",
                today.start - 3 * DAY,
                Some(today.start - 2 * DAY),
            ),
            incident("ap-south", today.start - DAY, None),
            incident("eu-west", today.start + 60, None),
        ];
        assert_eq!(row.incidents_on(today, &incidents).count(), 2);
    }
}
