//! The regions a report may name: those the config names and those
//! Prometheus shows, which the status page adds as it reads them. Anything
//! else is refused from a user and recorded as `unknown` from a proxy's
//! header, so the `region` label stays a closed set.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// The region of a report that names none.
pub(crate) const UNKNOWN: &str = "unknown";

/// More regions than any fleet has: beyond it, new ones are not learned.
const MOST_REGIONS: usize = 1000;

/// The known regions, shared between the page (which learns them) and the reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownRegions {
    regions: Arc<RwLock<BTreeSet<String>>>,
}

impl KnownRegions {
    /// The regions `configured`, to which others are learned.
    pub(crate) fn new(configured: impl IntoIterator<Item = String>) -> KnownRegions {
        let known = KnownRegions::default();
        known.learn(configured);
        known
    }

    /// Adds `regions` (those Prometheus shows).
    pub(crate) fn learn(&self, regions: impl IntoIterator<Item = String>) {
        let mut known = self
            .regions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for region in regions {
            if known.len() >= MOST_REGIONS {
                break;
            }
            if !known.contains(&region) {
                known.insert(region);
            }
        }
    }

    /// Whether `region` is known.
    pub(crate) fn contains(&self, region: &str) -> bool {
        self.read().contains(region)
    }

    /// Every known region.
    pub(crate) fn all(&self) -> BTreeSet<String> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<String>> {
        self.regions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_and_learned_regions_are_known_and_the_set_is_bounded() {
        let known = KnownRegions::new(["eu-west".to_string()]);
        known.learn(["us-east".to_string(), "eu-west".to_string()]);
        assert!(known.contains("eu-west") && known.contains("us-east"));
        assert!(!known.contains("ap-south"));
        known.learn((0..2000).map(|i| format!("r{i}")));
        assert_eq!(known.all().len(), MOST_REGIONS);
    }
}
