//! The colour of a probe run on the status page.

use serde::Serialize;

use crate::outcome::Failure;

/// How a probe (or the whole page) is doing, as a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No run finished yet.
    Unknown,
    /// The last run passed.
    Green,
    /// The last run failed only with degradations (late delivery).
    Amber,
    /// The last run failed with at least one other reason.
    Red,
}

impl Health {
    /// The colour of a run with these failures; those that do not fail
    /// the run (cleanup) leave it green.
    pub(crate) fn of(failures: &[Failure]) -> Health {
        let failing: Vec<&Failure> = failures.iter().filter(|f| f.fails_run()).collect();
        if failing.is_empty() {
            Health::Green
        } else if failing
            .iter()
            .all(|failure| failure.reason.is_degradation())
        {
            Health::Amber
        } else {
            Health::Red
        }
    }

    /// The worst of several colours (`Unknown` when there are none).
    pub(crate) fn worst(all: impl IntoIterator<Item = Health>) -> Health {
        all.into_iter().max().unwrap_or(Health::Unknown)
    }

    /// The value of the `data-state` attribute and of `state` in JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Green => "green",
            Health::Amber => "amber",
            Health::Red => "red",
        }
    }

    /// A word for people.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Health::Unknown => "no data",
            Health::Green => "passing",
            Health::Amber => "degraded",
            Health::Red => "failing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Operation, Reason};

    fn failure(reason: Reason) -> Failure {
        Failure {
            operation: Operation::Deliver,
            reason,
            detail: String::new(),
        }
    }

    #[test]
    fn a_run_without_failures_is_green() {
        assert_eq!(Health::of(&[]), Health::Green);
    }

    #[test]
    fn degradations_alone_are_amber() {
        assert_eq!(Health::of(&[failure(Reason::LateDelivery)]), Health::Amber);
    }

    #[test]
    fn a_loss_on_some_devices_is_red() {
        assert_eq!(Health::of(&[failure(Reason::PartialDelivery)]), Health::Red);
    }

    #[test]
    fn cleanup_failures_alone_stay_green() {
        let cleanup = Failure {
            operation: Operation::Cleanup,
            ..failure(Reason::HttpError)
        };
        assert_eq!(Health::of(std::slice::from_ref(&cleanup)), Health::Green);
        assert_eq!(
            Health::of(&[cleanup, failure(Reason::LateDelivery)]),
            Health::Amber
        );
    }

    #[test]
    fn any_other_reason_is_red_even_beside_a_degradation() {
        let failures = [failure(Reason::LateDelivery), failure(Reason::NotDelivered)];
        assert_eq!(Health::of(&failures), Health::Red);
        for reason in Reason::ALL.iter().filter(|r| !r.is_degradation()) {
            assert_eq!(Health::of(&[failure(*reason)]), Health::Red, "{reason}");
        }
    }

    #[test]
    fn the_worst_colour_wins() {
        assert_eq!(Health::worst([]), Health::Unknown);
        assert_eq!(Health::worst([Health::Green, Health::Amber]), Health::Amber);
        assert_eq!(
            Health::worst([Health::Red, Health::Green, Health::Amber]),
            Health::Red
        );
    }
}
