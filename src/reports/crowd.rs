//! The crowd signal, as pure functions of counts: per problem and region,
//! the distinct reporters of the last window against a baseline (the mean
//! of the same hour of the week over the last [`BASELINE_WEEKS`] weeks,
//! from the hourly counts, scaled to the window), and the level that makes:
//! `normal`, `elevated` (at least [`ELEVATED`] times the baseline) or `high`
//! (at least [`HIGH`] times), never above `normal` below the floor of
//! `min_reporters`, so a quiet service is not flipped by three people.
//! Also the hourly trend (counts and baseline per hour) the page charts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::config::Problem;
use crate::status::Timestamp;

/// Seconds in an hour.
pub(crate) const HOUR: i64 = 3600;
/// Seconds in a week.
const WEEK: i64 = 7 * 24 * HOUR;
/// Weeks the baseline looks back over.
pub(crate) const BASELINE_WEEKS: i64 = 4;
/// Times the baseline that is `elevated`.
pub(crate) const ELEVATED: f64 = 3.0;
/// Times the baseline that is `high`.
pub(crate) const HIGH: f64 = 10.0;

/// How far a problem's reports stand above normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Level {
    /// Within the usual.
    Normal,
    /// At least [`ELEVATED`] times the baseline, and the floor reached.
    Elevated,
    /// At least [`HIGH`] times the baseline, and the floor reached.
    High,
}

impl Level {
    /// The value of `chatprobe_crowd_level` (**contract**: 0, 1, 2).
    pub(crate) fn gauge(self) -> u8 {
        match self {
            Level::Normal => 0,
            Level::Elevated => 1,
            Level::High => 2,
        }
    }
}

/// Counted reports of one problem in one region in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HourCount {
    /// The hour's start, in seconds since the epoch.
    pub(crate) hour: i64,
    /// The problem's id.
    pub(crate) problem: String,
    /// The region.
    pub(crate) region: String,
    /// Counted reports.
    pub(crate) reports: u64,
}

/// Distinct reporters of one problem in one region within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowCount {
    /// The problem's id.
    pub(crate) problem: String,
    /// The region.
    pub(crate) region: String,
    /// Distinct reporter keys.
    pub(crate) reporters: u64,
}

/// The start of the hour `unix` falls in.
pub(crate) fn hour_start(unix: i64) -> i64 {
    unix.div_euclid(HOUR) * HOUR
}

/// The hours the baseline of `hour` is the mean of: the same hour of the
/// week, one to [`BASELINE_WEEKS`] weeks before.
pub(crate) fn baseline_hours(hour: i64) -> [i64; BASELINE_WEEKS as usize] {
    std::array::from_fn(|weeks_back| hour - WEEK * (weeks_back as i64 + 1))
}

/// The mean of `reports` (counted reports in each of the baseline hours;
/// missing hours count 0) per hour.
fn hourly_mean(reports: u64) -> f64 {
    reports as f64 / BASELINE_WEEKS as f64
}

/// A per-hour rate scaled to `window`.
fn per_window(per_hour: f64, window: Duration) -> f64 {
    per_hour * window.as_secs_f64() / HOUR as f64
}

/// The level of `recent` distinct reporters against `baseline` (reporters
/// expected in a window), with the floor `min_reporters`.
pub(crate) fn level(recent: u64, baseline: f64, min_reporters: u32) -> Level {
    if recent < u64::from(min_reporters) {
        return Level::Normal;
    }
    let recent = recent as f64;
    if recent >= HIGH * baseline {
        Level::High
    } else if recent >= ELEVATED * baseline {
        Level::Elevated
    } else {
        Level::Normal
    }
}

/// The crowd signal of one problem in one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RegionCrowd {
    /// The region.
    pub(crate) region: String,
    /// Distinct reporters in the window.
    pub(crate) recent: u64,
    /// Reporters expected in a window at this hour of the week.
    pub(crate) baseline: f64,
    /// What the two make.
    pub(crate) level: Level,
}

/// The crowd signal of one problem: its regions, and over all of them the
/// reporters, the baseline and the highest level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProblemCrowd {
    /// The problem's id.
    pub(crate) id: String,
    /// What a user reads.
    pub(crate) name: String,
    /// The probes (features) it concerns, or `all`.
    pub(crate) features: Vec<String>,
    /// Distinct reporters in the window, all regions.
    pub(crate) recent: u64,
    /// The baseline, all regions.
    pub(crate) baseline: f64,
    /// The highest level of its regions.
    pub(crate) level: Level,
    /// Each region known or reported from, by name.
    pub(crate) regions: Vec<RegionCrowd>,
}

/// What the crowd signal is computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signal<'a> {
    /// The problems, in their configured order.
    pub(crate) problems: &'a [Problem],
    /// The regions to show even without reports.
    pub(crate) regions: &'a BTreeSet<String>,
    /// The window distinct reporters are counted over.
    pub(crate) window: Duration,
    /// The floor.
    pub(crate) min_reporters: u32,
}

impl Signal<'_> {
    /// Every problem's signal at `now` (seconds since the epoch), from the
    /// window's distinct reporters and hourly counts (those outside the
    /// baseline hours of `now` are ignored).
    pub(crate) fn assess(
        &self,
        now: i64,
        window: &[WindowCount],
        hours: &[HourCount],
    ) -> Vec<ProblemCrowd> {
        let baseline_hours = baseline_hours(hour_start(now));
        let mut past: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for count in hours
            .iter()
            .filter(|count| baseline_hours.contains(&count.hour))
        {
            *past.entry((&count.problem, &count.region)).or_default() += count.reports;
        }
        let recent: BTreeMap<(&str, &str), u64> = window
            .iter()
            .map(|count| {
                (
                    (count.problem.as_str(), count.region.as_str()),
                    count.reporters,
                )
            })
            .collect();
        self.problems
            .iter()
            .map(|problem| self.problem(problem, &recent, &past))
            .collect()
    }

    /// One problem's signal.
    fn problem(
        &self,
        problem: &Problem,
        recent: &BTreeMap<(&str, &str), u64>,
        past: &BTreeMap<(&str, &str), u64>,
    ) -> ProblemCrowd {
        let id = problem.id.0.as_str();
        let mut regions: BTreeSet<&str> = self.regions.iter().map(String::as_str).collect();
        let reported = recent.keys().chain(past.keys());
        regions.extend(
            reported
                .filter(|(of, _)| *of == id)
                .map(|(_, region)| *region),
        );
        let regions: Vec<RegionCrowd> = regions
            .into_iter()
            .map(|region| {
                let recent = recent.get(&(id, region)).copied().unwrap_or(0);
                let past = past.get(&(id, region)).copied().unwrap_or(0);
                let baseline = per_window(hourly_mean(past), self.window);
                RegionCrowd {
                    region: region.to_string(),
                    recent,
                    baseline,
                    level: level(recent, baseline, self.min_reporters),
                }
            })
            .collect();
        ProblemCrowd {
            id: id.to_string(),
            name: problem.name.0.clone(),
            features: problem.features.iter().map(|f| f.0.clone()).collect(),
            recent: regions.iter().map(|r| r.recent).sum(),
            baseline: regions.iter().map(|r| r.baseline).sum(),
            level: regions
                .iter()
                .map(|r| r.level)
                .max()
                .unwrap_or(Level::Normal),
            regions,
        }
    }
}

/// One hour of the trend: counted reports per problem (all regions) and
/// each problem's baseline for that hour (the mean of the same hour of the
/// week over the [`BASELINE_WEEKS`] weeks before it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TrendHour {
    /// The hour's start.
    pub(crate) start: Timestamp,
    /// Counted reports by problem id (every problem, 0 included).
    pub(crate) counts: BTreeMap<String, u64>,
    /// The expected reports by problem id.
    pub(crate) baseline: BTreeMap<String, f64>,
}

/// The hours (spans of hour starts, first and last inclusive) the
/// baseline of `now` reads: its [`baseline_hours`].
pub(crate) fn baseline_spans(now: i64) -> Vec<(i64, i64)> {
    baseline_hours(hour_start(now))
        .iter()
        .map(|hour| (*hour, *hour))
        .collect()
}

/// The hours (spans of hour starts, first and last inclusive) [`trend`]
/// reads for `hours` hours up to the one `now` falls in: those hours and
/// the same hours of each of the [`BASELINE_WEEKS`] weeks before, spans
/// that meet merged, oldest first.
pub(crate) fn trend_spans(now: i64, hours: u32) -> Vec<(i64, i64)> {
    let last = hour_start(now);
    let first = last - HOUR * (i64::from(hours.max(1)) - 1);
    let mut spans: Vec<(i64, i64)> = (0..=BASELINE_WEEKS)
        .rev()
        .map(|weeks| (first - WEEK * weeks, last - WEEK * weeks))
        .collect();
    spans.dedup_by(|later, earlier| {
        let meets = later.0 <= earlier.1 + HOUR;
        if meets {
            earlier.1 = earlier.1.max(later.1);
        }
        meets
    });
    spans
}

/// The last `hours` hours up to the one `now` falls in, oldest first, from
/// `counts` (which should hold the hours of [`trend_spans`]).
pub(crate) fn trend(
    problems: &[Problem],
    counts: &[HourCount],
    now: i64,
    hours: u32,
) -> Vec<TrendHour> {
    let mut by_hour: BTreeMap<(i64, &str), u64> = BTreeMap::new();
    for count in counts {
        *by_hour.entry((count.hour, &count.problem)).or_default() += count.reports;
    }
    let last = hour_start(now);
    (0..i64::from(hours))
        .rev()
        .map(|back| {
            let hour = last - HOUR * back;
            let count = |id: &str, at: i64| by_hour.get(&(at, id)).copied().unwrap_or(0);
            let ids = problems.iter().map(|problem| problem.id.0.as_str());
            TrendHour {
                start: Timestamp::from_unix_seconds(u64::try_from(hour).unwrap_or(0)),
                counts: ids
                    .clone()
                    .map(|id| (id.to_string(), count(id, hour)))
                    .collect(),
                baseline: ids
                    .map(|id| {
                        let past = baseline_hours(hour).iter().map(|at| count(id, *at)).sum();
                        (id.to_string(), hourly_mean(past))
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::config::ReportsConfig;

    /// Sunday 2026-11-29 16:25 UTC.
    const NOW: i64 = 1_795_969_500;
    const WINDOW: Duration = Duration::from_secs(900);

    fn count(hour: i64, problem: &str, region: &str, reports: u64) -> HourCount {
        HourCount {
            hour,
            problem: problem.into(),
            region: region.into(),
            reports,
        }
    }

    fn reporters(problem: &str, region: &str, reporters: u64) -> WindowCount {
        WindowCount {
            problem: problem.into(),
            region: region.into(),
            reporters,
        }
    }

    #[test]
    fn the_floor_holds_the_level_down_and_multiples_of_the_baseline_raise_it() {
        assert_eq!(level(9, 0.0, 10), Level::Normal);
        assert_eq!(level(10, 0.0, 10), Level::High);
        assert_eq!(level(29, 10.0, 10), Level::Normal);
        assert_eq!(level(30, 10.0, 10), Level::Elevated);
        assert_eq!(level(99, 10.0, 10), Level::Elevated);
        assert_eq!(level(100, 10.0, 10), Level::High);
        assert_eq!(level(3, 0.1, 3), Level::High);
        assert_eq!(
            [Level::Normal, Level::Elevated, Level::High].map(Level::gauge),
            [0, 1, 2]
        );
    }

    #[test]
    fn the_baseline_is_the_same_hour_of_the_week_over_four_weeks_scaled_to_the_window() {
        let hour = hour_start(NOW);
        assert_eq!(hour % HOUR, 0);
        assert!(NOW - hour < HOUR);
        assert_eq!(
            baseline_hours(hour),
            [
                hour - WEEK,
                hour - 2 * WEEK,
                hour - 3 * WEEK,
                hour - 4 * WEEK
            ]
        );
        let config = ReportsConfig::default();
        let regions = BTreeSet::from(["eu-west".to_string()]);
        let signal = Signal {
            problems: &config.problems,
            regions: &regions,
            window: WINDOW,
            min_reporters: 10,
        };
        // 40 an hour each Sunday at 16:00 (the fifth week back and the hour
        // before are not the baseline): 10 per 15 minutes expected.
        let mut hours: Vec<HourCount> = baseline_hours(hour)
            .iter()
            .map(|at| count(*at, "not_received", "eu-west", 40))
            .collect();
        hours.push(count(hour - 5 * WEEK, "not_received", "eu-west", 4000));
        hours.push(count(hour - WEEK - HOUR, "not_received", "eu-west", 4000));
        let at = |recent: u64| {
            let window = [reporters("not_received", "eu-west", recent)];
            let crowd = signal.assess(NOW, &window, &hours);
            let problem = crowd
                .into_iter()
                .find(|p| p.id == "not_received")
                .expect("the problem");
            (problem.regions[0].baseline, problem.level)
        };
        assert_eq!(at(29), (10.0, Level::Normal));
        assert_eq!(at(30), (10.0, Level::Elevated));
        assert_eq!(at(100), (10.0, Level::High));
    }

    #[test]
    fn every_problem_and_known_region_is_assessed_and_reported_regions_join() {
        let config = ReportsConfig::default();
        let regions = BTreeSet::from(["eu-west".to_string(), "us-east".to_string()]);
        let signal = Signal {
            problems: &config.problems,
            regions: &regions,
            window: WINDOW,
            min_reporters: 10,
        };
        let window = [
            reporters("cannot_leave", "unknown", 12),
            reporters("cannot_leave", "eu-west", 3),
        ];
        let crowd = signal.assess(NOW, &window, &[]);
        assert_eq!(crowd.len(), config.problems.len());
        let leave = crowd
            .iter()
            .find(|p| p.id == "cannot_leave")
            .expect("cannot_leave");
        let names: Vec<&str> = leave.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(names, ["eu-west", "unknown", "us-east"]);
        assert_eq!((leave.recent, leave.level), (15, Level::High));
        assert_eq!(leave.features, ["leave_group"]);
        let other = crowd
            .iter()
            .find(|p| p.id == "cannot_add")
            .expect("cannot_add");
        assert_eq!(other.regions.len(), 2);
        assert_eq!((other.recent, other.level), (0, Level::Normal));
    }

    #[test]
    fn the_trend_has_every_hour_and_problem_and_each_hours_own_baseline() {
        let config = ReportsConfig::default();
        let last = hour_start(NOW);
        let counts = [
            count(last, "not_sending", "eu-west", 5),
            count(last, "not_sending", "us-east", 2),
            count(last - HOUR, "not_sending", "eu-west", 1),
            count(last - WEEK, "not_sending", "eu-west", 8),
            count(last - HOUR - 2 * WEEK, "not_sending", "eu-west", 12),
        ];
        let spans = trend_spans(NOW, 3);
        assert_eq!(spans.len(), 5);
        assert_eq!(spans[0], (last - 2 * HOUR - 4 * WEEK, last - 4 * WEEK));
        assert_eq!(spans[4], (last - 2 * HOUR, last));
        // A month of hours meets the weeks before it: one span.
        assert_eq!(
            trend_spans(NOW, 720),
            [(last - 719 * HOUR - 4 * WEEK, last)]
        );
        assert_eq!(baseline_spans(NOW)[0], (last - WEEK, last - WEEK));
        let hours = trend(&config.problems, &counts, NOW, 3);
        let starts: Vec<u64> = hours.iter().map(|h| h.start.unix_seconds()).collect();
        let last_u = u64::try_from(last).expect("after the epoch");
        assert_eq!(starts, [last_u - 7200, last_u - 3600, last_u]);
        assert_eq!(hours[2].counts["not_sending"], 7);
        assert_eq!(hours[1].counts["not_sending"], 1);
        assert_eq!(hours[0].counts["cannot_login"], 0);
        assert_eq!(hours[2].counts.len(), config.problems.len());
        assert_eq!(hours[2].baseline["not_sending"], 2.0);
        assert_eq!(hours[1].baseline["not_sending"], 3.0);
        assert_eq!(hours[0].baseline["not_sending"], 0.0);
    }
}
