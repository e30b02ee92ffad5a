//! `chatprobe_target_info{region,target,<labels>...} 1`: one series per
//! target, carrying the target's own `labels:` (shard, cell, cluster, ...),
//! to join on (`* on(region, target) group_left(shard) chatprobe_target_info`)
//! rather than repeated on every series. Targets have different label names,
//! so each series is written with its own label names.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::exposition::Exposition;

/// The metric's name (**contract**).
const NAME: &str = "chatprobe_target_info";
const HELP: &str = "Always 1, one per target; carries the target's own labels (`labels:`) to join on region and target.";

/// Each region's targets and their labels.
type Targets = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

/// The info series of every region's targets.
#[derive(Clone, Default)]
pub(crate) struct TargetInfo {
    targets: Arc<Mutex<Targets>>,
}

impl TargetInfo {
    /// Replaces the targets of `region`: each target name with its labels.
    pub(crate) fn set_region<'a>(
        &self,
        region: &str,
        targets: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    ) {
        let targets = targets
            .into_iter()
            .map(|(name, labels)| (name.to_string(), labels.clone()))
            .collect();
        self.lock().insert(region.to_string(), targets);
    }

    /// Writes the family (nothing while no region has a target): `region`
    /// and `target` first, then the target's own labels by name.
    pub(super) fn render(&self, out: &mut Exposition<'_>) {
        let regions = self.lock();
        let mut targets = regions.iter().flat_map(|(region, targets)| {
            targets
                .iter()
                .map(move |(target, labels)| (region, target, labels))
        });
        let Some(first) = targets.next() else {
            return;
        };
        out.family(NAME, HELP, "gauge");
        for (region, target, labels) in std::iter::once(first).chain(targets) {
            let mut pairs = vec![("region", region.as_str()), ("target", target.as_str())];
            pairs.extend(
                labels
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            );
            out.sample(NAME, &pairs, 1u64);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Targets> {
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::text;

    #[test]
    fn each_target_has_its_own_labels_and_a_region_is_replaced_whole() {
        let info = TargetInfo::default();
        let shard = BTreeMap::from([("shard".to_string(), "s1".to_string())]);
        let none = BTreeMap::new();
        info.set_region("eu-west", [("a", &shard), ("b", &none)]);
        let render = || text(|out| info.render(out));
        let text = render();
        assert!(
            text.contains("chatprobe_target_info{region=\"eu-west\",target=\"a\",shard=\"s1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("chatprobe_target_info{region=\"eu-west\",target=\"b\"} 1"),
            "{text}"
        );
        info.set_region("eu-west", [("b", &none)]);
        let text = render();
        assert!(!text.contains("target=\"a\""), "{text}");
        info.set_region("eu-west", []);
        assert!(!render().contains(NAME));
    }
}
