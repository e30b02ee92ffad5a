//! The fleet at a glance: per probe and region, how many targets pass, are
//! degraded, fail or are stale, and which ones do not pass. What a person
//! reads on the page instead of thousands of cells (`/cells` lists one
//! probe × region in full) and what `/api/status` adds as `aggregate`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::Reason;
use crate::status::{CellView, Health};

/// One probe in one region, over its targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Group {
    /// The probe.
    pub(crate) probe: String,
    /// The region.
    pub(crate) region: String,
    /// The worst state of its fresh cells (`unknown` when every one is stale).
    pub(crate) state: Health,
    /// Targets (cells) in it.
    pub(crate) targets: usize,
    /// Fresh cells whose last run passed.
    pub(crate) passing: usize,
    /// Fresh cells whose last run was only degraded.
    pub(crate) degraded: usize,
    /// Fresh cells whose last run failed.
    pub(crate) failing: usize,
    /// Cells Prometheus has not scraped lately, whatever their last state.
    pub(crate) stale: usize,
    /// The fresh cells that do not pass (failing, then degraded; by target).
    pub(crate) not_passing: Vec<NotPassing>,
}

/// A target of a group whose last run did not pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NotPassing {
    /// The target.
    pub(crate) target: String,
    /// `red` or `amber`.
    pub(crate) state: Health,
    /// The distinct reasons of its last run.
    pub(crate) reasons: Vec<Reason>,
}

/// The groups of `cells`, sorted by probe and region.
pub(crate) fn groups(cells: &[CellView]) -> Vec<Group> {
    let mut groups: BTreeMap<(&str, &str), Group> = BTreeMap::new();
    for cell in cells {
        let group = groups
            .entry((&cell.key.probe, &cell.key.region))
            .or_insert_with(|| Group {
                probe: cell.key.probe.clone(),
                region: cell.key.region.clone(),
                state: Health::Unknown,
                targets: 0,
                passing: 0,
                degraded: 0,
                failing: 0,
                stale: 0,
                not_passing: Vec::new(),
            });
        group.targets += 1;
        if cell.stale {
            group.stale += 1;
            continue;
        }
        group.state = group.state.max(cell.state);
        match cell.state {
            Health::Green => group.passing += 1,
            Health::Amber => group.degraded += 1,
            Health::Red => group.failing += 1,
            Health::Unknown => {}
        }
        if matches!(cell.state, Health::Amber | Health::Red) {
            group.not_passing.push(NotPassing {
                target: cell.key.target.clone(),
                state: cell.state,
                reasons: cell.reasons.clone(),
            });
        }
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    for group in &mut groups {
        group
            .not_passing
            .sort_by(|a, b| b.state.cmp(&a.state).then_with(|| a.target.cmp(&b.target)));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ProbeKey;
    use crate::status::Timestamp;

    fn cell(region: &str, target: &str, state: Health, stale: bool) -> CellView {
        CellView {
            key: ProbeKey {
                region: region.into(),
                target: target.into(),
                probe: "group_message".into(),
            },
            state,
            reasons: match state {
                Health::Red => vec![Reason::HttpError],
                Health::Amber => vec![Reason::LateDelivery],
                _ => Vec::new(),
            },
            last_run_at: Timestamp::from_unix_seconds(0),
            age_seconds: 0,
            duration_seconds: 0.0,
            consecutive_failures: 0,
            failing_since: None,
            last_success_at: None,
            messages_expected: 0,
            messages_delivered: 0,
            failures: Vec::new(),
            stale,
        }
    }

    #[test]
    fn each_probe_and_region_counts_its_targets_and_lists_those_not_passing() {
        let groups = groups(&[
            cell("ap-south", "a", Health::Green, false),
            cell("ap-south", "b", Health::Amber, false),
            cell("ap-south", "c", Health::Red, false),
            cell("ap-south", "d", Health::Red, true),
            cell("eu-west", "a", Health::Green, false),
            cell("us-east", "a", Health::Red, true),
        ]);
        assert_eq!(groups.len(), 3);
        let ap_south = &groups[0];
        assert_eq!(
            (
                ap_south.targets,
                ap_south.passing,
                ap_south.degraded,
                ap_south.failing,
                ap_south.stale
            ),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(ap_south.state, Health::Red);
        let listed: Vec<(&str, Health)> = ap_south
            .not_passing
            .iter()
            .map(|cell| (cell.target.as_str(), cell.state))
            .collect();
        assert_eq!(listed, [("c", Health::Red), ("b", Health::Amber)]);
        assert_eq!(groups[1].state, Health::Green);
        // Only stale cells: the page cannot tell.
        assert_eq!(groups[2].state, Health::Unknown);
        assert_eq!(groups[2].stale, 1);
    }
}
