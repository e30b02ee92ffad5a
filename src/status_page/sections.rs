//! What the fleet page adds to the shared status page: the operator's
//! statement, ongoing incidents (on top), 90-day uptime bars (hover a day
//! for its incidents) and the incident history. HTML with every piece of
//! text escaped; the shared renderer places it (see [`crate::status::Frame`]).

use std::fmt::Write as _;

use super::aggregate::Group;
use super::feed::{duration_words, incident_title};
use super::incidents::Incident;
use super::notes::{Note, to_html};
use super::statements::{Draft, Timelines, key_of};
use super::uptime::{DAYS, Day, UptimeRow};
use crate::notify::outbox::{Kind, Statement};
use crate::status::html::Escaped;
use crate::status::{CellHtml, CellView, Health, Timestamp};

/// How many targets a group row names before it says how many more.
const NOT_PASSING_NAMED: usize = 20;

/// The statement, if there is one.
pub(crate) fn notes(note: Option<&Note>) -> Option<String> {
    note.map(|note| {
        format!(
            r#"<section class="notes"><h2>Statement</h2><div class="note">{}</div><p class="sub">Updated {} UTC</p></section>
"#,
            to_html(&note.text),
            note.updated.rfc3339().replace('T', " ").trim_end_matches('Z')
        )
    })
}

/// The ongoing incidents, or nothing when there are none.
pub(crate) fn ongoing(incidents: &[Incident], timelines: &Timelines) -> Option<String> {
    let ongoing: Vec<&Incident> = incidents.iter().filter(|i| i.ongoing()).collect();
    if ongoing.is_empty() {
        return None;
    }
    let mut html = String::from(r#"<section class="incidents"><h2>Ongoing incidents</h2>"#);
    for incident in ongoing {
        write_incident(&mut html, incident, timelines);
    }
    html.push_str("</section>\n");
    Some(html)
}

/// Every incident of the history, newest first.
pub(crate) fn history(incidents: &[Incident], timelines: &Timelines) -> String {
    let mut html = format!(r#"<section class="incidents"><h2>Incidents, last {DAYS} days</h2>"#);
    if incidents.is_empty() {
        html.push_str(r#"<p class="empty">No incidents.</p>"#);
    }
    for incident in incidents {
        write_incident(&mut html, incident, timelines);
    }
    html.push_str("</section>\n");
    html
}

/// One incident: what failed, where and since when, what was said of it,
/// and the draft waiting to be published, if any.
fn write_incident(html: &mut String, incident: &Incident, timelines: &Timelines) {
    let state = if incident.ongoing() {
        "ongoing"
    } else {
        "resolved"
    };
    let regions: Vec<&str> = incident.regions.iter().map(String::as_str).collect();
    let targets: Vec<&str> = incident.targets.iter().map(String::as_str).collect();
    let ended = incident.ended_at.map_or_else(
        || format!("ongoing for {}", duration_words(incident.duration_seconds)),
        |end| {
            format!(
                "ended {} UTC after {}",
                end.rfc3339().replace('T', " ").trim_end_matches('Z'),
                duration_words(incident.duration_seconds)
            )
        },
    );
    let _ = write!(
        html,
        r#"<article class="incident" data-state="{state}" data-probe="{}" data-regions="{}"><h3>{}</h3><p>{}</p><p class="sub">Started {} UTC · {} · against {}</p>"#,
        Escaped(&incident.probe),
        Escaped(&regions.join(" ")),
        Escaped(&incident_title(incident)),
        Escaped(&incident.reasons_text()),
        incident
            .started_at
            .rfc3339()
            .replace('T', " ")
            .trim_end_matches('Z'),
        Escaped(&ended),
        Escaped(&targets.join(", ")),
    );
    timeline(html, timelines.said_of(incident));
    if let Some(draft) = timelines.draft_of(incident) {
        publish_form(html, incident, draft);
    }
    html.push_str("</article>");
}

/// The draft of `incident` and the form that publishes it (`POST
/// operators/publish`, with the operator token).
fn publish_form(html: &mut String, incident: &Incident, draft: &Draft) {
    let _ = write!(
        html,
        r#"<form class="publish" method="post" action="operators/publish"><p class="draft"><b>Draft, not published:</b> {}</p><input type="hidden" name="incident" value="{}"><label>Operator token <input type="password" name="token" autocomplete="current-password" required></label> <button type="submit">Publish</button></form>"#,
        Escaped(&draft.text),
        Escaped(&key_of(incident)),
    );
}

/// An incident's statements, newest first, each with when and from whom.
pub(crate) fn timeline(html: &mut String, said: &[Statement]) {
    if said.is_empty() {
        return;
    }
    html.push_str(r#"<ol class="timeline">"#);
    for statement in said.iter().rev() {
        let at = Timestamp::from_unix_seconds(u64::try_from(statement.at).unwrap_or(0));
        let _ = write!(
            html,
            r#"<li data-kind="{}"><span class="sub">{} UTC · {}</span> {}</li>"#,
            statement.kind.as_str(),
            minutes_utc(at),
            from_words(statement.kind),
            Escaped(&statement.text)
        );
    }
    html.push_str("</ol>");
}

/// Who a statement of `kind` is from, in words.
pub(crate) fn from_words(kind: Kind) -> &'static str {
    match kind {
        Kind::Drafted => "Update from our checks",
        Kind::Operator => "Update from the operators",
        Kind::Resolved => "Resolved",
    }
}

/// `2026-12-02 16:25`.
fn minutes_utc(at: Timestamp) -> String {
    let full = at.rfc3339().replace('T', " ");
    full.get(..16).unwrap_or(&full).to_owned()
}

/// How uptime rows are worded: each row's name (and a smaller second
/// line), each incident in a day's hover text, and the legend.
pub(crate) struct UptimeLabels<'a> {
    /// A row's name and its small print.
    pub(crate) row: &'a dyn Fn(&UptimeRow) -> (String, String),
    /// An incident, after its times, in a day's hover text.
    pub(crate) incident: &'a dyn Fn(&Incident) -> String,
    /// The sentence under the heading.
    pub(crate) legend: &'a str,
}

/// The operators' words: probe and region, and each incident's reasons.
pub(crate) const OPERATOR_UPTIME: UptimeLabels<'static> = UptimeLabels {
    row: &|row| (row.probe.clone(), row.region.clone()),
    incident: &Incident::reasons_text,
    legend: "Share of passing runs per day (UTC); hover a day for its incidents.",
};

/// One row of day bars per row of `rows`, worded by `labels`.
pub(crate) fn uptime(
    rows: &[UptimeRow],
    incidents: &[Incident],
    labels: &UptimeLabels<'_>,
) -> String {
    let mut html = format!(
        r#"<section><h2>Uptime, last {DAYS} days</h2><p class="legend">{}</p><div class="uptime">"#,
        Escaped(labels.legend)
    );
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">No runs recorded.</p>"#);
    }
    for row in rows {
        let (name, small) = (labels.row)(row);
        let _ = write!(
            html,
            r#"<div class="uprow" data-probe="{}" data-region="{}"><span class="who">{} <small>{}</small></span><span class="days">"#,
            Escaped(&row.probe),
            Escaped(&row.region),
            Escaped(&name),
            Escaped(&small),
        );
        for day in &row.days {
            write_day(&mut html, row, day, incidents, labels);
        }
        let _ = write!(
            html,
            r#"</span><span class="pct">{}</span></div>"#,
            percent(row.share())
        );
    }
    html.push_str("</div></section>\n");
    html
}

fn write_day(
    html: &mut String,
    row: &UptimeRow,
    day: &Day,
    incidents: &[Incident],
    labels: &UptimeLabels<'_>,
) {
    let share = day.share();
    let class = match share {
        None => "none",
        Some(share) if share >= 0.999 => "up",
        Some(share) if share >= 0.99 => "dip",
        Some(_) => "down",
    };
    let date = crate::status::Timestamp::from_unix_seconds(day.start).rfc3339();
    let mut tip = format!(
        "{}: {}",
        date.get(..10).unwrap_or(&date),
        match share {
            None => "no runs".to_owned(),
            Some(_) => format!(
                "{} of {:.0} runs passed",
                percent(share),
                day.passed + day.failed
            ),
        }
    );
    for incident in row.incidents_on(day, incidents) {
        let _ = write!(
            tip,
            "\n{}–{}: {}",
            incident.started_at.clock(),
            incident
                .ended_at
                .map_or_else(|| "ongoing".to_owned(), |end| end.clock()),
            (labels.incident)(incident)
        );
    }
    let _ = write!(
        html,
        r#"<span class="day {class}" title="{}"></span>"#,
        Escaped(&tip)
    );
}

/// `99.95 %`, or `–` without runs.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".to_owned(), |share| format!("{:.2} %", share * 100.0))
}

/// The grid of the fleet: a row per probe and region with its counts and
/// the targets that do not pass, each row linking its drill-down page.
pub(crate) fn groups(groups: &[Group]) -> String {
    let mut html = String::from(
        r#"<section><h2>Current health</h2><p class="legend">Targets per probe and region; open a probe for every target's cell.</p>"#,
    );
    if groups.is_empty() {
        html.push_str(r#"<p class="empty">No probe run has finished yet.</p></section>"#);
        html.push('\n');
        return html;
    }
    html.push_str(r#"<table class="groups"><thead><tr><th>probe</th><th>region</th><th>state</th><th>targets</th><th>passing</th><th>degraded</th><th>failing</th><th>stale</th><th>not passing</th></tr></thead><tbody>"#);
    for group in groups {
        write_group(&mut html, group);
    }
    html.push_str("</tbody></table></section>\n");
    html
}

fn write_group(html: &mut String, group: &Group) {
    let link = cells_link(&group.probe, &group.region);
    let _ = write!(
        html,
        r#"<tr class="group" data-probe="{}" data-region="{}" data-state="{}" data-targets="{}" data-passing="{}" data-degraded="{}" data-failing="{}" data-stale="{}"><th scope="row"><a href="{}">{}</a></th><td>{}</td><td class="state">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="who">"#,
        Escaped(&group.probe),
        Escaped(&group.region),
        group.state.as_str(),
        group.targets,
        group.passing,
        group.degraded,
        group.failing,
        group.stale,
        Escaped(&link),
        Escaped(&group.probe),
        Escaped(&group.region),
        group.state.word(),
        group.targets,
        group.passing,
        group.degraded,
        group.failing,
        group.stale,
    );
    for (index, cell) in group.not_passing.iter().take(NOT_PASSING_NAMED).enumerate() {
        let reasons: Vec<&str> = cell.reasons.iter().map(|reason| reason.as_str()).collect();
        let _ = write!(
            html,
            r#"{}<span data-target="{}" data-state="{}">{} <small>{}</small></span>"#,
            if index == 0 { "" } else { ", " },
            Escaped(&cell.target),
            cell.state.as_str(),
            Escaped(&cell.target),
            reasons.join(" "),
        );
    }
    if let Some(more) = group
        .not_passing
        .len()
        .checked_sub(NOT_PASSING_NAMED)
        .filter(|&n| n > 0)
    {
        let _ = write!(html, r#" <a href="{}">and {more} more</a>"#, Escaped(&link));
    }
    html.push_str("</td></tr>\n");
}

/// The relative address of the drill-down page of `probe` in `region`.
pub(crate) fn cells_link(probe: &str, region: &str) -> String {
    format!(
        "cells?probe={}&region={}",
        percent_encoded(probe),
        percent_encoded(region)
    )
}

/// `text` with every byte but the unreserved ones percent-encoded (RFC 3986).
fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}

/// The drill-down of one probe in one region: every target's cell, those
/// that do not pass first.
pub(crate) fn cells(probe: &str, region: &str, cells: &[&CellView]) -> String {
    let mut sorted = cells.to_vec();
    sorted.sort_by(|a, b| {
        let rank = |cell: &CellView| match cell.state {
            Health::Red => 0,
            Health::Amber => 1,
            Health::Unknown => 2,
            Health::Green => 3,
        };
        (a.stale, rank(a), &a.key.target).cmp(&(b.stale, rank(b), &b.key.target))
    });
    let mut html = format!(
        r#"<section><h2>{} in {}: {} targets</h2><p class="legend"><a href="./">All probes and regions</a></p><table class="cells"><thead><tr><th>target</th><th>last run</th></tr></thead><tbody>"#,
        Escaped(probe),
        Escaped(region),
        cells.len()
    );
    for cell in sorted {
        let _ = write!(
            html,
            r#"<tr><th scope="row">{}</th>{}</tr>"#,
            Escaped(&cell.key.target),
            CellHtml(cell)
        );
        html.push('\n');
    }
    html.push_str("</tbody></table></section>\n");
    html
}

/// The style of these sections, added to the shared style sheet.
pub(crate) const STYLE: &str = r#"
section.notes { background: #fff; border: 1px solid var(--line); border-left: 6px solid #1a73e8; padding: 8px 16px; max-width: 1100px; }
section.notes h3 { margin: 6px 0; font-size: 16px; }
section .sub { color: #5f6368; font-size: 12px; }
article.incident { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--grey); padding: 6px 12px; margin: 0 0 8px; max-width: 1100px; }
article.incident[data-state="ongoing"] { border-left-color: var(--red); background: #fce8e6; }
article.incident[data-state="resolved"] { border-left-color: var(--green); }
article.incident h3 { margin: 2px 0; font-size: 15px; }
article.incident p { margin: 2px 0; }
ol.timeline { margin: 4px 0; padding-left: 18px; }
ol.timeline li { margin: 2px 0; }
form.publish { margin: 6px 0; padding: 6px; border: 1px dashed var(--line); }
form.publish input[type=password] { max-width: 100%; }
div.uptime { background: #fff; border: 1px solid var(--line); padding: 6px 12px; max-width: 1100px; }
div.uprow { display: flex; align-items: center; gap: 10px; margin: 4px 0; }
div.uprow .who { width: 190px; flex: none; }
div.uprow .who small { color: #5f6368; }
div.uprow .days { display: flex; gap: 1px; flex: 1; height: 22px; }
div.uprow .day { flex: 1; border-radius: 1px; background: #e8eaed; }
div.uprow .day.up { background: var(--green); }
div.uprow .day.dip { background: var(--amber); }
div.uprow .day.down { background: var(--red); }
div.uprow .pct { width: 70px; flex: none; text-align: right; font-variant-numeric: tabular-nums; }
table.groups tr.group > * { border-left: 0; }
table.groups tr.group > th { border-left: 6px solid var(--grey); }
table.groups tr.group[data-state="green"] > th { border-left-color: var(--green); }
table.groups tr.group[data-state="amber"] > th { border-left-color: var(--amber); }
table.groups tr.group[data-state="red"] > th { border-left-color: var(--red); background: #fce8e6; }
table.groups td { font-variant-numeric: tabular-nums; }
table.groups td.who { max-width: 520px; }
table.groups td.who small { color: #5f6368; }
"#;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::outcome::{Operation, Reason};
    use crate::status::Timestamp;

    fn incident(region: &str, ended: Option<u64>) -> Incident {
        Incident {
            probe: "group_message".into(),
            regions: BTreeSet::from([region.to_owned()]),
            targets: BTreeSet::from(["mock".to_owned()]),
            reasons: BTreeMap::from([(Reason::HttpError, BTreeSet::from([Operation::Send]))]),
            started_at: Timestamp::from_unix_seconds(1_795_451_100),
            ended_at: ended.map(Timestamp::from_unix_seconds),
            duration_seconds: 120,
        }
    }

    #[test]
    fn a_group_row_links_its_drill_down_and_escapes_every_name() {
        use crate::status_page::aggregate::{Group, NotPassing};
        let not_passing: Vec<NotPassing> = (0..25)
            .map(|index| NotPassing {
                target: format!("<t{index}>"),
                state: Health::Red,
                reasons: vec![Reason::HttpError],
            })
            .collect();
        let group = Group {
            probe: "p&q".into(),
            region: "r\"s".into(),
            state: Health::Red,
            targets: 30,
            passing: 5,
            degraded: 0,
            failing: 25,
            stale: 0,
            not_passing,
        };
        let html = groups(&[group]);
        assert!(
            html.contains(r#"<a href="cells?probe=p%26q&amp;region=r%22s">p&amp;q</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"data-target="&lt;t0&gt;""#), "{html}");
        assert!(!html.contains("<t0>"));
        assert_eq!(
            html.matches("<span data-target=").count(),
            NOT_PASSING_NAMED
        );
        assert!(html.contains(">and 5 more</a>"), "{html}");
        assert!(groups(&[]).contains("No probe run has finished yet."));
    }

    #[test]
    fn ongoing_incidents_are_listed_on_top_and_all_in_the_history() {
        let incidents = [
            incident("<ap>", None),
            incident("eu-west", Some(1_795_451_220)),
        ];
        let none = Timelines::default();
        let top = ongoing(&incidents, &none).expect("one is ongoing");
        assert_eq!(top.matches("<article").count(), 1);
        assert!(top.contains(r#"data-regions="&lt;ap&gt;""#), "{top}");
        assert!(!top.contains("<ap>"));
        assert_eq!(history(&incidents, &none).matches("<article").count(), 2);
        assert_eq!(ongoing(&incidents[1..], &none), None);
        assert!(!top.contains("<form"), "nothing to publish: {top}");
    }

    #[test]
    fn a_draft_waiting_for_an_operator_has_its_publish_form() {
        let waiting = incident("ap-south", None);
        let timelines = Timelines {
            published: true,
            said: Default::default(),
            drafts: [(
                key_of(&waiting),
                Draft {
                    event: crate::metrics::Event::IncidentOpened,
                    kind: Kind::Drafted,
                    text: "Sending <fails>.".into(),
                },
            )]
            .into(),
        };
        let top = ongoing(&[waiting], &timelines).expect("one is ongoing");
        assert!(
            top.contains(r#"<form class="publish" method="post" action="operators/publish"><p class="draft"><b>Draft, not published:</b> Sending &lt;fails&gt;.</p><input type="hidden" name="incident" value="group_message@1795451100">"#),
            "{top}"
        );
        assert!(
            top.contains(r#"<input type="password" name="token""#),
            "{top}"
        );
    }

    #[test]
    fn a_day_bar_names_its_share_and_incidents_on_hover() {
        let day = Day {
            start: 1_795_451_100 - 1_795_451_100 % 86_400,
            passed: 99.0,
            failed: 1.0,
        };
        let row = UptimeRow {
            probe: "group_message".into(),
            region: "ap-south".into(),
            days: vec![day],
        };
        let html = uptime(
            &[row],
            &[incident("ap-south", Some(1_795_451_220))],
            &OPERATOR_UPTIME,
        );
        assert!(html.contains(r#"class="day dip""#), "{html}");
        assert!(html.contains("2026-11-23: 99.00 % of 100 runs passed\n16:25:00–16:27:00: send: answered with an error (http_error)"), "{html}");
        assert!(html.contains(r#"<span class="pct">99.00 %</span>"#));
    }
}
