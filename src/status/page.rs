//! The status page as server-rendered HTML: overall state, a grid of probe ×
//! region × target, the trend of the last hour and the recent failures. No
//! script, no external resource; it reloads itself every few seconds.
//!
//! Every cell carries machine-readable attributes (`data-probe`,
//! `data-region`, `data-target`, `data-state`, `data-reasons`) so scripts and
//! tests can read the page as well as people.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::chart::TrendChart;
use super::health::Health;
use super::html::Escaped;
use super::snapshot::{CellView, FailureView, StatusSnapshot, StepFailure, TrendView};
use super::{TREND_BUCKET, TREND_WINDOW};

/// How often the page reloads itself, in seconds.
pub(super) const REFRESH_SECONDS: u32 = 5;

/// The agent's page for `snapshot`.
pub fn render(snapshot: &StatusSnapshot) -> String {
    render_framed(snapshot, &Frame::AGENT)
}

/// The page for `snapshot` inside `frame` (titles, notice, extra sections).
pub fn render_framed(snapshot: &StatusSnapshot, frame: &Frame<'_>) -> String {
    StatusPage { snapshot, frame }.to_string()
}

/// What surrounds a snapshot on a page: its titles, a notice, the sections
/// a page adds around the shared ones, and its links. The agent's page is
/// [`Frame::AGENT`]; the fleet page (`chatprobe status-page`) has its own.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The document title, before the overall state (`chatprobe`).
    pub(crate) title: &'a str,
    /// The banner's heading (`chatprobe status`).
    pub(crate) heading: &'a str,
    /// Shown instead of the headline when set: why the page cannot tell
    /// the state (its source is unreachable, say).
    pub(crate) notice: Option<&'a str>,
    /// What the recent failures table says when it is empty.
    pub(crate) no_failures: &'a str,
    /// Style rules added after the shared style sheet.
    pub(crate) style: &'a str,
    /// Sections (HTML, their text already escaped) between the banner and the grid.
    pub(crate) top: &'a [String],
    /// What stands in for the grid of every cell (HTML, its text already
    /// escaped), when a page has too many cells for one grid.
    pub(crate) grid: Option<&'a str>,
    /// Sections (HTML, their text already escaped) between the trends and the recent failures.
    pub(crate) middle: &'a [String],
    /// The footer's links: what each one serves, and its relative address.
    pub(crate) links: &'a [(&'a str, &'a str)],
    /// The relative address of an Atom feed to announce in the head.
    pub(crate) feed: Option<&'a str>,
}

impl Frame<'static> {
    /// The agent's own page.
    pub(crate) const AGENT: Frame<'static> = Frame {
        title: "chatprobe",
        heading: "chatprobe status",
        notice: None,
        no_failures: "No failures since the agent started.",
        style: "",
        top: &[],
        grid: None,
        middle: &[],
        links: &[
            ("The same data as JSON", "api/status"),
            ("Prometheus metrics", "metrics"),
        ],
        feed: None,
    };
}

/// Renders a snapshot in its frame as a complete HTML document.
struct StatusPage<'a> {
    snapshot: &'a StatusSnapshot,
    frame: &'a Frame<'a>,
}

impl fmt::Display for StatusPage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { snapshot, frame } = self;
        write!(
            f,
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}: {}</title>
"#,
            Escaped(frame.title),
            snapshot.overall.word()
        )?;
        if let Some(feed) = frame.feed {
            writeln!(
                f,
                r#"<link rel="alternate" type="application/atom+xml" title="incidents" href="{}">"#,
                Escaped(feed)
            )?;
        }
        write!(
            f,
            "<style>{STYLE}{}</style>\n</head>\n<body>\n",
            frame.style
        )?;
        write_overall(f, snapshot, frame)?;
        frame
            .top
            .iter()
            .try_for_each(|section| f.write_str(section))?;
        match frame.grid {
            Some(grid) => f.write_str(grid)?,
            None => write_grid(f, &snapshot.cells)?,
        }
        write_trends(f, &snapshot.trends)?;
        frame
            .middle
            .iter()
            .try_for_each(|section| f.write_str(section))?;
        write_failures(f, &snapshot.recent_failures, frame.no_failures)?;
        f.write_str("<footer>")?;
        for (index, (what, href)) in frame.links.iter().enumerate() {
            let separator = if index == 0 { "" } else { " · " };
            write!(
                f,
                r#"{separator}{}: <a href="{}">/{}</a>"#,
                Escaped(what),
                Escaped(href),
                Escaped(href)
            )?;
        }
        f.write_str("</footer>\n</body>\n</html>\n")
    }
}

/// The banner: the worst state, how many checks are in it and where (or
/// the frame's notice).
fn write_overall(
    f: &mut fmt::Formatter<'_>,
    snapshot: &StatusSnapshot,
    frame: &Frame<'_>,
) -> fmt::Result {
    let headline = frame
        .notice
        .map_or_else(|| headline(snapshot), str::to_owned);
    writeln!(
        f,
        r#"<header class="overall" data-state="{}"><h1>{}</h1><p class="headline">{}</p><p class="sub">Updated {} UTC · reloads every {REFRESH_SECONDS} s</p></header>"#,
        snapshot.overall.as_str(),
        Escaped(frame.heading),
        Escaped(&headline),
        snapshot.generated_at.clock(),
    )
}

/// One sentence on the overall state.
fn headline(snapshot: &StatusSnapshot) -> String {
    let total = snapshot.cells.len();
    let red = snapshot.count(Health::Red);
    let amber = snapshot.count(Health::Amber);
    let regions_in = |state: Health| -> String {
        let regions: BTreeSet<&str> = snapshot
            .cells
            .iter()
            .filter(|cell| cell.state == state)
            .map(|cell| cell.key.region.as_str())
            .collect();
        regions.into_iter().collect::<Vec<_>>().join(", ")
    };
    match snapshot.overall {
        Health::Unknown => "Waiting for the first probe runs".to_owned(),
        Health::Green => format!("All {total} checks passing"),
        Health::Amber => format!(
            "Degraded: {amber} of {total} checks in {}",
            regions_in(Health::Amber)
        ),
        Health::Red => format!(
            "Failing: {red} of {total} checks in {}",
            regions_in(Health::Red)
        ),
    }
}

/// The grid: a row per probe, a column per target × region.
fn write_grid(f: &mut fmt::Formatter<'_>, cells: &[CellView]) -> fmt::Result {
    let probes: BTreeSet<&str> = cells.iter().map(|c| c.key.probe.as_str()).collect();
    let columns: BTreeSet<(&str, &str)> = cells
        .iter()
        .map(|c| (c.key.target.as_str(), c.key.region.as_str()))
        .collect();
    let by_place: BTreeMap<(&str, &str, &str), &CellView> = cells
        .iter()
        .map(|c| {
            let place = (
                c.key.probe.as_str(),
                c.key.target.as_str(),
                c.key.region.as_str(),
            );
            (place, c)
        })
        .collect();

    f.write_str("<section><h2>Current health</h2>\n")?;
    if cells.is_empty() {
        return f.write_str("<p class=\"empty\">No probe run has finished yet.</p></section>\n");
    }
    f.write_str("<table class=\"grid\"><thead><tr><th>probe</th>")?;
    for (target, region) in &columns {
        write!(
            f,
            r#"<th>{}<small>{}</small></th>"#,
            Escaped(region),
            Escaped(target)
        )?;
    }
    f.write_str("</tr></thead><tbody>\n")?;
    for probe in &probes {
        write!(f, r#"<tr><th scope="row">{}</th>"#, Escaped(probe))?;
        for (target, region) in &columns {
            match by_place.get(&(*probe, *target, *region)) {
                Some(cell) => write_cell(f, cell)?,
                None => write!(
                    f,
                    r#"<td class="cell" data-probe="{}" data-region="{}" data-target="{}" data-state="unknown" data-reasons=""><div class="state">no data</div></td>"#,
                    Escaped(probe),
                    Escaped(region),
                    Escaped(target)
                )?,
            }
        }
        f.write_str("</tr>\n")?;
    }
    f.write_str("</tbody></table></section>\n")
}

/// One cell as the grid shows it (`<td class="cell" …>`), for pages that
/// lay cells out their own way.
pub(crate) struct CellHtml<'a>(pub(crate) &'a CellView);

impl fmt::Display for CellHtml<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_cell(f, self.0)
    }
}

/// One grid cell: the state in words, each failure's reason, and when.
fn write_cell(f: &mut fmt::Formatter<'_>, cell: &CellView) -> fmt::Result {
    let reasons: Vec<&str> = cell.reasons.iter().map(|r| r.as_str()).collect();
    let details: Vec<String> = cell
        .failures
        .iter()
        .map(|failure| format!("{}: {}", failure.operation, failure.detail))
        .collect();
    write!(
        f,
        r#"<td class="cell" data-probe="{}" data-region="{}" data-target="{}" data-state="{}" data-reasons="{}"{} title="{}"><div class="state">{}</div>"#,
        Escaped(&cell.key.probe),
        Escaped(&cell.key.region),
        Escaped(&cell.key.target),
        cell.state.as_str(),
        reasons.join(" "),
        if cell.stale {
            r#" data-stale="true""#
        } else {
            ""
        },
        Escaped(&details.join("\n")),
        cell.state.word(),
    )?;
    write_reasons(f, &cell.failures)?;
    write!(
        f,
        r#"<div class="meta">{}</div></td>"#,
        Escaped(&cell_meta(cell))
    )
}

/// The distinct operation × reason pairs of a cell's last run, in words.
fn write_reasons(f: &mut fmt::Formatter<'_>, failures: &[StepFailure]) -> fmt::Result {
    let pairs: BTreeSet<_> = failures.iter().map(|x| (x.operation, x.reason)).collect();
    if pairs.is_empty() {
        return Ok(());
    }
    f.write_str(r#"<ul class="why">"#)?;
    for (operation, reason) in pairs {
        write!(
            f,
            r#"<li data-reason="{reason}"><b>{operation}</b>: {}</li>"#,
            reason.phrase()
        )?;
    }
    f.write_str("</ul>")
}

/// A short line under a cell: streak or delivery count, and age (and
/// whether the data is stale).
fn cell_meta(cell: &CellView) -> String {
    let stale = if cell.stale { " · stale data" } else { "" };
    let age = format!("{} ago{stale}", age_words(cell.age_seconds));
    match cell.failing_since {
        Some(since) => format!(
            "{} run{} in a row since {} · {age}",
            cell.consecutive_failures,
            if cell.consecutive_failures == 1 {
                ""
            } else {
                "s"
            },
            since.clock()
        ),
        None if cell.messages_expected > 0 => format!(
            "{}/{} delivered · {:.1} s · {age}",
            cell.messages_delivered, cell.messages_expected, cell.duration_seconds
        ),
        None => format!("{:.1} s · {age}", cell.duration_seconds),
    }
}

/// `42 s`, `5 min`, `3 h`.
fn age_words(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        _ => format!("{} h", seconds / 3600),
    }
}

/// The fewest buckets a chart shows (five minutes of ten-second buckets).
const MIN_CHART_BUCKETS: usize = 30;
/// The most bars a chart draws; longer spans merge neighbouring buckets.
const MAX_CHART_BARS: usize = 120;

/// One chart per probe, with its totals, over the last hour or, when the
/// board is younger, since its first run (all charts over the same span).
fn write_trends(f: &mut fmt::Formatter<'_>, trends: &[TrendView]) -> fmt::Result {
    let history = trends.iter().map(TrendView::buckets_with_history).max();
    let shown = history.unwrap_or(0).max(MIN_CHART_BUCKETS);
    let merged = shown.div_ceil(MAX_CHART_BARS);
    let bar_seconds = TREND_BUCKET.as_secs() * merged as u64;
    let shown_minutes = (shown as u64 * TREND_BUCKET.as_secs()).div_ceil(60);
    let window_minutes = TREND_WINDOW.as_secs() / 60;
    writeln!(
        f,
        r#"<section><h2>Last {} minutes</h2><p class="legend"><span class="key green"></span>passed <span class="key amber"></span>degraded <span class="key red"></span>failed (runs per {bar_seconds} s, all regions and targets)</p><div class="trends">"#,
        shown_minutes.min(window_minutes),
    )?;
    for trend in trends {
        let total = |counts: &[u32]| counts.iter().map(|&n| u64::from(n)).sum::<u64>();
        let recent = trend.newest(shown).coarser(merged);
        writeln!(
            f,
            r#"<figure class="trend" data-probe="{}"><figcaption><b>{}</b> · {} runs, {} failed, {} degraded</figcaption>{}</figure>"#,
            Escaped(&trend.probe),
            Escaped(&trend.probe),
            total(&trend.runs),
            total(&trend.failed),
            total(&trend.degraded),
            TrendChart(&recent),
        )?;
    }
    f.write_str("</div></section>\n")
}

/// The recent failures, newest first.
fn write_failures(
    f: &mut fmt::Formatter<'_>,
    failures: &[FailureView],
    no_failures: &str,
) -> fmt::Result {
    writeln!(
        f,
        r#"<section><h2>Recent failures</h2><table class="failures"><thead><tr><th>time (UTC)</th><th>region</th><th>target</th><th>probe</th><th>operation</th><th>reason</th><th>detail</th></tr></thead><tbody>"#
    )?;
    if failures.is_empty() {
        write!(
            f,
            r#"<tr><td colspan="7" class="empty">{}</td></tr>"#,
            Escaped(no_failures)
        )?;
    }
    for row in failures {
        let failure = &row.failure;
        writeln!(
            f,
            r#"<tr data-region="{}" data-probe="{}" data-reason="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} <code>{}</code></td><td class="detail">{}</td></tr>"#,
            Escaped(&row.key.region),
            Escaped(&row.key.probe),
            failure.reason,
            row.at.clock(),
            Escaped(&row.key.region),
            Escaped(&row.key.target),
            Escaped(&row.key.probe),
            failure.operation,
            failure.reason_text,
            failure.reason,
            Escaped(&failure.detail),
        )?;
    }
    f.write_str("</tbody></table></section>\n")
}

/// The page's only style sheet: system fonts, no external resource.
const STYLE: &str = r#"
/* Dark enough for white text on the banner (WCAG AA, ≥ 4.5:1) and for coloured text on the pale cells. */
:root { --green: #137333; --amber: #b06000; --red: #c5221f; --grey: #5f6368; --line: #dadce0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #202124; background: #f8f9fa; }
header.overall { padding: 16px 24px; color: #fff; background: var(--grey); }
header.overall[data-state="green"] { background: var(--green); }
header.overall[data-state="amber"] { background: var(--amber); }
header.overall[data-state="red"] { background: var(--red); }
header h1 { margin: 0; font-size: 16px; font-weight: 500; opacity: .9; }
header .headline { margin: 4px 0 0; font-size: 26px; font-weight: 600; }
header .sub { margin: 2px 0 0; }
section { margin: 20px 24px; }
h2 { font-size: 17px; margin: 0 0 8px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
thead th { background: #f1f3f4; font-weight: 600; }
th small { display: block; font-weight: 400; color: #5f6368; }
td.cell { min-width: 190px; border-left: 6px solid var(--grey); }
td.cell[data-state="green"] { border-left-color: var(--green); background: #e6f4ea; }
td.cell[data-state="amber"] { border-left-color: var(--amber); background: #fef7e0; }
td.cell[data-state="red"] { border-left-color: var(--red); background: #fce8e6; }
td.cell .state { font-weight: 700; text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
td.cell[data-state="green"] .state { color: var(--green); }
td.cell[data-state="amber"] .state { color: var(--amber); }
td.cell[data-state="red"] .state { color: var(--red); }
td.cell ul.why { margin: 2px 0; padding-left: 16px; }
td.cell .meta { color: #5f6368; font-size: 12px; }
div.trends { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 12px; max-width: 1400px; }
figure.trend { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px 8px; }
figure.trend figcaption { margin-bottom: 2px; }
svg.chart { display: block; width: 100%; height: auto; font-size: 13px; fill: #5f6368; }
svg.chart .axis { stroke: #9aa0a6; stroke-width: 1; }
svg.chart rect.green, .key.green { fill: var(--green); background: var(--green); }
svg.chart rect.amber, .key.amber { fill: var(--amber); background: var(--amber); }
svg.chart rect.red, .key.red { fill: var(--red); background: var(--red); }
.legend .key { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
table.failures th, table.failures td { white-space: nowrap; }
table.failures td.detail { white-space: normal; max-width: 420px; overflow-wrap: anywhere; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
td.empty, p.empty { color: #5f6368; }
code { font-size: 12px; color: #5f6368; }
footer { margin: 20px 24px 32px; color: #5f6368; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age_words(3), "3 s");
        assert_eq!(age_words(119), "119 s");
        assert_eq!(age_words(600), "10 min");
        assert_eq!(age_words(10_800), "3 h");
    }
}
