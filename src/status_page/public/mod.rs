//! The public page (`/`): for the people who use the chat service, each
//! feature's state in plain words ([`features`]), ongoing incidents and
//! 90-day uptime by feature, and "Report a problem" ([`page`]).

pub(crate) mod features;
pub(crate) mod page;
pub(crate) mod trend;

use std::collections::BTreeMap;

use features::FeatureWords;
use page::Choice;

use crate::status::CellView;

/// How the public page names what it shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublicWords {
    /// The features, in the page's order.
    pub(crate) features: Vec<FeatureWords>,
    /// Display names of regions, by region label.
    pub(crate) regions: BTreeMap<String, String>,
}

impl PublicWords {
    /// The regions a user can choose: those the cells show and those named
    /// in the config, sorted by label, each with its display name.
    pub(crate) fn region_choices<'a>(&'a self, cells: &'a [CellView]) -> Vec<Choice<'a>> {
        let mut labels: Vec<&str> = cells
            .iter()
            .map(|cell| cell.key.region.as_str())
            .chain(self.regions.keys().map(String::as_str))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        labels
            .into_iter()
            .map(|id| Choice {
                id,
                name: self.regions.get(id).map_or(id, String::as_str),
            })
            .collect()
    }
}
