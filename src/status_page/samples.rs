//! The contract metrics as Prometheus holds them, turned into what happened
//! to each probe × region × target step by step: runs passed and failed,
//! the last run's result, failed steps by operation and reason.
//!
//! Counters are read as differences of their raw values (`x - x offset
//! STEP`), not `increase()`, so counts of runs stay whole numbers; a counter
//! reset (an agent restart) counts as no runs for that step.

use std::collections::BTreeMap;

use super::prometheus::{PrometheusClient, PrometheusError, Series};
use super::selector::{self, CellSet};
use crate::outcome::{Operation, ProbeKey, Reason};

/// The most steps one range query may ask for (Prometheus refuses more than 11,000).
const MAX_STEPS_PER_QUERY: u64 = 10_000;

/// A span of time read at a fixed step: points at `start`, `start + step`, … `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The first point (unix seconds).
    pub(crate) start: u64,
    /// The last point (unix seconds).
    pub(crate) end: u64,
    /// Seconds between points; each point covers the `step` seconds up to it.
    pub(crate) step: u64,
}

/// What happened to one cell in the `step` seconds up to `at`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Step {
    /// The end of the step (unix seconds).
    pub(crate) at: u64,
    /// Runs that passed in the step.
    pub(crate) passed: u32,
    /// Runs that failed in the step.
    pub(crate) failed: u32,
    /// Whether the last run up to `at` passed (`chatprobe_probe_success`), when known.
    pub(crate) last_passed: Option<bool>,
    /// Failed steps in the step, by operation and reason.
    pub(crate) failures: Vec<(Operation, Reason, u32)>,
    /// When the last run up to `at` finished, by the agent's clock.
    pub(crate) last_run_at: Option<u64>,
    /// When Prometheus last scraped the cell, up to `at`.
    pub(crate) sampled_at: Option<u64>,
    /// The mean duration of the step's runs, in seconds.
    pub(crate) mean_duration: Option<f64>,
}

/// One cell's steps, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CellSteps {
    /// Which probe, region and target.
    pub(crate) key: ProbeKey,
    /// Its steps with data, oldest first.
    pub(crate) steps: Vec<Step>,
}

/// How much to read: the counts the incident rule needs, the state of each
/// cell without its failures, or everything the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Runs, the last result and failed steps.
    Counts,
    /// Runs, the last result, the last run's time, the last scrape's time
    /// and durations (no failed steps).
    State,
    /// All of them.
    Full,
}

impl Detail {
    /// Whether failed steps are read.
    fn failures(self) -> bool {
        self != Detail::State
    }

    /// Whether times and durations are read.
    fn times(self) -> bool {
        self != Detail::Counts
    }
}

/// The range answers [`assemble`] combines, one per metric.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// Runs per step by `result`.
    pub(crate) runs: Vec<Series>,
    /// `chatprobe_probe_success`.
    pub(crate) success: Vec<Series>,
    /// Failed steps per step by `operation` and `reason` (steps with some only).
    pub(crate) failures: Vec<Series>,
    /// `chatprobe_last_run_timestamp_seconds`.
    pub(crate) last_run: Vec<Series>,
    /// The time of the last scrape.
    pub(crate) sampled: Vec<Series>,
    /// The mean run duration per step.
    pub(crate) duration: Vec<Series>,
}

impl Answers {
    /// Adds the series of `other`.
    fn extend(&mut self, other: Answers) {
        self.runs.extend(other.runs);
        self.success.extend(other.success);
        self.failures.extend(other.failures);
        self.last_run.extend(other.last_run);
        self.sampled.extend(other.sampled);
        self.duration.extend(other.duration);
    }
}

/// Reads `window` from Prometheus, in as many queries as its length needs:
/// every cell, or (`only`) just the cells of a set.
///
/// Failed steps by operation and reason are many series a cell (every pair
/// the contract allows, from 0), so they are read only for the cells whose
/// runs failed in the window; `cleanup`, which fails no run, for every cell.
pub(crate) async fn fetch(
    client: &PrometheusClient,
    window: Window,
    detail: Detail,
    only: Option<&CellSet>,
) -> Result<Vec<CellSteps>, PrometheusError> {
    let groups = match only {
        None => vec![String::new()],
        Some(cells) => selector::matchers(cells),
    };
    let mut answers = Answers::default();
    for chunk in chunks(window) {
        for group in &groups {
            answers.extend(fetch_chunk(client, chunk, detail, group).await?);
        }
    }
    let mut cells = assemble(answers);
    if let Some(wanted) = only {
        cells.retain(|cell| wanted.contains(&cell.key));
    }
    Ok(cells)
}

/// `window` cut into windows of at most [`MAX_STEPS_PER_QUERY`] points.
fn chunks(window: Window) -> Vec<Window> {
    let step = window.step.max(1);
    let span = step * MAX_STEPS_PER_QUERY;
    let mut chunks = Vec::new();
    let mut start = window.start;
    while start <= window.end {
        let end = (start + span - step).min(window.end);
        chunks.push(Window { start, end, step });
        start = end + step;
    }
    chunks
}

/// `metric` with the label matchers of `parts` that are not empty.
fn selected(metric: &str, parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    match parts.is_empty() {
        true => metric.to_owned(),
        false => format!("{metric}{{{}}}", parts.join(",")),
    }
}

/// The cells of `runs` with a failed run at some point.
fn failing_cells(runs: &[Series]) -> CellSet {
    runs.iter()
        .filter(|series| series.label("result") == "failure")
        .filter(|series| series.points.iter().any(|&(_, value)| count(value) > 0))
        .map(key_of)
        .collect()
}

/// One window of the cells `group` selects (empty: every cell).
async fn fetch_chunk(
    client: &PrometheusClient,
    window: Window,
    detail: Detail,
    group: &str,
) -> Result<Answers, PrometheusError> {
    let step = window.step;
    let cell = "region, target, probe";
    let delta = |metric: &str, parts: &[&str]| {
        let metric = selected(metric, parts);
        format!("({metric} - {metric} offset {step}s)")
    };
    let range = |query: String| async move {
        client
            .range(&query, window.start, window.end, window.step)
            .await
    };
    let runs = range(format!(
        "sum by ({cell}, result) {}",
        delta("chatprobe_probe_runs_total", &[group])
    ));
    let success = range(format!(
        "max by ({cell}) ({})",
        selected("chatprobe_probe_success", &[group])
    ));
    let failures_by = |parts: &[&str]| {
        format!(
            "sum by ({cell}, operation, reason) {} > 0",
            delta("chatprobe_operation_failures_total", parts)
        )
    };
    let cleanup = async {
        match detail.failures() {
            true => range(failures_by(&[group, r#"operation="cleanup""#])).await,
            false => Ok(Vec::new()),
        }
    };
    let times = async {
        if !detail.times() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let last_run = range(format!(
            "max by ({cell}) ({})",
            selected("chatprobe_last_run_timestamp_seconds", &[group])
        ));
        let sampled = range(format!(
            "max by ({cell}) (timestamp({}))",
            selected("chatprobe_probe_success", &[group])
        ));
        let duration = range(format!(
            "sum by ({cell}) {} / sum by ({cell}) {} > 0",
            delta("chatprobe_probe_duration_seconds_sum", &[group]),
            delta("chatprobe_probe_duration_seconds_count", &[group])
        ));
        Ok::<_, PrometheusError>((last_run.await?, sampled.await?, duration.await?))
    };
    // One after the other: an answer about every cell is tens of
    // megabytes once parsed, and the page's memory is their sum at once.
    let (runs, success, mut failures) = (runs.await?, success.await?, cleanup.await?);
    let (last_run, sampled, duration) = times.await?;
    if detail.failures() {
        for failing in selector::matchers(&failing_cells(&runs)) {
            let parts = [failing.as_str(), r#"operation!="cleanup""#];
            failures.extend(range(failures_by(&parts)).await?);
        }
    }
    Ok(Answers {
        runs,
        success,
        failures,
        last_run,
        sampled,
        duration,
    })
}

/// The cell a series belongs to.
pub(crate) fn key_of(series: &Series) -> ProbeKey {
    ProbeKey {
        region: series.label("region").to_owned(),
        target: series.label("target").to_owned(),
        probe: series.label("probe").to_owned(),
    }
}

/// A count from a counter difference: whole, never negative (a reset).
pub(crate) fn count(value: f64) -> u32 {
    if value.is_finite() && value > 0.0 {
        value.round().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// The answers combined into each cell's steps (pure: unit-tested on
/// synthetic series).
pub(crate) fn assemble(answers: Answers) -> Vec<CellSteps> {
    let mut cells: BTreeMap<ProbeKey, BTreeMap<u64, Step>> = BTreeMap::new();
    let mut each = |series: &[Series], apply: &dyn Fn(&mut Step, &Series, f64)| {
        for one in series {
            let steps = cells.entry(key_of(one)).or_default();
            for &(at, value) in &one.points {
                let step = steps.entry(at).or_insert_with(|| Step {
                    at,
                    ..Step::default()
                });
                apply(step, one, value);
            }
        }
    };
    each(
        &answers.runs,
        &|step, series, value| match series.label("result") {
            "success" => step.passed = step.passed.saturating_add(count(value)),
            "failure" => step.failed = step.failed.saturating_add(count(value)),
            _ => {}
        },
    );
    each(&answers.success, &|step, _, value| {
        step.last_passed = Some(value >= 1.0);
    });
    each(&answers.failures, &|step, series, value| {
        let operation = Operation::ALL
            .iter()
            .find(|op| op.as_str() == series.label("operation"));
        let reason = Reason::ALL
            .iter()
            .find(|reason| reason.as_str() == series.label("reason"));
        if let (Some(&operation), Some(&reason)) = (operation, reason) {
            step.failures.push((operation, reason, count(value)));
        }
    });
    let seconds = |value: f64| (value.is_finite() && value >= 0.0).then_some(value as u64);
    each(&answers.last_run, &|step, _, value| {
        step.last_run_at = seconds(value);
    });
    each(&answers.sampled, &|step, _, value| {
        step.sampled_at = seconds(value);
    });
    each(&answers.duration, &|step, _, value| {
        step.mean_duration = value.is_finite().then_some(value);
    });
    cells
        .into_iter()
        .map(|(key, steps)| CellSteps {
            key,
            steps: steps.into_values().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], points: &[(u64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            points: points.to_vec(),
        }
    }

    const CELL: [(&str, &str); 3] = [
        ("region", "ap-south"),
        ("target", "mock"),
        ("probe", "group_message"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        CELL.iter().chain(extra).copied().collect()
    }

    #[test]
    fn the_answers_become_steps_per_cell() {
        let answers = Answers {
            runs: vec![
                series(&with(&[("result", "success")]), &[(10, 1.0), (20, 0.0)]),
                series(&with(&[("result", "failure")]), &[(10, 0.0), (20, 2.0)]),
            ],
            success: vec![series(&CELL, &[(10, 1.0), (20, 0.0)])],
            failures: vec![series(
                &with(&[("operation", "send"), ("reason", "http_error")]),
                &[(20, 2.0)],
            )],
            ..Answers::default()
        };
        let cells = assemble(answers);
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].key.region, "ap-south");
        let steps = &cells[0].steps;
        assert_eq!((steps[0].at, steps[0].passed, steps[0].failed), (10, 1, 0));
        assert_eq!(steps[0].last_passed, Some(true));
        assert_eq!((steps[1].passed, steps[1].failed), (0, 2));
        assert_eq!(steps[1].last_passed, Some(false));
        assert_eq!(steps[1].failures, [(Operation::Send, Reason::HttpError, 2)]);
    }

    #[test]
    fn resets_and_unknown_labels_count_nothing() {
        let answers = Answers {
            runs: vec![series(&with(&[("result", "failure")]), &[(10, -7.0)])],
            failures: vec![series(
                &with(&[("operation", "send"), ("reason", "no_such_reason")]),
                &[(10, 1.0)],
            )],
            ..Answers::default()
        };
        let cells = assemble(answers);
        assert_eq!(cells[0].steps[0].failed, 0);
        assert!(cells[0].steps[0].failures.is_empty());
    }

    #[test]
    fn long_windows_are_cut_into_queries_prometheus_accepts() {
        let window = Window {
            start: 0,
            end: 25_000,
            step: 1,
        };
        let parts = chunks(window);
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0].start, parts[0].end), (0, 9_999));
        assert_eq!((parts[2].start, parts[2].end), (20_000, 25_000));
        let short = Window {
            start: 5,
            end: 5,
            step: 10,
        };
        assert_eq!(chunks(short), [short]);
    }
}
