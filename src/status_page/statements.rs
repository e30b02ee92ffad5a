//! Statements drafted from what the probes saw, in the words of the people
//! who use the chat service: which feature, where, since when, and what a
//! user will notice (from each reason's [`Reason::user_effect`], the one
//! table of those words), and when it is working again.
//!
//! With `notify.publish: auto`, [`publish`] follows the incidents the page
//! reads and records each statement through the outbox (so subscribers and
//! webhooks hear of it): the drafted one once an incident has been open for
//! `hold`, a newer one when its words change (regions or effects join),
//! none while an operator's statement is the newest, and the resolved one
//! when it ends. What was said is read back from the store, so a restart
//! says nothing twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::refresher::{Shown, unix_now};
use crate::config::status_page::PublicWording;
use crate::metrics::Event;
use crate::notify::Notify;
use crate::notify::outbox::{self, IncidentRef, Kind, NewStatement, Recorded, Statement};
use crate::store::StoreError;

use super::feed::duration_words;
use super::incidents::Incident;
use crate::outcome::{Operation, Reason};
use crate::status::Timestamp;

/// The statement for `incident` of `feature` (its public name) in
/// `regions` (their display names): what is wrong while it is ongoing,
/// that it works again once it has ended.
pub(crate) fn drafted(incident: &Incident, feature: &str, regions: &[String]) -> String {
    let regions = regions.join(", ");
    match incident.ended_at {
        None => format!(
            "{feature} is not working as it should in {regions} since {} UTC: {}. Our checks found this on their own; this page follows it as it changes.",
            minutes(incident.started_at),
            effects(incident).join("; ")
        ),
        Some(end) => format!(
            "{feature} is working again in {regions} since {} UTC, after {}.",
            minutes(end),
            duration_words(incident.duration_seconds)
        ),
    }
}

/// How long after its end an incident may still get its resolved statement
/// (older ones, read at start, are history: nothing is said of them).
const RESOLVED_WITHIN_SECONDS: u64 = 3600;

/// A statement an incident is due and not yet given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    /// The event it is.
    pub(crate) event: Event,
    /// Drafted, or resolved.
    pub(crate) kind: Kind,
    /// Its words.
    pub(crate) text: String,
}

/// The incidents of `incidents` that may still get a statement at `now`:
/// ongoing, or ended within [`RESOLVED_WITHIN_SECONDS`].
pub(crate) fn open_to_statements(
    incidents: &[Incident],
    now: u64,
) -> impl Iterator<Item = &Incident> {
    incidents.iter().filter(move |incident| {
        incident
            .ended_at
            .is_none_or(|end| end.unix_seconds() + RESOLVED_WITHIN_SECONDS >= now)
    })
}

/// Each incident's statements, as the pages show them.
#[derive(Debug, Default)]
pub(crate) struct Timelines {
    /// Whether this page publishes statements (`notify` is configured): the
    /// public page then shows an incident once something was published of it.
    pub(crate) published: bool,
    /// Each incident's statements, oldest first, by [`key_of`].
    pub(crate) said: BTreeMap<String, Vec<Statement>>,
    /// With `publish: manual`: the statement each incident is due, waiting
    /// for an operator to publish it, by [`key_of`].
    pub(crate) drafts: BTreeMap<String, Draft>,
}

impl Timelines {
    /// What was said of `incident`, oldest first.
    pub(crate) fn said_of(&self, incident: &Incident) -> &[Statement] {
        self.said.get(&key_of(incident)).map_or(&[], Vec::as_slice)
    }

    /// The draft of `incident` waiting for an operator, if any.
    pub(crate) fn draft_of(&self, incident: &Incident) -> Option<&Draft> {
        self.drafts.get(&key_of(incident))
    }
}

/// Records the statements of the incidents `shown` publishes, until it closes.
pub(crate) async fn publish(
    mut shown: watch::Receiver<Arc<Shown>>,
    notify: Arc<Notify>,
    wording: PublicWording,
    hold: Duration,
) {
    while shown.changed().await.is_ok() {
        let reading = Arc::clone(&shown.borrow_and_update());
        if reading.error.is_some() {
            continue;
        }
        let now = unix_now();
        let incidents: Vec<&Incident> = open_to_statements(&reading.view.incidents, now).collect();
        if let Err(error) = publish_due(&notify, &wording, &incidents, hold, now).await {
            tracing::warn!("cannot record the incidents' statements: {error}");
        }
    }
}

/// Records the statement each of `incidents` is due, if any.
async fn publish_due(
    notify: &Notify,
    wording: &PublicWording,
    incidents: &[&Incident],
    hold: Duration,
    now: u64,
) -> Result<(), StoreError> {
    let keys: Vec<String> = incidents.iter().map(|incident| key_of(incident)).collect();
    let mut said = outbox::timelines(&notify.store, &keys).await?;
    for (incident, key) in incidents.iter().zip(keys) {
        let said = said.remove(&key).unwrap_or_default();
        if let Some(draft) = pending(incident, &said, wording, hold, now) {
            record(notify, incident, &draft, now).await?;
        }
    }
    Ok(())
}

/// The store's key of `incident`.
pub(crate) fn key_of(incident: &Incident) -> String {
    IncidentRef::key_of(&incident.probe, incident.started_at)
}

/// The statement `incident` is due at `now`, given what was `said` of it,
/// in `wording`'s names; none before `hold` has passed.
pub(crate) fn pending(
    incident: &Incident,
    said: &[Statement],
    wording: &PublicWording,
    hold: Duration,
    now: u64,
) -> Option<Draft> {
    let regions: Vec<String> = incident
        .regions
        .iter()
        .map(|region| wording.region_name(region).to_owned())
        .collect();
    let text = drafted(incident, wording.feature_name(&incident.probe), &regions);
    due(incident, said, &text, hold, now).map(|(event, kind)| Draft { event, kind, text })
}

/// Records `draft`, the statement of `incident`, at `now`, with its notifications.
pub(crate) async fn record(
    notify: &Notify,
    incident: &Incident,
    draft: &Draft,
    now: u64,
) -> Result<Recorded, StoreError> {
    let reference = IncidentRef {
        key: key_of(incident),
        probe: incident.probe.clone(),
        started_at: incident.started_at,
        ended_at: incident.ended_at,
        regions: incident.regions.iter().cloned().collect(),
    };
    let statement = NewStatement {
        incident: &reference,
        event: draft.event,
        kind: draft.kind,
        text: &draft.text,
        at: i64::try_from(now).unwrap_or(i64::MAX),
    };
    notify.record_statement(&statement).await
}

/// The statement `incident` is due, given what was `said` of it and what
/// would be said now (`text`): none, its first, a newer one, or its end.
fn due(
    incident: &Incident,
    said: &[Statement],
    text: &str,
    hold: Duration,
    now: u64,
) -> Option<(Event, Kind)> {
    if said
        .iter()
        .any(|statement| statement.event == Event::IncidentResolved)
    {
        return None;
    }
    if incident.ended_at.is_some() {
        return (!said.is_empty()).then_some((Event::IncidentResolved, Kind::Resolved));
    }
    if now < incident.started_at.unix_seconds() + hold.as_secs() {
        return None;
    }
    match said.last() {
        None => Some((Event::IncidentOpened, Kind::Drafted)),
        Some(newest) if newest.kind == Kind::Operator => None,
        Some(_) => {
            let last_drafted = said
                .iter()
                .rev()
                .find(|statement| statement.kind == Kind::Drafted);
            last_drafted
                .is_none_or(|drafted| drafted.text != text)
                .then_some((Event::Statement, Kind::Drafted))
        }
    }
}

/// What users notice, each effect once, in the order of the reasons.
fn effects(incident: &Incident) -> Vec<&'static str> {
    let mut seen = BTreeSet::new();
    incident
        .reasons
        .iter()
        .flat_map(|(&reason, operations)| {
            operations
                .iter()
                .filter(|&&operation| operation != Operation::Cleanup)
                .map(move |&operation| Reason::user_effect(reason, operation))
        })
        .filter(|effect| seen.insert(*effect))
        .collect()
}

/// `16:25`.
fn minutes(at: Timestamp) -> String {
    let clock = at.clock();
    clock.get(..5).unwrap_or(&clock).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(reasons: &[(Reason, Operation)], ended: Option<u64>) -> Incident {
        let mut by_reason: BTreeMap<Reason, BTreeSet<Operation>> = BTreeMap::new();
        for &(reason, operation) in reasons {
            by_reason.entry(reason).or_default().insert(operation);
        }
        Incident {
            probe: "group_message".into(),
            regions: BTreeSet::from(["ap-south".to_owned()]),
            targets: BTreeSet::from(["shard-1".to_owned()]),
            reasons: by_reason,
            started_at: Timestamp::from_unix_seconds(1_795_451_100),
            ended_at: ended.map(Timestamp::from_unix_seconds),
            duration_seconds: 960,
        }
    }

    #[test]
    fn an_ongoing_incident_says_what_users_notice_from_its_reasons() {
        let lost = incident(
            &[
                (Reason::NotDelivered, Operation::Deliver),
                (Reason::Timeout, Operation::Send),
                (Reason::HttpError, Operation::Send),
                (Reason::LeaveRejected, Operation::Cleanup),
            ],
            None,
        );
        assert_eq!(
            drafted(
                &lost,
                "Sending and receiving group messages",
                &["Asia South".to_owned()]
            ),
            "Sending and receiving group messages is not working as it should in Asia South since 16:25 UTC: sending messages fails; messages show as sent but do not reach others. Our checks found this on their own; this page follows it as it changes."
        );
    }

    #[test]
    fn an_ended_incident_says_since_when_it_works_again() {
        let ended = incident(
            &[(Reason::DeviceDesync, Operation::DeviceSync)],
            Some(1_795_452_060),
        );
        assert_eq!(
            drafted(
                &ended,
                "Your devices staying in sync",
                &["ap-south".to_owned(), "eu-west".to_owned()]
            ),
            "Your devices staying in sync is working again in ap-south, eu-west since 16:41 UTC, after 16 min."
        );
    }

    fn said(kind: Kind, event: Event, text: &str) -> Statement {
        Statement {
            id: 1,
            incident: "group_message@1795451100".into(),
            probe: "group_message".into(),
            at: 1_795_451_100,
            kind,
            event,
            text: text.into(),
            incident_json: String::new(),
        }
    }

    #[test]
    fn a_statement_is_due_after_the_hold_when_words_change_and_at_the_end() {
        let open = incident(&[(Reason::HttpError, Operation::Send)], None);
        let start = open.started_at.unix_seconds();
        let hold = Duration::from_secs(60);
        assert_eq!(due(&open, &[], "a", hold, start + 30), None, "held");
        assert_eq!(
            due(&open, &[], "a", hold, start + 60),
            Some((Event::IncidentOpened, Kind::Drafted))
        );
        let first = [said(Kind::Drafted, Event::IncidentOpened, "a")];
        assert_eq!(
            due(&open, &first, "a", hold, start + 90),
            None,
            "said already"
        );
        assert_eq!(
            due(&open, &first, "b", hold, start + 90),
            Some((Event::Statement, Kind::Drafted)),
            "a region joined"
        );
        let operator = [
            first[0].clone(),
            said(Kind::Operator, Event::Statement, "we know"),
        ];
        assert_eq!(
            due(&open, &operator, "b", hold, start + 90),
            None,
            "the operator speaks"
        );
        let ended = incident(&[(Reason::HttpError, Operation::Send)], Some(start + 600));
        assert_eq!(
            due(&ended, &operator, "c", hold, start + 700),
            Some((Event::IncidentResolved, Kind::Resolved))
        );
        assert_eq!(
            due(&ended, &[], "c", hold, start + 700),
            None,
            "a flap nobody heard of"
        );
        let closed = [said(Kind::Resolved, Event::IncidentResolved, "c")];
        assert_eq!(due(&ended, &closed, "c", hold, start + 800), None);
    }

    #[test]
    fn every_reason_has_an_effect_on_each_of_its_operations() {
        for &reason in Reason::ALL {
            for &operation in reason.operations() {
                let effect = reason.user_effect(operation);
                assert!(
                    !effect.is_empty() && !effect.contains('_'),
                    "{reason} on {operation}: {effect}"
                );
            }
        }
    }
}
