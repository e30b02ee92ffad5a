//! What the public page says of each feature: one state per feature and
//! region, from the probes' cells and the crowd's reports, in the words a
//! user of the chat service reads.
//!
//! The rule (one pure function, [`derive`]):
//! - probes failing in a region (the cell red and confirmed by a second
//!   failed run) say *Outage* when half or more of its targets fail, else
//!   *Degraded*; amber cells (late delivery) say *Degraded*;
//! - with the probes passing, a problem of the feature that the crowd
//!   reports at `elevated` or above says *Users report problems*: the crowd
//!   alone never says *Outage*;
//! - both together are *confirmed* by the reporters counted in the window;
//! - a region with no fresh cell is *Unknown*, and a blind page (Prometheus
//!   unreadable) says *Unknown* everywhere: never green when blind.
//!
//! A feature's state is the worst of its regions' (outage, degraded,
//! users report problems, operational); reports whose region is not known
//! concern every region of the features they name.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::status_page::{Feature as WordedFeature, PublicWording};
use crate::probe::ProbeKind;
use crate::status::{CellView, Health};

/// The region reports carry when the reporter's region is not known.
pub(crate) const UNKNOWN_REGION: &str = "unknown";

/// A feature's (or one region's) state on the public page (**contract**
/// values of `state` in `/api/status`'s `features`), mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FeatureState {
    /// Nothing can be told: no fresh data, or Prometheus unreadable.
    Unknown,
    /// The probes pass and the crowd is quiet.
    Operational,
    /// The probes pass but users report problems.
    UsersReportProblems,
    /// Some targets fail, or runs are slow.
    Degraded,
    /// The probes fail.
    Outage,
}

impl FeatureState {
    /// The state in words, without the reports that confirm it.
    pub(crate) fn words(self) -> &'static str {
        match self {
            FeatureState::Unknown => "Unknown",
            FeatureState::Operational => "Operational",
            FeatureState::UsersReportProblems => "Users report problems",
            FeatureState::Degraded => "Degraded",
            FeatureState::Outage => "Outage",
        }
    }

    /// Whether the probes see the problem.
    fn probes_fail(self) -> bool {
        matches!(self, FeatureState::Degraded | FeatureState::Outage)
    }
}

/// What the crowd says of some features in one region now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrowdReading {
    /// The probes of the features the problem concerns (empty: every feature).
    pub(crate) features: Vec<String>,
    /// The region reported, or [`UNKNOWN_REGION`].
    pub(crate) region: String,
    /// Distinct reporters in the window.
    pub(crate) reporters: u64,
    /// Whether the crowd signal is `elevated` or `high`.
    pub(crate) raised: bool,
}

impl CrowdReading {
    fn concerns(&self, probe: &str, region: &str) -> bool {
        (self.features.is_empty() || self.features.iter().any(|f| f == probe))
            && (self.region == region || self.region == UNKNOWN_REGION)
    }
}

/// One feature in one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RegionState {
    /// The region label.
    pub(crate) region: String,
    /// Its display name.
    pub(crate) name: String,
    /// Its state.
    pub(crate) state: FeatureState,
    /// Reporters of this feature's raised problems in the window (the most of any one problem).
    pub(crate) reports: u64,
}

/// One feature, as `/api/status` lists it under `features`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Feature {
    /// The probe that checks it.
    pub(crate) probe: String,
    /// Its name for users.
    pub(crate) name: String,
    /// One line on what it covers.
    pub(crate) description: String,
    /// The worst of its regions' states.
    pub(crate) state: FeatureState,
    /// Reporters confirming what the probes see, summed over the regions
    /// where both agree (`null` when none do).
    pub(crate) confirmed_by_reports: Option<u64>,
    /// Each region the probes run in, in the order of the page.
    pub(crate) regions: Vec<RegionState>,
}

impl Feature {
    /// The state as the page words it ("Outage, confirmed by 41 user reports").
    pub(crate) fn state_words(&self) -> String {
        match self.confirmed_by_reports {
            Some(1) => format!("{}, confirmed by 1 user report", self.state.words()),
            Some(reports) => format!(
                "{}, confirmed by {reports} user reports",
                self.state.words()
            ),
            None => self.state.words().to_owned(),
        }
    }
}

/// What the features' states are derived from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evidence<'a> {
    /// Every cell of the last reading.
    pub(crate) cells: &'a [CellView],
    /// Whether Prometheus could not be read.
    pub(crate) blind: bool,
    /// The crowd now, per problem and region.
    pub(crate) crowd: &'a [CrowdReading],
}

/// Every feature the cells show (see [`feature_words`] for the order), in
/// `wording`'s names, with its regions' display names (else the region label).
pub(crate) fn derive(wording: &PublicWording, evidence: Evidence<'_>) -> Vec<Feature> {
    let regions = regions_of(evidence.cells);
    let region_names = &wording.regions;
    feature_words(&wording.features, evidence.cells)
        .into_iter()
        .map(|words| {
            let regions: Vec<RegionState> = regions
                .iter()
                .map(|region| region_state(&words.probe, region, region_names, evidence))
                .collect();
            let state = worst(&regions, evidence.blind);
            let confirmed: u64 = regions
                .iter()
                .filter(|region| region.state.probes_fail())
                .map(|region| region.reports)
                .sum();
            Feature {
                probe: words.probe,
                name: words.name,
                description: words.description,
                state,
                confirmed_by_reports: (state.probes_fail() && confirmed > 0).then_some(confirmed),
                regions,
            }
        })
        .collect()
}

/// The regions the cells show, sorted.
fn regions_of(cells: &[CellView]) -> Vec<String> {
    let mut regions: Vec<String> = cells.iter().map(|cell| cell.key.region.clone()).collect();
    regions.sort_unstable();
    regions.dedup();
    regions
}

/// A feature's probe and words.
struct FeatureWords {
    probe: String,
    name: String,
    description: String,
}

/// The features the cells show: the shipped kinds' probes first, in the
/// kinds' order, then the others by probe name; each in `named`'s words,
/// else under its probe name.
fn feature_words(named: &BTreeMap<String, WordedFeature>, cells: &[CellView]) -> Vec<FeatureWords> {
    let mut probes: Vec<&str> = cells.iter().map(|cell| cell.key.probe.as_str()).collect();
    probes.sort_unstable();
    probes.dedup();
    let kind_rank = |probe: &str| {
        ProbeKind::ALL
            .iter()
            .position(|kind| kind.as_str() == probe)
            .unwrap_or(ProbeKind::ALL.len())
    };
    probes.sort_by_key(|probe| kind_rank(probe));
    probes
        .into_iter()
        .map(|probe| match named.get(probe) {
            Some(words) => FeatureWords {
                probe: probe.to_owned(),
                name: words.name.clone(),
                description: words.description.clone(),
            },
            None => FeatureWords {
                probe: probe.to_owned(),
                name: probe.to_owned(),
                description: String::new(),
            },
        })
        .collect()
}

fn region_state(
    probe: &str,
    region: &str,
    region_names: &BTreeMap<String, String>,
    evidence: Evidence<'_>,
) -> RegionState {
    let raised = evidence
        .crowd
        .iter()
        .filter(|reading| reading.raised && reading.concerns(probe, region));
    let reports = raised.map(|reading| reading.reporters).max().unwrap_or(0);
    let probes = if evidence.blind {
        FeatureState::Unknown
    } else {
        probe_state(
            evidence
                .cells
                .iter()
                .filter(|cell| !cell.stale && cell.key.probe == probe && cell.key.region == region),
        )
    };
    let state = match probes {
        FeatureState::Operational if reports > 0 => FeatureState::UsersReportProblems,
        other => other,
    };
    RegionState {
        region: region.to_owned(),
        name: region_names
            .get(region)
            .cloned()
            .unwrap_or_else(|| region.to_owned()),
        state,
        reports,
    }
}

/// What the fresh cells of one feature in one region say.
fn probe_state<'a>(cells: impl Iterator<Item = &'a CellView>) -> FeatureState {
    let (mut known, mut failing, mut slow) = (0_usize, 0_usize, 0_usize);
    for cell in cells {
        match cell.state {
            Health::Unknown => continue,
            Health::Red if cell.consecutive_failures >= 2 => failing += 1,
            Health::Amber => slow += 1,
            Health::Green | Health::Red => {}
        }
        known += 1;
    }
    if known == 0 {
        FeatureState::Unknown
    } else if failing * 2 >= known && failing > 0 {
        FeatureState::Outage
    } else if failing > 0 || slow > 0 {
        FeatureState::Degraded
    } else {
        FeatureState::Operational
    }
}

/// The worst of the regions' states; unknown when blind or when no region is known.
fn worst(regions: &[RegionState], blind: bool) -> FeatureState {
    if blind {
        return FeatureState::Unknown;
    }
    regions
        .iter()
        .map(|region| region.state)
        .max()
        .unwrap_or(FeatureState::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ProbeKey;
    use crate::status::Timestamp;

    fn cell(probe: &str, region: &str, target: &str, state: Health, failures: u64) -> CellView {
        CellView {
            key: ProbeKey {
                region: region.to_owned(),
                target: target.to_owned(),
                probe: probe.to_owned(),
            },
            state,
            reasons: Vec::new(),
            last_run_at: Timestamp::from_unix_seconds(1_000),
            age_seconds: 1,
            duration_seconds: 0.1,
            consecutive_failures: failures,
            failing_since: None,
            last_success_at: None,
            messages_expected: 0,
            messages_delivered: 0,
            failures: Vec::new(),
            stale: false,
        }
    }

    fn wording() -> PublicWording {
        let feature = WordedFeature {
            name: "Sending and receiving group messages".to_owned(),
            description: "Messages you send reach everyone in the group.".to_owned(),
        };
        PublicWording {
            features: BTreeMap::from([("group_message".to_owned(), feature)]),
            regions: BTreeMap::from([("ap-south".to_owned(), "Asia South".to_owned())]),
        }
    }

    fn crowd(region: &str, reporters: u64, raised: bool) -> CrowdReading {
        CrowdReading {
            features: vec!["group_message".to_owned()],
            region: region.to_owned(),
            reporters,
            raised,
        }
    }

    fn features(cells: &[CellView], crowd: &[CrowdReading], blind: bool) -> Vec<Feature> {
        derive(
            &wording(),
            Evidence {
                cells,
                blind,
                crowd,
            },
        )
    }

    fn states(feature: &Feature) -> Vec<(&str, FeatureState, u64)> {
        feature
            .regions
            .iter()
            .map(|region| (region.name.as_str(), region.state, region.reports))
            .collect()
    }

    #[test]
    fn passing_probes_and_a_quiet_crowd_are_operational() {
        let cells = [
            cell("group_message", "ap-south", "a", Health::Green, 0),
            cell("group_message", "eu-west", "a", Health::Green, 0),
        ];
        let all = features(&cells, &[crowd("ap-south", 4, false)], false);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "Sending and receiving group messages");
        assert_eq!(all[0].state_words(), "Operational");
        assert_eq!(
            states(&all[0]),
            [
                ("Asia South", FeatureState::Operational, 0),
                ("eu-west", FeatureState::Operational, 0)
            ]
        );
    }

    #[test]
    fn the_crowd_alone_says_users_report_problems_never_outage() {
        let cells = [cell("group_message", "ap-south", "a", Health::Green, 0)];
        let all = features(&cells, &[crowd("ap-south", 40, true)], false);
        assert_eq!(all[0].state, FeatureState::UsersReportProblems);
        assert_eq!(all[0].confirmed_by_reports, None);
        assert_eq!(all[0].state_words(), "Users report problems");
    }

    #[test]
    fn failing_probes_say_outage_whatever_the_crowd_and_both_confirm() {
        let cells = [
            cell("group_message", "ap-south", "a", Health::Red, 2),
            cell("group_message", "eu-west", "a", Health::Green, 0),
        ];
        let quiet = features(&cells, &[], false);
        assert_eq!(quiet[0].state_words(), "Outage");
        let loud = features(&cells, &[crowd("ap-south", 41, true)], false);
        assert_eq!(
            loud[0].state_words(),
            "Outage, confirmed by 41 user reports"
        );
        assert_eq!(
            states(&loud[0]),
            [
                ("Asia South", FeatureState::Outage, 41),
                ("eu-west", FeatureState::Operational, 0)
            ]
        );
    }

    #[test]
    fn one_unconfirmed_failure_is_no_outage_and_a_minority_failing_is_degraded() {
        let unconfirmed = [cell("group_message", "ap-south", "a", Health::Red, 1)];
        assert_eq!(
            features(&unconfirmed, &[], false)[0].state,
            FeatureState::Operational
        );
        let mut shards: Vec<CellView> = (0..10)
            .map(|n| {
                cell(
                    "group_message",
                    "ap-south",
                    &n.to_string(),
                    Health::Green,
                    0,
                )
            })
            .collect();
        shards[3] = cell("group_message", "ap-south", "3", Health::Red, 3);
        assert_eq!(
            features(&shards, &[], false)[0].state,
            FeatureState::Degraded
        );
        let slow = [cell("group_message", "ap-south", "a", Health::Amber, 1)];
        assert_eq!(features(&slow, &[], false)[0].state, FeatureState::Degraded);
    }

    #[test]
    fn reports_without_a_region_concern_every_region_and_other_features_not() {
        let cells = [
            cell("group_message", "ap-south", "a", Health::Green, 0),
            cell("leave_group", "ap-south", "a", Health::Green, 0),
        ];
        let all = features(&cells, &[crowd(UNKNOWN_REGION, 12, true)], false);
        assert_eq!(all[0].state, FeatureState::UsersReportProblems);
        assert_eq!(all[1].probe, "leave_group");
        assert_eq!(all[1].name, "leave_group", "unnamed probes keep their name");
        assert_eq!(all[1].state, FeatureState::Operational);
    }

    #[test]
    fn blind_or_stale_is_unknown_never_operational() {
        let cells = [cell("group_message", "ap-south", "a", Health::Green, 0)];
        assert_eq!(features(&cells, &[], true)[0].state, FeatureState::Unknown);
        let mut stale = cells.clone();
        stale[0].stale = true;
        let all = features(&stale, &[crowd("ap-south", 50, true)], false);
        assert_eq!(all[0].state, FeatureState::Unknown);
    }
}
