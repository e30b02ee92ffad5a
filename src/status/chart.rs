//! The trend chart: one probe's runs per time bucket over a window, as an
//! inline SVG of stacked bars (red failed, amber degraded, green passed).

use std::fmt;

use super::html::Escaped;
use super::snapshot::{Timestamp, TrendView};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const PLOT_HEIGHT: f64 = 80.0;
const HEIGHT: f64 = TOP + PLOT_HEIGHT + 22.0;
/// The most time labels the x axis gets.
const MAX_TIME_LABELS: u64 = 6;
/// Steps between time labels to choose from, in minutes.
const LABEL_STEPS_MINUTES: [u64; 6] = [1, 2, 5, 10, 15, 30];

/// Renders a [`TrendView`] as an `<svg>` element.
pub(super) struct TrendChart<'a>(pub &'a TrendView);

impl fmt::Display for TrendChart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trend = self.0;
        let buckets = trend.runs.len();
        let tallest = trend.runs.iter().copied().max().unwrap_or(0);
        write!(
            f,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" shape-rendering="crispEdges" role="img" aria-label="runs of {} per {} s">"#,
            Escaped(&trend.probe),
            trend.bucket_seconds,
        )?;
        write_axes(f, trend, tallest)?;
        if tallest == 0 {
            write!(
                f,
                r#"<text x="{}" y="{}" text-anchor="middle" class="empty">no runs in this window</text>"#,
                LEFT + plot_width() / 2.0,
                TOP + PLOT_HEIGHT / 2.0
            )?;
        }
        let bar_width = plot_width() / buckets.max(1) as f64;
        let scale = PLOT_HEIGHT / f64::from(tallest.max(1));
        for index in (0..buckets).filter(|&i| trend.runs[i] > 0) {
            write_bar(f, trend, index, bar_width, scale)?;
        }
        f.write_str("</svg>")
    }
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

/// The baseline, the y scale and the time labels.
fn write_axes(f: &mut fmt::Formatter<'_>, trend: &TrendView, tallest: u32) -> fmt::Result {
    let baseline = TOP + PLOT_HEIGHT;
    write!(
        f,
        r#"<line class="axis" x1="{LEFT}" y1="{baseline}" x2="{}" y2="{baseline}"/>"#,
        WIDTH - RIGHT
    )?;
    write!(
        f,
        r#"<text x="{}" y="{}" text-anchor="end">{tallest}</text><text x="{}" y="{baseline}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        TOP + 8.0,
        LEFT - 4.0,
    )?;
    write_time_labels(f, trend.bucket_seconds * trend.runs.len() as u64)
}

/// Labels counting back from the right edge ("now") in whole minutes, at
/// the smallest step that leaves at most [`MAX_TIME_LABELS`] of them.
fn write_time_labels(f: &mut fmt::Formatter<'_>, span_seconds: u64) -> fmt::Result {
    let span_minutes = span_seconds / 60;
    let step = LABEL_STEPS_MINUTES
        .into_iter()
        .find(|step| span_minutes / step < MAX_TIME_LABELS)
        .unwrap_or(60);
    let right = WIDTH - RIGHT;
    for minutes in (0..=span_minutes).step_by(usize::try_from(step).unwrap_or(60)) {
        let x = right - plot_width() * (minutes * 60) as f64 / span_seconds.max(1) as f64;
        let anchor = match minutes {
            0 => "end",
            _ if x - LEFT < 24.0 => "start",
            _ => "middle",
        };
        let text = match minutes {
            0 => "now".to_owned(),
            _ => format!("−{minutes} min"),
        };
        write!(
            f,
            r#"<text x="{x:.1}" y="{}" text-anchor="{anchor}">{text}</text>"#,
            HEIGHT - 4.0
        )?;
    }
    Ok(())
}

/// One bucket's stacked bar, with a tooltip.
fn write_bar(
    f: &mut fmt::Formatter<'_>,
    trend: &TrendView,
    index: usize,
    width: f64,
    scale: f64,
) -> fmt::Result {
    let runs = trend.runs[index];
    let failed = trend.failed.get(index).copied().unwrap_or(0);
    let degraded = trend.degraded.get(index).copied().unwrap_or(0);
    let passed = runs.saturating_sub(failed.saturating_add(degraded));
    let start = trend.start.unix_seconds() + trend.bucket_seconds * index as u64;
    write!(
        f,
        "<g><title>{}: {runs} runs, {failed} failed, {degraded} degraded</title>",
        Timestamp::from_unix_seconds(start).clock()
    )?;
    let x = LEFT + width * index as f64;
    let mut top = TOP + PLOT_HEIGHT;
    for (count, class) in [(failed, "red"), (degraded, "amber"), (passed, "green")] {
        if count == 0 {
            continue;
        }
        let height = f64::from(count) * scale;
        top -= height;
        write!(
            f,
            r#"<rect class="{class}" x="{x:.2}" y="{top:.2}" width="{width:.2}" height="{height:.2}"/>"#
        )?;
    }
    f.write_str("</g>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(runs: Vec<u32>, failed: Vec<u32>, degraded: Vec<u32>) -> TrendView {
        TrendView {
            probe: "group_message".into(),
            start: Timestamp::from_unix_seconds(1_795_451_100),
            bucket_seconds: 10,
            runs,
            failed,
            degraded,
        }
    }

    #[test]
    fn each_bucket_with_runs_is_one_stacked_bar() {
        let svg = TrendChart(&trend(vec![0, 3, 2], vec![0, 1, 0], vec![0, 1, 0])).to_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g>").count(), 2);
        assert_eq!(svg.matches(r#"class="red""#).count(), 1);
        assert_eq!(svg.matches(r#"class="amber""#).count(), 1);
        assert_eq!(svg.matches(r#"class="green""#).count(), 2);
        assert!(svg.contains("16:25:10: 3 runs, 1 failed, 1 degraded"));
        assert!(!svg.contains("no runs"));
    }

    #[test]
    fn the_tallest_bar_fills_the_plot() {
        let svg = TrendChart(&trend(vec![4], vec![4], vec![0])).to_string();
        assert!(svg.contains(&format!(r#"y="{TOP:.2}""#)), "{svg}");
        assert!(
            svg.contains(&format!(r#"height="{PLOT_HEIGHT:.2}""#)),
            "{svg}"
        );
    }

    #[test]
    fn time_labels_count_back_from_now_in_whole_minutes() {
        let labels = |buckets: usize| {
            let svg = TrendChart(&trend(vec![0; buckets], vec![0; buckets], vec![0; buckets]))
                .to_string();
            svg.split("</text>")
                .filter_map(|part| part.rsplit_once('>').map(|(_, text)| text.to_owned()))
                .filter(|text| text == "now" || text.ends_with(" min"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(30),
            ["now", "−1 min", "−2 min", "−3 min", "−4 min", "−5 min"]
        );
        assert_eq!(
            labels(360),
            ["now", "−15 min", "−30 min", "−45 min", "−60 min"]
        );
    }

    #[test]
    fn an_empty_window_says_so() {
        let svg = TrendChart(&trend(vec![0; 4], vec![0; 4], vec![0; 4])).to_string();
        assert!(svg.contains("no runs in this window"));
        assert!(!svg.contains("<rect"));
    }

    #[test]
    fn the_probe_name_is_escaped() {
        let mut hostile = trend(vec![1], vec![0], vec![0]);
        hostile.probe = "<b>x</b>".into();
        let svg = TrendChart(&hostile).to_string();
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
    }
}
