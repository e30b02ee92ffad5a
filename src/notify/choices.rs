//! What a subscriber asked to hear of: the features (probes) whose
//! incidents concern them (none named: all) and when ("when a problem
//! starts", "when it is back"), checked as they come in and kept in two
//! text columns the outbox's fan-out matches with `LIKE` (each value
//! between commas, so `group_message` never matches a longer name).

use crate::metrics::Event;
use crate::probe::ProbeKind;

/// When a subscriber wants mail (`events` of a subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum When {
    /// "When a problem starts": an incident's opening and its later statements.
    Opened,
    /// "When it is back": the resolved statement.
    Resolved,
}

impl When {
    /// Both, in the order forms show them.
    pub(crate) const ALL: [When; 2] = [When::Opened, When::Resolved];

    /// Its word in the API, forms and the store (**contract**).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            When::Opened => "opened",
            When::Resolved => "resolved",
        }
    }

    /// The one `word` names.
    pub(crate) fn parse(word: &str) -> Option<When> {
        When::ALL.into_iter().find(|when| when.as_str() == word)
    }

    /// Which choice an event is mailed to (`None`: confirmations, mailed regardless).
    pub(crate) fn of_event(event: Event) -> Option<When> {
        match event {
            Event::Confirm => None,
            Event::IncidentOpened | Event::Statement => Some(When::Opened),
            Event::IncidentResolved => Some(When::Resolved),
        }
    }
}

/// A subscriber's choices, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choices {
    /// The probes it hears of, sorted; empty: every one.
    pub(crate) features: Vec<String>,
    /// When it hears, sorted, never empty.
    pub(crate) events: Vec<When>,
}

/// The most features one subscription may name.
const MOST_FEATURES: usize = 32;

impl Choices {
    /// Checks `features` (shipped probe names; none: all) and `events`
    /// (`opened`, `resolved`; none: `resolved`, "when it is back").
    pub(crate) fn new(features: &[String], events: &[String]) -> Result<Choices, String> {
        if features.len() > MOST_FEATURES || events.len() > When::ALL.len() * 2 {
            return Err("too many features or events".into());
        }
        let mut checked_features = Vec::new();
        for feature in features {
            let known = ProbeKind::ALL.iter().any(|kind| kind.as_str() == feature);
            if !known {
                return Err(format!("unknown feature `{}`", shorten(feature)));
            }
            checked_features.push(feature.clone());
        }
        let mut checked_events = Vec::new();
        for event in events {
            let when = When::parse(event)
                .ok_or_else(|| format!("unknown event `{}`: opened or resolved", shorten(event)))?;
            checked_events.push(when);
        }
        if checked_events.is_empty() {
            checked_events.push(When::Resolved);
        }
        checked_features.sort();
        checked_features.dedup();
        checked_events.sort();
        checked_events.dedup();
        Ok(Choices {
            features: checked_features,
            events: checked_events,
        })
    }

    /// The `features` column: `,a,b,`, or empty for all.
    pub(crate) fn features_column(&self) -> String {
        between_commas(self.features.iter().map(String::as_str))
    }

    /// The `events` column: `,opened,resolved,`.
    pub(crate) fn events_column(&self) -> String {
        between_commas(self.events.iter().map(|when| when.as_str()))
    }

    /// The choices the two columns hold.
    pub(crate) fn from_columns(features: &str, events: &str) -> Result<Choices, String> {
        let split = |column: &str| -> Vec<String> {
            column
                .split(',')
                .filter(|part| !part.is_empty())
                .map(str::to_string)
                .collect()
        };
        Choices::new(&split(features), &split(events))
    }
}

/// `values` each followed by a comma, after a leading one; empty when none.
fn between_commas<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let joined: Vec<&str> = values.collect();
    match joined.is_empty() {
        true => String::new(),
        false => format!(",{},", joined.join(",")),
    }
}

/// A `LIKE` pattern matching a column holding `value` between commas.
pub(crate) fn like_pattern(value: &str) -> String {
    let mut pattern = String::from("%,");
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(",%");
    pattern
}

/// At most 64 characters of `text`, for an error that quotes it.
fn shorten(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn choices_are_checked_sorted_and_round_trip_through_the_columns() {
        let choices = Choices::new(
            &strings(&["leave_group", "group_message", "group_message"]),
            &strings(&["resolved", "opened"]),
        )
        .expect("valid");
        assert_eq!(choices.features_column(), ",group_message,leave_group,");
        assert_eq!(choices.events_column(), ",opened,resolved,");
        assert_eq!(
            Choices::from_columns(&choices.features_column(), &choices.events_column()),
            Ok(choices.clone())
        );
        let default = Choices::new(&[], &[]).expect("valid");
        assert_eq!(
            (
                default.features_column().as_str(),
                default.events_column().as_str()
            ),
            ("", ",resolved,")
        );
        for (features, events) in [
            (vec!["nope"], vec![]),
            (vec![], vec!["sometimes"]),
            (vec!["group_message\r\nBcc: x"], vec![]),
        ] {
            assert!(Choices::new(&strings(&features), &strings(&events)).is_err());
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("group_message"), "%,group\\_message,%");
        assert_eq!(like_pattern("opened"), "%,opened,%");
    }

    #[test]
    fn events_map_onto_the_two_choices() {
        assert_eq!(When::of_event(Event::Confirm), None);
        assert_eq!(When::of_event(Event::Statement), Some(When::Opened));
        assert_eq!(
            When::of_event(Event::IncidentResolved),
            Some(When::Resolved)
        );
    }
}
