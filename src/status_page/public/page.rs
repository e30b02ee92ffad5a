//! The public page as server-rendered HTML: a headline, each feature's
//! state by region, ongoing and recent incidents and 90-day uptime by
//! feature, all in the words of [`super::features`]; and the "Report a
//! problem" form, which works without script (a POST to `report`, answered
//! with a redirect back here). No probe, target, reason or operation names
//! reach it; every piece of text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::features::{Feature, FeatureState};
use super::trend::{self, ReportHour, ReportTrend};
use crate::status::Timestamp;
use crate::status::html::Escaped;
use crate::status_page::incidents::Incident;
use crate::status_page::notes::Note;
use crate::status_page::sections::{self, UptimeLabels};
use crate::status_page::statements::{self, Timelines};
use crate::status_page::uptime::UptimeRow;

/// How far back resolved incidents are listed.
const RECENT_INCIDENTS_SECONDS: u64 = 7 * 86_400;

/// A choice of the report form: its value and its words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice<'a> {
    /// What the form posts.
    pub(crate) id: &'a str,
    /// What the user reads.
    pub(crate) name: &'a str,
}

/// Everything the public page shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicPage<'a> {
    /// The page's title (the service's name).
    pub(crate) title: &'a str,
    /// When the shown reading was taken.
    pub(crate) generated_at: Timestamp,
    /// Each feature's state.
    pub(crate) features: &'a [Feature],
    /// Every incident of the history, newest first.
    pub(crate) incidents: &'a [Incident],
    /// What was published of them.
    pub(crate) timelines: &'a Timelines,
    /// Day bars per probe and region.
    pub(crate) uptime: &'a [UptimeRow],
    /// What users can report.
    pub(crate) problems: &'a [Choice<'a>],
    /// Where users can say they are.
    pub(crate) regions: &'a [Choice<'a>],
    /// Reports per hour over the last day, oldest first.
    pub(crate) reports: &'a [ReportHour],
    /// Whether to offer "Notify me" (mail can be sent).
    pub(crate) notify_me: bool,
    /// The operators' statement, if there is one.
    pub(crate) note: Option<&'a Note>,
    /// Sentences on top (a thank-you, why the page may be wrong), already in words.
    pub(crate) notices: &'a [String],
    /// Whether Prometheus could not be read.
    pub(crate) blind: bool,
}

impl PublicPage<'_> {
    /// The complete HTML document.
    pub(crate) fn render(&self) -> String {
        let mut html = String::with_capacity(16 * 1024);
        self.write_head(&mut html);
        self.write_notices(&mut html);
        html.extend(sections::notes(self.note));
        self.write_features(&mut html);
        self.write_incidents(&mut html);
        self.write_report_form(&mut html);
        self.write_report_trend(&mut html);
        if self.notify_me {
            self.write_notify_form(&mut html);
        }
        self.write_uptime(&mut html);
        html.push_str(
            r#"<footer><a href="operators">For operators</a> · <a href="api/status">The same data as JSON</a> · <a href="feed.atom">Atom feed</a></footer>
</body>
</html>
"#,
        );
        html
    }

    fn overall(&self) -> FeatureState {
        if self.blind {
            return FeatureState::Unknown;
        }
        self.features
            .iter()
            .map(|feature| feature.state)
            .max()
            .unwrap_or(FeatureState::Unknown)
    }

    fn headline(&self) -> String {
        let names = |state: FeatureState| -> String {
            let names: Vec<&str> = self
                .features
                .iter()
                .filter(|feature| feature.state == state)
                .map(|feature| feature.name.as_str())
                .collect();
            names.join(", ")
        };
        match self.overall() {
            FeatureState::Unknown => {
                "Status unknown: the checks cannot be read right now".to_owned()
            }
            FeatureState::Operational => "All features are working".to_owned(),
            FeatureState::UsersReportProblems => format!(
                "Users report problems with: {}",
                names(FeatureState::UsersReportProblems)
            ),
            FeatureState::Degraded => format!("Degraded: {}", names(FeatureState::Degraded)),
            FeatureState::Outage => format!("Outage: {}", names(FeatureState::Outage)),
        }
    }

    fn write_head(&self, html: &mut String) {
        let overall = self.overall();
        let _ = write!(
            html,
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: {state}</title>
<link rel="alternate" type="application/atom+xml" title="incidents" href="feed.atom">
<style>{STYLE}{trend_style}</style>
</head>
<body>
<header class="overall" data-state="{state_id}"><h1>{title}</h1><p class="headline">{headline}</p><p class="sub">Updated {updated} UTC · reload for the latest</p></header>
"#,
            title = Escaped(self.title),
            state = overall.words(),
            state_id = state_id(overall),
            headline = Escaped(&self.headline()),
            updated = self.generated_at.clock(),
            trend_style = trend::STYLE,
        );
    }

    fn write_notices(&self, html: &mut String) {
        for notice in self.notices {
            let _ = writeln!(html, r#"<p class="notice">{}</p>"#, Escaped(notice));
        }
    }

    fn write_features(&self, html: &mut String) {
        html.push_str(r#"<section class="features"><h2>Features</h2>"#);
        if self.features.is_empty() {
            html.push_str(r#"<p class="empty">No checks have run yet.</p>"#);
        }
        for feature in self.features {
            let _ = write!(
                html,
                r#"<article class="feature" data-probe="{probe}" data-state="{state}"><div class="what"><h3>{name}</h3><p class="desc">{description}</p></div><p class="state">{words}</p><ul class="regions">"#,
                probe = Escaped(&feature.probe),
                state = state_id(feature.state),
                name = Escaped(&feature.name),
                description = Escaped(&feature.description),
                words = Escaped(&feature.state_words()),
            );
            for region in &feature.regions {
                let _ = write!(
                    html,
                    r#"<li data-region="{}" data-state="{}">{}: {}</li>"#,
                    Escaped(&region.region),
                    state_id(region.state),
                    Escaped(&region.name),
                    region.state.words()
                );
            }
            html.push_str("</ul></article>");
        }
        html.push_str("</section>\n");
    }

    /// The incidents of the last 7 days: with what was published of each,
    /// newest first, when this page publishes statements (one nothing was
    /// published of, held or waiting for an operator, is left out); else
    /// their drafted words as the probes see them now.
    fn write_incidents(&self, html: &mut String) {
        let now = self.generated_at.unix_seconds();
        let shown: Vec<&Incident> = self
            .incidents
            .iter()
            .filter(|incident| {
                incident
                    .ended_at
                    .is_none_or(|end| end.unix_seconds() + RECENT_INCIDENTS_SECONDS >= now)
            })
            .filter(|incident| {
                !self.timelines.published || !self.timelines.said_of(incident).is_empty()
            })
            .collect();
        html.push_str(r#"<section class="incidents"><h2>Incidents, last 7 days</h2>"#);
        if shown.is_empty() {
            html.push_str(r#"<p class="empty">No incidents.</p>"#);
        }
        for incident in shown {
            let state = if incident.ongoing() {
                "ongoing"
            } else {
                "resolved"
            };
            let _ = write!(
                html,
                r#"<article class="incident" data-state="{state}" data-probe="{}"><h3>{}</h3>"#,
                Escaped(&incident.probe),
                Escaped(&self.feature_name(&incident.probe)),
            );
            if self.timelines.published {
                sections::timeline(html, self.timelines.said_of(incident));
            } else {
                let _ = write!(html, "<p>{}</p>", Escaped(&self.incident_words(incident)));
            }
            html.push_str("</article>");
        }
        html.push_str("</section>\n");
    }

    /// The incident's drafted statement, in the page's names.
    fn incident_words(&self, incident: &Incident) -> String {
        let regions: Vec<String> = incident
            .regions
            .iter()
            .map(|region| self.region_name(region))
            .collect();
        statements::drafted(incident, &self.feature_name(&incident.probe), &regions)
    }

    fn feature_name(&self, probe: &str) -> String {
        self.features
            .iter()
            .find(|feature| feature.probe == probe)
            .map_or_else(|| probe.to_owned(), |feature| feature.name.clone())
    }

    fn region_name(&self, region: &str) -> String {
        self.regions
            .iter()
            .find(|choice| choice.id == region)
            .map_or_else(|| region.to_owned(), |choice| choice.name.to_owned())
    }

    fn write_report_form(&self, html: &mut String) {
        html.push_str(
            r#"<section class="report"><h2>Report a problem</h2><form method="post" action="report"><fieldset><legend>What is not working for you?</legend>"#,
        );
        for (index, problem) in self.problems.iter().enumerate() {
            let checked = if index == 0 { " checked" } else { "" };
            let _ = write!(
                html,
                r#"<label><input type="radio" name="problem" value="{}"{checked}> {}</label>"#,
                Escaped(problem.id),
                Escaped(problem.name)
            );
        }
        html.push_str(r#"</fieldset><label class="where">Where are you? <select name="region"><option value="">Not sure</option>"#);
        for region in self.regions {
            let _ = write!(
                html,
                r#"<option value="{}">{}</option>"#,
                Escaped(region.id),
                Escaped(region.name)
            );
        }
        html.push_str(
            r#"</select></label> <button type="submit">Report a problem</button><p class="sub">We count one report per person and problem every 15 minutes, and keep no address.</p></form></section>
"#,
        );
    }

    /// "Notify me": an address, the features (none ticked: all) and when.
    fn write_notify_form(&self, html: &mut String) {
        html.push_str(
            r#"<section class="report notify"><h2>Notify me</h2><form method="post" action="subscribe"><label class="where">Your email address <input type="email" name="email" required autocomplete="email"></label><fieldset><legend>About (none ticked: everything)</legend>"#,
        );
        for feature in self.features {
            let _ = write!(
                html,
                r#"<label><input type="checkbox" name="features" value="{}"> {}</label>"#,
                Escaped(&feature.probe),
                Escaped(&feature.name)
            );
        }
        html.push_str(
            r#"</fieldset><fieldset><legend>When</legend><label><input type="checkbox" name="events" value="resolved" checked> When it is back</label><label><input type="checkbox" name="events" value="opened"> When a problem starts</label></fieldset><button type="submit">Notify me</button><p class="sub">We send one mail to confirm the address and nothing else until you do; every mail has a one-click unsubscribe. We keep the address and your choices, nothing more.</p></form></section>
"#,
        );
    }

    fn write_report_trend(&self, html: &mut String) {
        let trend = ReportTrend {
            problems: self.problems,
            hours: self.reports,
            incidents: self.incidents,
        };
        let _ = writeln!(
            html,
            r#"<section class="trend"><h2>Reports from users, last {} hours</h2><figure>{trend}</figure>{}</section>"#,
            self.reports.len(),
            trend.legend()
        );
    }

    fn write_uptime(&self, html: &mut String) {
        let rows = per_feature(self.uptime);
        let labels = UptimeLabels {
            row: &|row: &UptimeRow| (self.feature_name(&row.probe), String::new()),
            incident: &|incident: &Incident| {
                format!(
                    "{}: problems in {}",
                    self.feature_name(&incident.probe),
                    incident
                        .regions
                        .iter()
                        .map(|region| self.region_name(region))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            legend: "Share of passing checks per day (UTC); hover a day for its incidents.",
        };
        html.push_str(&sections::uptime(&rows, self.incidents, &labels));
    }
}

/// The uptime rows merged over regions: one per probe, its region empty.
fn per_feature(rows: &[UptimeRow]) -> Vec<UptimeRow> {
    let mut merged: BTreeMap<&str, UptimeRow> = BTreeMap::new();
    for row in rows {
        let feature = merged.entry(&row.probe).or_insert_with(|| UptimeRow {
            probe: row.probe.clone(),
            region: String::new(),
            days: row
                .days
                .iter()
                .map(|day| crate::status_page::uptime::Day {
                    start: day.start,
                    passed: 0.0,
                    failed: 0.0,
                })
                .collect(),
        });
        for (sum, day) in feature.days.iter_mut().zip(&row.days) {
            sum.passed += day.passed;
            sum.failed += day.failed;
        }
    }
    merged.into_values().collect()
}

/// The value of `data-state` for `state` (the JSON word).
fn state_id(state: FeatureState) -> &'static str {
    match state {
        FeatureState::Unknown => "unknown",
        FeatureState::Operational => "operational",
        FeatureState::UsersReportProblems => "users_report_problems",
        FeatureState::Degraded => "degraded",
        FeatureState::Outage => "outage",
    }
}

/// The page's style: readable from 390 px wide phones to desktops.
const STYLE: &str = r#"
:root { --green: #137333; --amber: #b06000; --red: #c5221f; --blue: #1a73e8; --grey: #5f6368; --line: #dadce0; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #202124; background: #f8f9fa; }
header.overall { padding: 16px 20px; color: #fff; background: var(--grey); }
header.overall[data-state="operational"] { background: var(--green); }
header.overall[data-state="users_report_problems"] { background: var(--blue); }
header.overall[data-state="degraded"] { background: var(--amber); }
header.overall[data-state="outage"] { background: var(--red); }
header h1 { margin: 0; font-size: 16px; font-weight: 500; opacity: .9; }
header .headline { margin: 4px 0 0; font-size: 24px; font-weight: 600; overflow-wrap: anywhere; }
header .sub { margin: 2px 0 0; font-size: 13px; color: inherit; opacity: 0.9; }
section { margin: 18px auto; padding: 0 16px; max-width: 960px; }
h2 { font-size: 18px; margin: 0 0 8px; }
p.notice { max-width: 928px; margin: 12px auto; padding: 8px 12px; background: #e8f0fe; border-left: 6px solid var(--blue); overflow-wrap: anywhere; }
p.empty, .sub { color: var(--grey); font-size: 13px; }
section.notes { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--blue); padding: 8px 16px; max-width: 928px; overflow-wrap: anywhere; }
section.notes h3 { margin: 6px 0; font-size: 16px; }
article.feature { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--grey); padding: 8px 12px; margin: 0 0 8px; }
article.feature .what { flex: 1 1 300px; min-width: 0; }
article.feature h3 { margin: 0; font-size: 16px; }
article.feature .desc { margin: 0; color: var(--grey); font-size: 14px; }
article.feature .state { margin: 0; font-weight: 700; }
article.feature ul.regions { flex: 1 1 100%; margin: 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 14px; }
[data-state="operational"] { border-left-color: var(--green); }
[data-state="users_report_problems"] { border-left-color: var(--blue); }
[data-state="degraded"] { border-left-color: var(--amber); }
[data-state="outage"] { border-left-color: var(--red); }
article.feature[data-state="operational"] .state, li[data-state="operational"] { color: var(--green); }
article.feature[data-state="users_report_problems"] .state, li[data-state="users_report_problems"] { color: var(--blue); }
article.feature[data-state="degraded"] .state, li[data-state="degraded"] { color: var(--amber); }
article.feature[data-state="outage"] .state, li[data-state="outage"] { color: var(--red); }
article.incident { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--green); padding: 6px 12px; margin: 0 0 8px; }
article.incident[data-state="ongoing"] { border-left-color: var(--red); background: #fce8e6; }
article.incident h3 { margin: 2px 0; font-size: 15px; }
article.incident p { margin: 2px 0; }
ol.timeline { margin: 4px 0; padding-left: 18px; }
ol.timeline li { margin: 2px 0; }
section.trend figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px 8px; }
section.report form { background: #fff; border: 1px solid var(--line); padding: 8px 12px; }
section.report fieldset { border: 0; margin: 0 0 8px; padding: 0; }
section.report legend { font-weight: 600; margin-bottom: 4px; }
section.report fieldset label { display: block; padding: 6px 0; }
section.report input[type="email"] { font: inherit; padding: 6px 8px; width: 100%; max-width: 24rem; display: block; }
section.report select, section.report button { font: inherit; padding: 6px 10px; margin: 4px 0; }
section.report button { background: var(--blue); color: #fff; border: 0; border-radius: 4px; }
div.uptime { background: #fff; border: 1px solid var(--line); padding: 6px 12px; }
div.uprow { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 10px; margin: 6px 0; }
div.uprow .who { flex: 1 1 100%; }
div.uprow .days { display: flex; gap: 1px; flex: 1; height: 22px; min-width: 0; }
div.uprow .day { flex: 1; min-width: 1px; border-radius: 1px; background: #e8eaed; }
div.uprow .day.up { background: var(--green); }
div.uprow .day.dip { background: var(--amber); }
div.uprow .day.down { background: var(--red); }
div.uprow .pct { flex: none; text-align: right; font-variant-numeric: tabular-nums; }
.legend { color: var(--grey); font-size: 13px; }
footer { margin: 24px auto; padding: 0 16px; max-width: 960px; color: var(--grey); font-size: 13px; }
"#;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::metrics::Event;
    use crate::notify::outbox::{Kind, Statement};
    use crate::outcome::{Operation, Reason};
    use crate::status_page::public::features::RegionState;
    use crate::status_page::uptime::Day;

    /// 2026-11-23T16:25:00Z.
    const NOW: u64 = 1_795_451_100;

    fn feature(name: &str, state: FeatureState, confirmed: Option<u64>) -> Feature {
        Feature {
            probe: "group_message".to_owned(),
            name: name.to_owned(),
            description: "Messages reach everyone.".to_owned(),
            state,
            confirmed_by_reports: confirmed,
            regions: vec![RegionState {
                region: "ap-south".to_owned(),
                name: "Asia South".to_owned(),
                state,
                reports: confirmed.unwrap_or(0),
            }],
        }
    }

    fn incident(ended: Option<u64>) -> Incident {
        Incident {
            probe: "group_message".into(),
            regions: BTreeSet::from(["ap-south".to_owned()]),
            targets: BTreeSet::from(["shard-7".to_owned()]),
            reasons: BTreeMap::from([(Reason::HttpError, BTreeSet::from([Operation::Send]))]),
            started_at: Timestamp::from_unix_seconds(NOW - 720),
            ended_at: ended.map(Timestamp::from_unix_seconds),
            duration_seconds: 720,
        }
    }

    fn render(
        features: &[Feature],
        incidents: &[Incident],
        timelines: &Timelines,
        notices: &[String],
        blind: bool,
    ) -> String {
        let uptime = [UptimeRow {
            probe: "group_message".into(),
            region: "ap-south".into(),
            days: vec![Day {
                start: NOW - NOW % 86_400,
                passed: 99.0,
                failed: 1.0,
            }],
        }];
        PublicPage {
            title: "Chat <status>",
            generated_at: Timestamp::from_unix_seconds(NOW),
            features,
            incidents,
            timelines,
            uptime: &uptime,
            problems: &[
                Choice {
                    id: "not_received",
                    name: "Messages sent but not received",
                },
                Choice {
                    id: "cannot_leave",
                    name: "I cannot leave a group",
                },
            ],
            regions: &[Choice {
                id: "ap-south",
                name: "Asia South",
            }],
            reports: &[],
            notify_me: true,
            note: None,
            notices,
            blind,
        }
        .render()
    }

    #[test]
    fn an_outage_is_worded_for_users_without_targets_reasons_or_operations() {
        let features = [feature(
            "Sending <b>messages</b>",
            FeatureState::Outage,
            Some(41),
        )];
        let html = render(
            &features,
            &[incident(None)],
            &Timelines::default(),
            &[],
            false,
        );
        assert!(
            html.contains(r#"<header class="overall" data-state="outage">"#),
            "{html}"
        );
        assert!(
            html.contains("Outage: Sending &lt;b&gt;messages&lt;/b&gt;"),
            "{html}"
        );
        assert!(
            html.contains("Outage, confirmed by 41 user reports"),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<li data-region="ap-south" data-state="outage">Asia South: Outage</li>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "Sending &lt;b&gt;messages&lt;/b&gt; is not working as it should in Asia South since 16:13 UTC: sending messages fails."
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "16:13:00–ongoing: Sending &lt;b&gt;messages&lt;/b&gt;: problems in Asia South"
            ),
            "{html}"
        );
        for operator_word in ["shard-7", "http_error", "send:", "<b>"] {
            assert!(
                !html.contains(operator_word),
                "{operator_word} leaked: {html}"
            );
        }
        assert!(html.contains("<title>Chat &lt;status&gt;: Outage</title>"));
    }

    #[test]
    fn the_report_form_posts_without_script_and_lists_problems_and_regions() {
        let html = render(
            &[feature("Messages", FeatureState::Operational, None)],
            &[],
            &Timelines::default(),
            &[],
            false,
        );
        assert!(
            html.contains(r#"<form method="post" action="report">"#),
            "{html}"
        );
        assert!(html.contains(r#"<input type="radio" name="problem" value="not_received" checked> Messages sent but not received"#), "{html}");
        assert!(
            html.contains(r#"<option value="ap-south">Asia South</option>"#),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains(r#"<form method="post" action="subscribe">"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<input type="checkbox" name="features" value="group_message"> Messages"#
            ),
            "{html}"
        );
        assert!(html.contains("All features are working"), "{html}");
        assert!(html.contains("No incidents."), "{html}");
    }

    #[test]
    fn a_blind_page_says_unknown_and_why_and_old_incidents_drop_off() {
        let old = incident(Some(NOW - RECENT_INCIDENTS_SECONDS - 1));
        let notice = ["We cannot read <the checks>".to_owned()];
        let html = render(
            &[feature("Messages", FeatureState::Operational, None)],
            &[old],
            &Timelines::default(),
            &notice,
            true,
        );
        assert!(
            html.contains(r#"<header class="overall" data-state="unknown">"#),
            "{html}"
        );
        assert!(html.contains("Status unknown"), "{html}");
        assert!(
            html.contains(r#"<p class="notice">We cannot read &lt;the checks&gt;</p>"#),
            "{html}"
        );
        assert!(html.contains("No incidents."), "{html}");
    }

    fn said(id: i64, at: u64, kind: Kind, text: &str) -> Statement {
        Statement {
            id,
            incident: statements::key_of(&incident(None)),
            probe: "group_message".into(),
            at: i64::try_from(at).unwrap_or(0),
            kind,
            event: Event::Statement,
            text: text.into(),
            incident_json: String::new(),
        }
    }

    #[test]
    fn a_page_that_publishes_shows_what_was_published_newest_first_and_nothing_held() {
        let ongoing = incident(None);
        let mut held = incident(None);
        held.probe = "leave_group".into();
        held.started_at = Timestamp::from_unix_seconds(NOW - 60);
        let timelines = Timelines {
            published: true,
            said: BTreeMap::from([(
                statements::key_of(&ongoing),
                vec![
                    said(1, NOW - 700, Kind::Drafted, "Drafted first."),
                    said(2, NOW - 300, Kind::Operator, "We <know> & fix it."),
                ],
            )]),
            drafts: BTreeMap::new(),
        };
        let html = render(
            &[feature("Messages", FeatureState::Outage, None)],
            &[ongoing, held],
            &timelines,
            &[],
            false,
        );
        assert_eq!(
            html.matches(r#"<article class="incident""#).count(),
            1,
            "{html}"
        );
        let operator = html
            .find("2026-11-23 16:20 UTC · Update from the operators</span> We &lt;know&gt; &amp; fix it.")
            .expect("the operator's statement");
        let drafted = html
            .find("2026-11-23 16:13 UTC · Update from our checks</span> Drafted first.")
            .expect("the drafted statement");
        assert!(operator < drafted, "newest first: {html}");
        assert!(!html.contains("is not working as it should"), "{html}");
    }
}
