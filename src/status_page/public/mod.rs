//! The public page (`/`): for the people who use the chat service, each
//! feature's state in plain words ([`features`]), ongoing incidents and
//! 90-day uptime by feature, and "Report a problem" ([`page`]) with the
//! hourly trend of reports ([`trend`]); [`CrowdNow`] is what it reads of the
//! reports.

pub(crate) mod features;
pub(crate) mod page;
pub(crate) mod trend;

use std::collections::BTreeMap;

use features::CrowdReading;
use page::Choice;
use trend::ReportHour;

use crate::config::status_page::PublicWording;
use crate::reports::config::{ALL_FEATURES, Problem};
use crate::reports::crowd::{Level, TrendHour};
use crate::reports::{Crowd, Reports};
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

/// What the crowd says now, as the public page reads it: per problem and
/// region, and the last day's hourly trend; or that the store is down.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrowdNow {
    /// Per problem and region.
    pub(crate) readings: Vec<CrowdReading>,
    /// Distinct reporters in the window per problem id, all regions.
    pub(crate) recent: BTreeMap<String, u64>,
    /// The last [`TREND_HOURS`] hours, oldest first.
    pub(crate) hours: Vec<ReportHour>,
    /// Whether reports are being sampled (this hour's cap is reached).
    pub(crate) sampling: bool,
    /// The window reporters are counted over, in minutes.
    pub(crate) window_minutes: u64,
    /// Why reports cannot be read, if they cannot.
    pub(crate) unavailable: Option<String>,
}

/// How many hours the trend of reports shows.
pub(crate) const TREND_HOURS: u32 = 24;

impl CrowdNow {
    /// Reads the crowd signal and the trend of `reports` at `now` (unix
    /// seconds); a store that cannot be read leaves both empty, and says why.
    pub(crate) async fn read(reports: &Reports, now: i64) -> CrowdNow {
        match tokio::try_join!(reports.crowd(now), reports.trend(now, TREND_HOURS)) {
            Ok((crowd, trend)) => CrowdNow {
                readings: readings(&crowd),
                recent: crowd
                    .problems
                    .iter()
                    .map(|problem| (problem.id.clone(), problem.recent))
                    .collect(),
                hours: report_hours(&reports.config().problems, &trend),
                sampling: crowd.sampling,
                window_minutes: crowd.window_seconds / 60,
                unavailable: None,
            },
            Err(error) => {
                tracing::warn!("cannot read user reports: {error}");
                CrowdNow {
                    unavailable: Some(error.to_string()),
                    ..CrowdNow::default()
                }
            }
        }
    }
}

/// Each problem × region of `crowd` as the feature rule reads it.
fn readings(crowd: &Crowd) -> Vec<CrowdReading> {
    crowd
        .problems
        .iter()
        .flat_map(|problem| {
            let features: Vec<String> = match problem.features.iter().any(|f| f == ALL_FEATURES) {
                true => Vec::new(),
                false => problem.features.clone(),
            };
            problem.regions.iter().map(move |region| CrowdReading {
                features: features.clone(),
                region: region.region.clone(),
                reporters: region.recent,
                raised: region.level >= Level::Elevated,
            })
        })
        .collect()
}

/// The trend's hours with their counts in the order of `problems`.
fn report_hours(problems: &[Problem], trend: &[TrendHour]) -> Vec<ReportHour> {
    trend
        .iter()
        .map(|hour| ReportHour {
            start: hour.start.unix_seconds(),
            counts: problems
                .iter()
                .map(|problem| hour.counts.get(&problem.id.0).copied().unwrap_or(0))
                .collect(),
            baseline: hour.baseline.values().sum(),
        })
        .collect()
}
