//! Uptime per probe and region: for each of the last 90 days (UTC), the
//! share of runs that passed, read from one range query of daily counts.

use std::collections::BTreeMap;

use super::incidents::Incident;
use super::prometheus::Series;
use super::samples::Window;

/// Seconds in a day.
pub(crate) const DAY: u64 = 86_400;
/// How many days the bars cover.
pub(crate) const DAYS: u64 = 90;

/// The query: runs per day by probe, region and result (one point at the
/// end of each day).
pub(crate) const QUERY: &str =
    "sum by (probe, region, result) (increase(chatprobe_probe_runs_total[1d]))";

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

/// The rows of the daily counts in `series` (read over `window`), sorted by
/// probe and region.
pub(crate) fn rows(series: &[Series], window: Window) -> Vec<UptimeRow> {
    let first_day = window.start - DAY;
    let count = usize::try_from((window.end - window.start) / DAY + 1).unwrap_or(0);
    let mut rows: BTreeMap<(String, String), UptimeRow> = BTreeMap::new();
    for one in series {
        let (probe, region) = (one.label("probe"), one.label("region"));
        let row = rows
            .entry((probe.to_owned(), region.to_owned()))
            .or_insert_with(|| UptimeRow {
                probe: probe.to_owned(),
                region: region.to_owned(),
                days: (0..count as u64)
                    .map(|index| Day {
                        start: first_day + index * DAY,
                        passed: 0.0,
                        failed: 0.0,
                    })
                    .collect(),
            });
        for &(at, value) in &one.points {
            let index = at.saturating_sub(window.start) / DAY;
            let (Some(day), true) = (row.days.get_mut(index as usize), value.is_finite()) else {
                continue;
            };
            match one.label("result") {
                "success" => day.passed += value.max(0.0),
                "failure" => day.failed += value.max(0.0),
                _ => {}
            }
        }
    }
    rows.into_values().collect()
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
        let window = window(NOW);
        let today = window.end;
        let yesterday = today - DAY;
        let rows = rows(
            &[
                series("ap-south", "success", &[(yesterday, 100.0), (today, 90.0)]),
                series("ap-south", "failure", &[(yesterday, 0.0), (today, 10.0)]),
                series("eu-west", "success", &[(today, 5.0)]),
            ],
            window,
        );
        assert_eq!(rows.len(), 2);
        let ap_south = &rows[0];
        assert_eq!(ap_south.region, "ap-south");
        assert_eq!(ap_south.days.len(), DAYS as usize);
        let last = ap_south.days.last().expect("today");
        assert_eq!(last.start, today - DAY);
        assert_eq!(last.share(), Some(0.9));
        assert_eq!(ap_south.days[ap_south.days.len() - 2].share(), Some(1.0));
        assert_eq!(ap_south.days[0].share(), None);
        assert_eq!(ap_south.share(), Some(190.0 / 200.0));
    }

    #[test]
    fn a_day_lists_the_incidents_that_overlap_it_in_its_region() {
        let window = window(NOW);
        let rows = rows(
            &[series("ap-south", "success", &[(window.end, 1.0)])],
            window,
        );
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
