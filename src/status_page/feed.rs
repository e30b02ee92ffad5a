//! `/feed.atom`: an Atom feed (RFC 4287) with one entry per incident,
//! updated when it ends, one per statement published of it, and the
//! operator's statement as an entry of its own, for feed readers, chat
//! integrations and mail gateways.

use std::fmt::Write as _;

use super::incidents::Incident;
use super::notes::Note;
use super::sections::from_words;
use super::statements::Timelines;
use crate::notify::outbox::Statement;
use crate::status::Timestamp;
use crate::status::html::Escaped;

/// Ids of the feed and its entries (stable: an entry keeps its id when it
/// is updated).
const ID_PREFIX: &str = "tag:chatprobe.invalid,2026:status-page";

/// The feed titled `title`, as of `now`.
pub(crate) fn render(
    title: &str,
    incidents: &[Incident],
    timelines: &Timelines,
    note: Option<&Note>,
    now: Timestamp,
) -> String {
    let said = incidents
        .iter()
        .flat_map(|incident| timelines.said_of(incident).iter().map(statement_at));
    let updated = incidents
        .iter()
        .map(last_change)
        .chain(said)
        .chain(note.map(|note| note.updated))
        .max()
        .unwrap_or(now);
    let mut xml = String::new();
    let _ = write!(
        xml,
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<id>{ID_PREFIX}</id>
<title>{}</title>
<subtitle>Incidents found by chatprobe's probes</subtitle>
<updated>{}</updated>
<author><name>chatprobe</name></author>
<link rel="alternate" type="text/html" href="./"/>
<link rel="self" type="application/atom+xml" href="feed.atom"/>
"#,
        Escaped(title),
        updated.rfc3339()
    );
    if let Some(note) = note {
        note_entry(&mut xml, note);
    }
    for incident in incidents {
        incident_entry(&mut xml, incident);
        for statement in timelines.said_of(incident) {
            statement_entry(&mut xml, incident, statement);
        }
    }
    xml.push_str("</feed>\n");
    xml
}

/// When `statement` was published.
fn statement_at(statement: &Statement) -> Timestamp {
    Timestamp::from_unix_seconds(u64::try_from(statement.at).unwrap_or(0))
}

/// A published statement of `incident`.
fn statement_entry(xml: &mut String, incident: &Incident, statement: &Statement) {
    let at = statement_at(statement).rfc3339();
    let _ = write!(
        xml,
        r#"<entry>
<id>{ID_PREFIX}/statement/{}</id>
<title>{}: {}</title>
<published>{at}</published>
<updated>{at}</updated>
<category term="{}"/>
<content type="text">{}</content>
</entry>
"#,
        statement.id,
        from_words(statement.kind),
        Escaped(&incident_title(incident)),
        statement.kind.as_str(),
        Escaped(&statement.text),
    );
}

/// When an incident last changed: its end, or its start while ongoing.
fn last_change(incident: &Incident) -> Timestamp {
    incident.ended_at.unwrap_or(incident.started_at)
}

fn note_entry(xml: &mut String, note: &Note) {
    let _ = write!(
        xml,
        r#"<entry>
<id>{ID_PREFIX}/notes</id>
<title>Statement from the operators</title>
<updated>{}</updated>
<content type="text">{}</content>
</entry>
"#,
        note.updated.rfc3339(),
        Escaped(&note.text)
    );
}

/// The title of an incident's entry.
pub(crate) fn incident_title(incident: &Incident) -> String {
    let regions: Vec<&str> = incident.regions.iter().map(String::as_str).collect();
    match incident.ended_at {
        None => format!(
            "{} failing in {} since {} UTC",
            incident.probe,
            regions.join(", "),
            incident.started_at.clock()
        ),
        Some(_) => format!(
            "Resolved: {} failed in {} for {}",
            incident.probe,
            regions.join(", "),
            duration_words(incident.duration_seconds)
        ),
    }
}

/// `45 s`, `12 min`, `3 h 5 min`.
pub(crate) fn duration_words(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..3600 => format!("{} min", seconds / 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

fn incident_entry(xml: &mut String, incident: &Incident) {
    let targets: Vec<&str> = incident.targets.iter().map(String::as_str).collect();
    let ended = incident
        .ended_at
        .map_or_else(|| "ongoing".to_owned(), Timestamp::rfc3339);
    let summary = format!(
        "Probe {} against {}: {}. Started {}, ended {ended}.",
        incident.probe,
        targets.join(", "),
        incident.reasons_text(),
        incident.started_at.rfc3339(),
    );
    let _ = write!(
        xml,
        r#"<entry>
<id>{ID_PREFIX}/incident/{}/{}</id>
<title>{}</title>
<published>{}</published>
<updated>{}</updated>
<category term="{}"/>
<content type="text">{}</content>
</entry>
"#,
        Escaped(&incident.probe),
        incident.started_at.unix_seconds(),
        Escaped(&incident_title(incident)),
        incident.started_at.rfc3339(),
        last_change(incident).rfc3339(),
        if incident.ongoing() {
            "ongoing"
        } else {
            "resolved"
        },
        Escaped(&summary),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::outcome::{Operation, Reason};

    fn incident(ended: Option<u64>) -> Incident {
        Incident {
            probe: "group_message".into(),
            regions: BTreeSet::from(["ap-south".to_owned()]),
            targets: BTreeSet::from(["mock".to_owned()]),
            reasons: BTreeMap::from([(Reason::HttpError, BTreeSet::from([Operation::Send]))]),
            started_at: Timestamp::from_unix_seconds(1_795_451_100),
            ended_at: ended.map(Timestamp::from_unix_seconds),
            duration_seconds: ended.map_or(60, |end| end - 1_795_451_100),
        }
    }

    #[test]
    fn each_incident_is_an_entry_updated_when_it_ends() {
        let now = Timestamp::from_unix_seconds(1_795_452_000);
        let none = Timelines::default();
        let ongoing = render("fleet", &[incident(None)], &none, None, now);
        let ended = render("fleet", &[incident(Some(1_795_451_700))], &none, None, now);
        let id =
            "<id>tag:chatprobe.invalid,2026:status-page/incident/group_message/1795451100</id>";
        for feed in [&ongoing, &ended] {
            assert!(feed.starts_with("<?xml"));
            assert!(feed.contains(r#"<feed xmlns="http://www.w3.org/2005/Atom">"#));
            assert_eq!(feed.matches("<entry>").count(), 1);
            assert!(feed.contains(id), "{feed}");
        }
        assert!(
            ongoing.contains("<title>group_message failing in ap-south since 16:25:00 UTC</title>")
        );
        assert!(ongoing.contains("<updated>2026-11-23T16:25:00Z</updated>"));
        assert!(
            ended.contains("<title>Resolved: group_message failed in ap-south for 10 min</title>")
        );
        assert!(ended.contains("<updated>2026-11-23T16:35:00Z</updated>"));
        assert!(ended.contains("send: answered with an error (http_error)"));
    }

    #[test]
    fn the_note_is_an_entry_and_text_is_escaped() {
        let note = Note {
            text: "Sends <fail> & we know".into(),
            updated: Timestamp::from_unix_seconds(1_795_451_200),
        };
        let feed = render(
            "a <b>",
            &[],
            &Timelines::default(),
            Some(&note),
            Timestamp::from_unix_seconds(0),
        );
        assert!(feed.contains("<title>a &lt;b&gt;</title>"));
        assert!(feed.contains("Sends &lt;fail&gt; &amp; we know"));
        assert!(feed.contains("<updated>2026-11-23T16:26:40Z</updated>"));
    }
}
