//! Incidents, derived from the series: one per probe (its regions and
//! targets grouped), opened when the probe is failing as the shipped alert
//! rules define it (its last run failed and it failed at least twice in 2
//! minutes) and ended when every cell it involved has passed twice in a row.
//!
//! [`IncidentTracker`] takes the steps in as they are read (the history at
//! `--incident-step`, then the last hour at 10 s) and keeps only a few
//! numbers a cell; it is pure, so the rule is unit-tested on synthetic series.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::samples::{CellSteps, Step};
use crate::outcome::{Operation, ProbeKey, Reason};
use crate::status::Timestamp;

/// When an incident opens and ends (the defaults are the shipped rules').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IncidentRule {
    /// How far back failed runs are counted (`2m`).
    pub(crate) window: Duration,
    /// Failed runs within `window` that, with the last run failed, open an incident (2).
    pub(crate) failed_runs: u32,
    /// Passing runs in a row that end it, in every cell it involved (2).
    pub(crate) passed_runs: u32,
}

impl Default for IncidentRule {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            failed_runs: 2,
            passed_runs: 2,
        }
    }
}

/// One incident of one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Incident {
    /// The probe that failed.
    pub(crate) probe: String,
    /// The regions where it failed, sorted.
    pub(crate) regions: BTreeSet<String>,
    /// The targets it failed against, sorted.
    pub(crate) targets: BTreeSet<String>,
    /// Why, each reason with its words and the operations it hit.
    #[serde(serialize_with = "reasons_in_words")]
    pub(crate) reasons: BTreeMap<Reason, BTreeSet<Operation>>,
    /// When the probe started failing by the rule.
    pub(crate) started_at: Timestamp,
    /// When it ended (`null` while ongoing).
    pub(crate) ended_at: Option<Timestamp>,
    /// From start to end, or to now while ongoing.
    pub(crate) duration_seconds: u64,
}

impl Incident {
    /// Whether it has not ended yet.
    pub(crate) fn ongoing(&self) -> bool {
        self.ended_at.is_none()
    }

    /// Whether it overlaps the span from `start` to `end` (unix seconds).
    pub(crate) fn overlaps(&self, start: u64, end: u64) -> bool {
        let ended = self.ended_at.map_or(u64::MAX, Timestamp::unix_seconds);
        self.started_at.unix_seconds() < end && ended >= start
    }

    /// Its reasons as text: `http_error (send)`, comma-separated.
    pub(crate) fn reasons_text(&self) -> String {
        self.reasons
            .iter()
            .map(|(reason, operations)| {
                let operations: Vec<&str> = operations.iter().map(|op| op.as_str()).collect();
                format!("{}: {} ({reason})", operations.join(", "), reason.phrase())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One reason of an incident, as JSON.
#[derive(Serialize)]
struct ReasonInWords<'a> {
    reason: Reason,
    reason_text: &'static str,
    operations: &'a BTreeSet<Operation>,
}

fn reasons_in_words<S: Serializer>(
    reasons: &BTreeMap<Reason, BTreeSet<Operation>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(reasons.iter().map(|(&reason, operations)| ReasonInWords {
        reason,
        reason_text: reason.phrase(),
        operations,
    }))
}

/// The incident rule run incrementally: steps go in, in time order, batch
/// after batch (a batch holds every cell's steps of one span of time), and
/// the incidents found so far come out. What it keeps is a few numbers a
/// cell and the incidents themselves, never the steps.
#[derive(Debug, Clone)]
pub(crate) struct IncidentTracker {
    rule: IncidentRule,
    probes: BTreeMap<String, ProbeTracker>,
}

impl IncidentTracker {
    /// A tracker that has seen nothing.
    pub(crate) fn new(rule: IncidentRule) -> Self {
        Self {
            rule,
            probes: BTreeMap::new(),
        }
    }

    /// Takes in the steps of `cells`, all later than any taken in before.
    pub(crate) fn advance(&mut self, cells: &[CellSteps]) {
        let mut timelines: BTreeMap<&str, Timeline<'_>> = BTreeMap::new();
        for cell in cells {
            let timeline = timelines.entry(&cell.key.probe).or_default();
            for step in &cell.steps {
                timeline.entry(step.at).or_default().push((&cell.key, step));
            }
        }
        for (probe, timeline) in timelines {
            let tracker = self
                .probes
                .entry(probe.to_owned())
                .or_insert_with(|| ProbeTracker::new(probe));
            for (at, steps) in timeline {
                tracker.advance(at, &steps, self.rule);
            }
        }
    }

    /// The cells the ongoing incidents involve.
    pub(crate) fn involved(&self) -> impl Iterator<Item = &ProbeKey> + '_ {
        self.probes
            .values()
            .filter_map(|tracker| tracker.open.as_ref())
            .flat_map(|(_, involved)| involved.iter())
    }

    /// Forgets incidents that ended before `cutoff` (unix seconds).
    pub(crate) fn forget_before(&mut self, cutoff: u64) {
        for tracker in self.probes.values_mut() {
            tracker.ended.retain(|incident| {
                incident
                    .ended_at
                    .is_none_or(|end| end.unix_seconds() >= cutoff)
            });
        }
    }

    /// Every incident found, newest first; `now` bounds ongoing durations.
    pub(crate) fn incidents(&self, now: u64) -> Vec<Incident> {
        let mut incidents: Vec<Incident> = self
            .probes
            .values()
            .flat_map(|tracker| {
                let open = tracker.open.as_ref().map(|(incident, _)| {
                    let mut incident = incident.clone();
                    incident.duration_seconds =
                        now.saturating_sub(incident.started_at.unix_seconds());
                    incident
                });
                tracker.ended.iter().cloned().chain(open)
            })
            .collect();
        incidents.sort_by_key(|incident| std::cmp::Reverse(incident.started_at));
        incidents
    }
}

/// One probe's steps of a batch, by the time they end.
type Timeline<'a> = BTreeMap<u64, Vec<(&'a ProbeKey, &'a Step)>>;

/// The rule over the cells of one probe.
#[derive(Debug, Clone)]
struct ProbeTracker {
    probe: String,
    states: BTreeMap<ProbeKey, CellState>,
    /// The cells failing by the rule now.
    failing: BTreeSet<ProbeKey>,
    /// The ongoing incident and the cells it involves.
    open: Option<(Incident, BTreeSet<ProbeKey>)>,
    /// The incidents that ended, oldest first.
    ended: Vec<Incident>,
}

impl ProbeTracker {
    fn new(probe: &str) -> Self {
        Self {
            probe: probe.to_owned(),
            states: BTreeMap::new(),
            failing: BTreeSet::new(),
            open: None,
            ended: Vec::new(),
        }
    }

    /// Takes in the steps of its cells that end at `at`.
    fn advance(&mut self, at: u64, steps: &[(&ProbeKey, &Step)], rule: IncidentRule) {
        let window = rule.window.as_secs().max(1);
        for &(key, step) in steps {
            let state = self.states.entry(key.clone()).or_default();
            state.advance(step, window);
            match state.failing(rule) {
                true => self.failing.insert(key.clone()),
                false => self.failing.remove(key),
            };
        }
        if self.open.is_none() && !self.failing.is_empty() {
            self.open = Some((new_incident(&self.probe, at), BTreeSet::new()));
        }
        let Some((incident, involved)) = self.open.as_mut() else {
            return;
        };
        for key in &self.failing {
            if involved.insert(key.clone())
                && let Some(state) = self.states.get(key)
            {
                join(incident, key, state);
            }
        }
        for &(key, step) in steps {
            if involved.contains(key) {
                for &(operation, reason, _) in &step.failures {
                    incident
                        .reasons
                        .entry(reason)
                        .or_default()
                        .insert(operation);
                }
            }
        }
        let recovered = involved.iter().all(|key| {
            self.states
                .get(key)
                .is_some_and(|state| state.recovered(rule))
        });
        if recovered && let Some((mut incident, _)) = self.open.take() {
            incident.ended_at = Some(Timestamp::from_unix_seconds(at));
            incident.duration_seconds = at.saturating_sub(incident.started_at.unix_seconds());
            self.ended.push(incident);
        }
    }
}

/// A step with failed runs: its end, how many failed, their failed steps.
type FailedStep = (u64, u32, Vec<(Operation, Reason)>);

/// What the rule remembers about one cell.
#[derive(Debug, Clone, Default)]
struct CellState {
    /// Steps with failed runs within the window.
    recent: VecDeque<FailedStep>,
    last_failed: bool,
    passes_in_a_row: u32,
}

impl CellState {
    /// Takes in one step.
    fn advance(&mut self, step: &Step, window: u64) {
        let reasons: Vec<(Operation, Reason)> = step
            .failures
            .iter()
            .map(|&(operation, reason, _)| (operation, reason))
            .collect();
        if step.failed > 0 || !reasons.is_empty() {
            self.recent.push_back((step.at, step.failed, reasons));
        }
        while self
            .recent
            .front()
            .is_some_and(|&(at, _, _)| at.saturating_add(window) <= step.at)
        {
            self.recent.pop_front();
        }
        // Within one step the order of runs is unknown: a step with a failed
        // run counts as failing (when that run finished, it was the last
        // one), so a failure seen while the step was still being read stays
        // seen once the whole step is; passes count from the next step.
        let last_failed = step.failed > 0
            || match step.last_passed {
                Some(passed) => !passed,
                None if step.passed > 0 => false,
                None => self.last_failed,
            };
        self.passes_in_a_row = match (step.failed, last_failed) {
            (0, false) => self.passes_in_a_row.saturating_add(step.passed),
            _ => 0,
        };
        self.last_failed = last_failed;
    }

    fn failing(&self, rule: IncidentRule) -> bool {
        let failed: u32 = self.recent.iter().map(|(_, failed, _)| failed).sum();
        self.last_failed && failed >= rule.failed_runs
    }

    fn recovered(&self, rule: IncidentRule) -> bool {
        !self.last_failed && self.passes_in_a_row >= rule.passed_runs
    }

    fn reasons(&self) -> impl Iterator<Item = (Operation, Reason)> + '_ {
        self.recent
            .iter()
            .flat_map(|(_, _, reasons)| reasons.iter().copied())
    }
}

fn new_incident(probe: &str, at: u64) -> Incident {
    Incident {
        probe: probe.to_owned(),
        regions: BTreeSet::new(),
        targets: BTreeSet::new(),
        reasons: BTreeMap::new(),
        started_at: Timestamp::from_unix_seconds(at),
        ended_at: None,
        duration_seconds: 0,
    }
}

/// Adds a cell that started failing to an incident, with the reasons of
/// its failures in the window.
fn join(incident: &mut Incident, key: &ProbeKey, state: &CellState) {
    incident.regions.insert(key.region.clone());
    incident.targets.insert(key.target.clone());
    for (operation, reason) in state.reasons() {
        incident
            .reasons
            .entry(reason)
            .or_default()
            .insert(operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every incident in `cells`, newest first; `now` bounds ongoing durations.
    fn derive(cells: &[CellSteps], rule: IncidentRule, now: u64) -> Vec<Incident> {
        let mut tracker = IncidentTracker::new(rule);
        tracker.advance(cells);
        tracker.incidents(now)
    }

    /// One run a step, 10 s apart from t = 1000: `F` failed (http_error at
    /// send), `P` passed, `.` no run.
    fn cell(region: &str, runs: &str) -> CellSteps {
        let steps = runs
            .chars()
            .enumerate()
            .map(|(index, run)| {
                let at = 1000 + 10 * index as u64;
                match run {
                    'F' => Step {
                        at,
                        failed: 1,
                        last_passed: Some(false),
                        failures: vec![(Operation::Send, Reason::HttpError, 1)],
                        ..Step::default()
                    },
                    'P' => Step {
                        at,
                        passed: 1,
                        last_passed: Some(true),
                        ..Step::default()
                    },
                    _ => Step {
                        at,
                        ..Step::default()
                    },
                }
            })
            .collect();
        CellSteps {
            key: ProbeKey {
                region: region.into(),
                target: "mock".into(),
                probe: "group_message".into(),
            },
            steps,
        }
    }

    fn incidents(cells: &[CellSteps]) -> Vec<Incident> {
        derive(cells, IncidentRule::default(), 2000)
    }

    fn span(incident: &Incident) -> (u64, Option<u64>) {
        (
            incident.started_at.unix_seconds(),
            incident.ended_at.map(Timestamp::unix_seconds),
        )
    }

    #[test]
    fn a_single_failed_run_is_no_incident() {
        assert!(incidents(&[cell("eu-west", "PPFPPPP")]).is_empty());
    }

    #[test]
    fn failures_more_than_two_minutes_apart_are_no_incident() {
        // Failed at 1020, then at 1160: 140 s apart.
        assert!(incidents(&[cell("eu-west", "PPFPPPPPPPPPPPPFPP")]).is_empty());
    }

    #[test]
    fn two_failures_open_it_and_two_passes_in_a_row_end_it() {
        let found = incidents(&[cell("ap-south", "PPFFFPP")]);
        assert_eq!(found.len(), 1);
        let incident = &found[0];
        // Opened at the second failure (1030), ended at the second pass (1060).
        assert_eq!(span(incident), (1030, Some(1060)));
        assert_eq!(incident.duration_seconds, 30);
        assert_eq!(incident.probe, "group_message");
        assert_eq!(incident.regions, BTreeSet::from(["ap-south".to_owned()]));
        assert_eq!(
            incident.reasons,
            BTreeMap::from([(Reason::HttpError, BTreeSet::from([Operation::Send]))])
        );
    }

    #[test]
    fn one_pass_between_failures_does_not_end_it() {
        let found = incidents(&[cell("ap-south", "FFPFFPFPP")]);
        assert_eq!(found.len(), 1);
        assert_eq!(span(&found[0]), (1010, Some(1080)));
    }

    #[test]
    fn a_new_failure_after_recovery_is_a_new_incident() {
        let found = incidents(&[cell("ap-south", "FFPPFFPP")]);
        assert_eq!(found.len(), 2);
        // Newest first; the failures at 1000 and 1010 are still within 2
        // minutes, so the first new failure (1040) opens the second.
        assert_eq!(span(&found[0]), (1040, Some(1070)));
        assert_eq!(span(&found[1]), (1010, Some(1030)));
    }

    #[test]
    fn an_incident_still_failing_is_ongoing_until_now() {
        let found = incidents(&[cell("ap-south", "PFFF")]);
        assert_eq!(span(&found[0]), (1020, None));
        assert!(found[0].ongoing());
        assert_eq!(found[0].duration_seconds, 2000 - 1020);
    }

    #[test]
    fn regions_of_one_probe_are_grouped_and_all_must_recover() {
        let found = incidents(&[
            cell("eu-west", "FFPPPPPP"),
            cell("ap-south", "PPFFFFPP"),
            cell("us-east", "PPPPPPPP"),
        ]);
        assert_eq!(found.len(), 1);
        assert_eq!(span(&found[0]), (1010, Some(1070)));
        let regions: Vec<&str> = found[0].regions.iter().map(String::as_str).collect();
        assert_eq!(regions, ["ap-south", "eu-west"]);
    }

    #[test]
    fn a_step_with_a_failed_run_counts_as_failing_whatever_its_last_run() {
        let mut cells = cell("ap-south", "FFPPP");
        // The step at 1020 had a failure and two passes, the last one passing:
        // the passes in a row count from the next step.
        cells.steps[2] = Step {
            at: 1020,
            failed: 1,
            passed: 2,
            last_passed: Some(true),
            ..Step::default()
        };
        let found = incidents(&[cells]);
        assert_eq!(span(&found[0]), (1010, Some(1040)));
        // Two failed runs in one step that ended passing open one too.
        let mut quick = cell("eu-west", "PPPPP");
        quick.steps[1] = Step {
            at: 1010,
            failed: 2,
            passed: 3,
            last_passed: Some(true),
            ..Step::default()
        };
        assert_eq!(span(&incidents(&[quick])[0]), (1010, Some(1030)));
    }

    #[test]
    fn gaps_without_runs_change_nothing() {
        let found = incidents(&[cell("ap-south", "F.F..P.P")]);
        assert_eq!(span(&found[0]), (1020, Some(1070)));
    }

    #[test]
    fn as_json_reasons_carry_their_words() {
        let found = incidents(&[cell("ap-south", "FFPP")]);
        let json = serde_json::to_value(&found[0]).expect("serializes");
        assert_eq!(json["started_at"], "1970-01-01T00:16:50Z");
        assert_eq!(json["ended_at"], "1970-01-01T00:17:10Z");
        assert_eq!(json["regions"], serde_json::json!(["ap-south"]));
        assert_eq!(
            json["reasons"],
            serde_json::json!([{
                "reason": "http_error",
                "reason_text": "answered with an error",
                "operations": ["send"],
            }])
        );
    }
}
