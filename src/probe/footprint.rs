//! The probe's footprint on the service: which of its groups each account
//! may still hold, so that no account holds more than [`GROUPS_MAX`] of them
//! through any outage, and what reconciliation needs to tell its groups from
//! others'.
//!
//! A group is the probe's when its name starts with `chatprobe <probe>-` (every
//! group a run creates is named `chatprobe <tag>`, the tag starting with the
//! probe's name), so an agent restarted after `kill -9` recognizes what its
//! predecessor left.

use std::collections::BTreeSet;

use crate::client::GroupId;

/// Most of the probe's groups one account holds at any time: a run that
/// needs a fresh group creates none while one of its members holds as many.
pub(super) const GROUPS_MAX: usize = 10;

/// The probe's groups each account may hold, and those kept between runs.
pub(super) struct Footprint {
    /// Start of the name of every group of this probe.
    name_prefix: String,
    /// Per member: the probe's groups it may hold (created or joined and not
    /// known to be left), kept ones included.
    held: Vec<BTreeSet<GroupId>>,
    /// Per member: whether its groups were listed at least once (until then
    /// what an earlier agent left there is unknown).
    listed: Vec<bool>,
    /// Groups a kind keeps between runs: never left by reconciliation.
    kept: BTreeSet<GroupId>,
}

impl Footprint {
    /// The footprint of probe `probe` with `members` accounts, nothing
    /// listed yet.
    pub(super) fn new(probe: &str, members: usize) -> Footprint {
        Footprint {
            name_prefix: format!("chatprobe {probe}-"),
            held: vec![BTreeSet::new(); members],
            listed: vec![false; members],
            kept: BTreeSet::new(),
        }
    }

    /// True when a group named `name` is one of this probe's.
    pub(super) fn is_ours(&self, name: &str) -> bool {
        name.starts_with(&self.name_prefix)
    }

    /// True when `member` may hold `group`, as far as this process knows.
    pub(super) fn may_hold(&self, member: usize, group: &str) -> bool {
        self.held[member].contains(group)
    }

    /// True when a kind keeps `group` between runs.
    pub(super) fn is_kept(&self, group: &str) -> bool {
        self.kept.contains(group)
    }

    /// Notes that `member` holds `group` (it created, joined or was added to it).
    pub(super) fn holds(&mut self, member: usize, group: &str) {
        self.held[member].insert(group.to_string());
    }

    /// Notes that `member` no longer holds `group`.
    pub(super) fn left(&mut self, member: usize, group: &str) {
        self.held[member].remove(group);
    }

    /// Notes that a kind keeps `group` between runs (`true`) or gave it up.
    pub(super) fn set_kept(&mut self, group: &str, kept: bool) {
        if kept {
            self.kept.insert(group.to_string());
        } else {
            self.kept.remove(group);
        }
    }

    /// Takes a listing of `member`'s groups: besides the kept ones it holds
    /// exactly `left_behind` (the probe's groups it listed and could not leave).
    pub(super) fn listed(&mut self, member: usize, left_behind: Vec<GroupId>) {
        let kept = &self.kept;
        self.held[member].retain(|group| kept.contains(group));
        self.held[member].extend(left_behind);
        self.listed[member] = true;
    }

    /// True when some account may hold a group of the probe that no kind
    /// keeps, or was never listed: the next run reconciles first.
    pub(super) fn needs_reconciling(&self) -> bool {
        self.listed.iter().any(|listed| !listed)
            || self
                .held
                .iter()
                .any(|groups| groups.iter().any(|group| !self.kept.contains(group)))
    }

    /// Why `member` (user `user`) may not be in one more group: it holds
    /// [`GROUPS_MAX`] of the probe's groups already, since leaving them
    /// failed. `None` when there is room. (While its groups cannot be listed,
    /// only what this process knows of counts.)
    pub(super) fn no_room(&self, member: usize, user: &str) -> Option<String> {
        let held = self.held[member].len();
        (held >= GROUPS_MAX).then(|| {
            format!(
                "no new group: {user} still holds {held} groups of this probe that could not be left (at most {GROUPS_MAX})"
            )
        })
    }

    /// Every group of the probe `member` may hold.
    pub(super) fn held_by(&self, member: usize) -> impl Iterator<Item = &GroupId> {
        self.held[member].iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_told_apart_by_the_probe_prefix() {
        let footprint = Footprint::new("leave_group", 1);
        assert!(footprint.is_ours("chatprobe leave_group-0badcafe-7"));
        assert!(footprint.is_ours("chatprobe leave_group-0badcafe-7 renamed"));
        assert!(!footprint.is_ours("chatprobe leave_group_2-0badcafe-7"));
        assert!(!footprint.is_ours("team lunch"));
    }

    #[test]
    fn an_account_holding_the_most_gets_no_new_group() {
        let mut footprint = Footprint::new("p", 2);
        assert!(footprint.needs_reconciling(), "never listed");
        footprint.listed(0, Vec::new());
        footprint.listed(1, Vec::new());
        assert!(!footprint.needs_reconciling());
        for index in 0..GROUPS_MAX {
            assert!(footprint.no_room(0, "a").is_none());
            footprint.holds(0, &format!("g{index}"));
        }
        assert!(footprint.needs_reconciling());
        let detail = footprint.no_room(0, "a").expect("full");
        assert!(detail.contains("a still holds 10 groups"), "{detail}");
        assert!(footprint.no_room(1, "b").is_none());
        footprint.left(0, "g0");
        assert!(footprint.no_room(0, "a").is_none());
    }

    #[test]
    fn a_listing_keeps_the_kept_groups_and_what_could_not_be_left() {
        let mut footprint = Footprint::new("p", 1);
        footprint.holds(0, "kept");
        footprint.set_kept("kept", true);
        footprint.holds(0, "gone");
        footprint.listed(0, vec!["stuck".to_string()]);
        let held: Vec<&GroupId> = footprint.held_by(0).collect();
        assert_eq!(held, ["kept", "stuck"]);
        assert!(footprint.needs_reconciling());
        footprint.listed(0, Vec::new());
        assert!(!footprint.needs_reconciling());
    }
}
