//! What the fleet page adds to the shared status page: the operator's
//! statement, ongoing incidents (on top), 90-day uptime bars (hover a day
//! for its incidents) and the incident history. HTML with every piece of
//! text escaped; the shared renderer places it (see [`crate::status::Frame`]).

use std::fmt::Write as _;

use super::feed::{duration_words, incident_title};
use super::incidents::Incident;
use super::notes::{Note, to_html};
use super::uptime::{DAYS, Day, UptimeRow};
use crate::status::html::Escaped;

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
pub(crate) fn ongoing(incidents: &[Incident]) -> Option<String> {
    let ongoing: Vec<&Incident> = incidents.iter().filter(|i| i.ongoing()).collect();
    if ongoing.is_empty() {
        return None;
    }
    let mut html = String::from(r#"<section class="incidents"><h2>Ongoing incidents</h2>"#);
    for incident in ongoing {
        write_incident(&mut html, incident);
    }
    html.push_str("</section>\n");
    Some(html)
}

/// Every incident of the history, newest first.
pub(crate) fn history(incidents: &[Incident]) -> String {
    let mut html = format!(r#"<section class="incidents"><h2>Incidents, last {DAYS} days</h2>"#);
    if incidents.is_empty() {
        html.push_str(r#"<p class="empty">No incidents.</p>"#);
    }
    for incident in incidents {
        write_incident(&mut html, incident);
    }
    html.push_str("</section>\n");
    html
}

fn write_incident(html: &mut String, incident: &Incident) {
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
        r#"<article class="incident" data-state="{state}" data-probe="{}" data-regions="{}"><h3>{}</h3><p>{}</p><p class="sub">Started {} UTC · {} · against {}</p></article>"#,
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
    fn ongoing_incidents_are_listed_on_top_and_all_in_the_history() {
        let incidents = [
            incident("<ap>", None),
            incident("eu-west", Some(1_795_451_220)),
        ];
        let top = ongoing(&incidents).expect("one is ongoing");
        assert_eq!(top.matches("<article").count(), 1);
        assert!(top.contains(r#"data-regions="&lt;ap&gt;""#), "{top}");
        assert!(!top.contains("<ap>"));
        assert_eq!(history(&incidents).matches("<article").count(), 2);
        assert_eq!(ongoing(&incidents[1..]), None);
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
