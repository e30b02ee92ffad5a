//! The hourly trend of user reports on the public page: reports per hour
//! over the last day as an inline SVG of bars stacked by problem, the
//! baseline (what is usual for each hour) as a line, and the hours in which
//! the probes failed shaded, so the crowd and the probes read side by side.

use std::fmt::{self, Write as _};

use super::page::Choice;
use crate::status::Timestamp;
use crate::status::html::Escaped;
use crate::status_page::incidents::Incident;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const PLOT_HEIGHT: f64 = 90.0;
const HEIGHT: f64 = TOP + PLOT_HEIGHT + 22.0;
/// An hour, in seconds.
const HOUR: u64 = 3600;
/// How many colours the problems cycle through (classes `p0` … `p7`).
const COLOURS: usize = 8;

/// One hour of reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReportHour {
    /// The hour's start (unix seconds).
    pub(crate) start: u64,
    /// Reports counted in it, one per problem in the order of the chart's problems.
    pub(crate) counts: Vec<u64>,
    /// What is usual for this hour of the week, over every problem.
    pub(crate) baseline: f64,
}

/// The chart: `hours` oldest first, their counts in the order of `problems`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportTrend<'a> {
    /// The problems, in the order of each hour's counts.
    pub(crate) problems: &'a [Choice<'a>],
    /// The hours, oldest first.
    pub(crate) hours: &'a [ReportHour],
    /// The incidents, to shade the hours the probes failed in.
    pub(crate) incidents: &'a [Incident],
}

impl fmt::Display for ReportTrend<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tallest = self
            .hours
            .iter()
            .map(|hour| (hour.counts.iter().sum::<u64>() as f64).max(hour.baseline))
            .fold(0.0_f64, f64::max)
            .max(1.0);
        let scale = PLOT_HEIGHT / tallest;
        let width = (WIDTH - LEFT - RIGHT) / self.hours.len().max(1) as f64;
        write!(
            f,
            r#"<svg class="chart reports" viewBox="0 0 {WIDTH} {HEIGHT}" shape-rendering="crispEdges" role="img" aria-label="user reports per hour, last {} hours">"#,
            self.hours.len()
        )?;
        let bottom = TOP + PLOT_HEIGHT;
        write!(
            f,
            r#"<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}"/><text x="{}" y="{}" text-anchor="end">{tallest:.0}</text><text x="{}" y="{bottom}" text-anchor="end">0</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            TOP + 8.0,
            LEFT - 4.0
        )?;
        for (index, hour) in self.hours.iter().enumerate() {
            let x = LEFT + width * index as f64;
            if self.probes_failed(hour.start) {
                write!(
                    f,
                    r#"<rect class="failed-hour" x="{x:.1}" y="{TOP}" width="{width:.1}" height="{PLOT_HEIGHT}"/>"#
                )?;
            }
            self.write_bar(f, hour, x, width, scale)?;
        }
        self.write_baseline(f, width, scale)?;
        write_hour_labels(f, self.hours, width)?;
        f.write_str("</svg>")
    }
}

impl ReportTrend<'_> {
    /// The legend: a key per problem and for the line and the shading.
    pub(crate) fn legend(&self) -> String {
        let mut html = String::from(r#"<p class="legend">"#);
        for (index, problem) in self.problems.iter().enumerate() {
            let _ = write!(
                html,
                r#"<span class="key p{}"></span>{}"#,
                index % COLOURS,
                Escaped(problem.name)
            );
        }
        html.push_str(r#"<span class="key baseline"></span>usual for the hour<span class="key failed-hour"></span>our checks failed</p>"#);
        html
    }

    fn probes_failed(&self, start: u64) -> bool {
        self.incidents
            .iter()
            .any(|incident| incident.overlaps(start, start + HOUR))
    }

    fn write_bar(
        &self,
        f: &mut fmt::Formatter<'_>,
        hour: &ReportHour,
        x: f64,
        width: f64,
        scale: f64,
    ) -> fmt::Result {
        let total: u64 = hour.counts.iter().sum();
        write!(
            f,
            "<g><title>{} UTC: {total} reports (usual: {:.0})</title>",
            Timestamp::from_unix_seconds(hour.start).clock(),
            hour.baseline
        )?;
        let mut y = TOP + PLOT_HEIGHT;
        for (index, &count) in hour
            .counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
        {
            let height = count as f64 * scale;
            y -= height;
            write!(
                f,
                r#"<rect class="p{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{height:.1}"/>"#,
                index % COLOURS,
                x + 1.0,
                (width - 2.0).max(1.0)
            )?;
        }
        f.write_str("</g>")
    }

    fn write_baseline(&self, f: &mut fmt::Formatter<'_>, width: f64, scale: f64) -> fmt::Result {
        let points: Vec<String> = self
            .hours
            .iter()
            .enumerate()
            .map(|(index, hour)| {
                let y = TOP + PLOT_HEIGHT - hour.baseline * scale;
                format!("{:.1},{y:.1}", LEFT + width * (index as f64 + 0.5))
            })
            .collect();
        write!(
            f,
            r#"<polyline class="baseline" fill="none" points="{}"/>"#,
            points.join(" ")
        )
    }
}

/// The hour of day under every sixth bar, and "now" under the last.
fn write_hour_labels(f: &mut fmt::Formatter<'_>, hours: &[ReportHour], width: f64) -> fmt::Result {
    for (index, hour) in hours.iter().enumerate() {
        let last = index + 1 == hours.len();
        if index % 6 != 0 && !last {
            continue;
        }
        let text = if last {
            "now".to_owned()
        } else {
            let clock = Timestamp::from_unix_seconds(hour.start).clock();
            clock.get(..5).unwrap_or(&clock).to_owned()
        };
        write!(
            f,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{text}</text>"#,
            LEFT + width * (index as f64 + 0.5),
            HEIGHT - 4.0
        )?;
    }
    Ok(())
}

/// The chart's colours, added to the public page's style sheet.
pub(crate) const STYLE: &str = r#"
svg.chart { display: block; width: 100%; height: auto; font-size: 13px; fill: #5f6368; }
svg.chart .axis { stroke: #9aa0a6; stroke-width: 1; }
svg.chart rect.failed-hour, .key.failed-hour { fill: #fce8e6; background: #fce8e6; }
svg.chart polyline.baseline { stroke: #202124; stroke-width: 2; stroke-dasharray: 4 3; }
.key.baseline { height: 2px !important; background: #202124; vertical-align: middle; }
.p0 { fill: #1a73e8; background: #1a73e8; } .p1 { fill: #e37400; background: #e37400; }
.p2 { fill: #188038; background: #188038; } .p3 { fill: #a142f4; background: #a142f4; }
.p4 { fill: #d01884; background: #d01884; } .p5 { fill: #12b5cb; background: #12b5cb; }
.p6 { fill: #5f6368; background: #5f6368; } .p7 { fill: #b06000; background: #b06000; }
.legend .key { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
"#;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const START: u64 = 1_795_449_600;

    #[test]
    fn bars_stack_by_problem_under_the_baseline_and_failed_hours_are_shaded() {
        let problems = [
            Choice {
                id: "not_received",
                name: "Messages <not> received",
            },
            Choice {
                id: "cannot_leave",
                name: "Cannot leave",
            },
        ];
        let hours: Vec<ReportHour> = (0..3)
            .map(|index| ReportHour {
                start: START + index * HOUR,
                counts: vec![index * 10, 5],
                baseline: 4.0,
            })
            .collect();
        let incident = Incident {
            probe: "group_message".into(),
            regions: BTreeSet::from(["ap-south".to_owned()]),
            targets: BTreeSet::new(),
            reasons: BTreeMap::new(),
            started_at: Timestamp::from_unix_seconds(START + 2 * HOUR + 60),
            ended_at: None,
            duration_seconds: 60,
        };
        let incidents = [incident];
        let chart = ReportTrend {
            problems: &problems,
            hours: &hours,
            incidents: &incidents,
        };
        let svg = chart.to_string();
        assert_eq!(svg.matches(r#"class="failed-hour""#).count(), 1, "{svg}");
        assert_eq!(
            svg.matches(r#"<rect class="p0""#).count(),
            2,
            "an empty count draws nothing: {svg}"
        );
        assert_eq!(svg.matches(r#"<rect class="p1""#).count(), 3, "{svg}");
        assert!(svg.contains("18:00:00 UTC: 25 reports (usual: 4)"), "{svg}");
        assert!(svg.contains(r#"<polyline class="baseline""#), "{svg}");
        assert!(svg.contains(">now</text>"), "{svg}");
        assert!(chart.legend().contains("Messages &lt;not&gt; received"));
    }
}
