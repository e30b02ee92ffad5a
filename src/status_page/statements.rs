//! Statements drafted from what the probes saw, in the words of the people
//! who use the chat service: which feature, where, since when, and what a
//! user will notice (from each reason's [`Reason::user_effect`], the one
//! table of those words), and when it is working again.

use std::collections::BTreeSet;

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
    use std::collections::BTreeMap;

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
