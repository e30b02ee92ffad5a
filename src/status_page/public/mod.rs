//! The public page (`/`): for the people who use the chat service, each
//! feature's state in plain words ([`features`]), ongoing incidents and
//! 90-day uptime by feature, and "Report a problem" ([`page`]).

pub(crate) mod features;
pub(crate) mod page;
pub(crate) mod trend;

use page::Choice;

use crate::config::status_page::PublicWording;
use crate::status::CellView;

/// The regions a user can choose: those the cells show and those the
/// config names, sorted by label, each with its display name.
pub(crate) fn region_choices<'a>(
    wording: &'a PublicWording,
    cells: &'a [CellView],
) -> Vec<Choice<'a>> {
    let mut labels: Vec<&str> = cells
        .iter()
        .map(|cell| cell.key.region.as_str())
        .chain(wording.regions.keys().map(String::as_str))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels
        .into_iter()
        .map(|id| Choice {
            id,
            name: wording.regions.get(id).map_or(id, String::as_str),
        })
        .collect()
}
