//! What one probe run found: the contract vocabulary of operations and failure
//! reasons, and the record a run hands to metrics and the status page.

use std::time::{Duration, SystemTime};

use serde::Serialize;

label_enum! {
    /// One step of a probe run (the `operation` label).
    Operation {
        Login => "login", "log a device in";
        Connect => "connect", "open a device's push connection";
        Send => "send", "send a message (or create the run's group)";
        Deliver => "deliver", "wait for messages to reach every recipient device";
        DeviceSync => "device_sync", "check that two devices of one account agree";
        Leave => "leave", "leave a group and check that it stays left";
        EditSettings => "edit_settings", "change a group's name and notice";
        AddMember => "add_member", "add a member to a group";
        Cleanup => "cleanup", "remove what the run created";
    }
}

label_enum! {
    /// Why a step failed (the `reason` label, a closed set): what the service did.
    Reason {
        HttpError => "http_error", "answered an error status or a malformed body";
        Timeout => "timeout", "did not answer within the step's timeout (or the whole run hit `run_timeout`)";
        ConnectError => "connect_error", "refused or dropped the connection";
        AuthError => "auth_error", "rejected credentials";
        NotDelivered => "not_delivered", "acknowledged a send, but no recipient got it (\"sent\" yet invisible)";
        PartialDelivery => "partial_delivery", "some recipient devices got it, others never did";
        LateDelivery => "late_delivery", "delivered, but after the probe's latency objective";
        Duplicate => "duplicate", "delivered the same message more than once to one device";
        OutOfOrder => "out_of_order", "delivered a group's messages out of send order";
        Corrupted => "corrupted", "delivered content that differs from what was sent";
        DeviceDesync => "device_desync", "one device of an account saw what another device of it did not";
        LeaveRejected => "leave_rejected", "refused a leave";
        LeaveNotApplied => "leave_not_applied", "accepted a leave, yet the user is still listed as a member";
        MembershipResurrected => "membership_resurrected", "a group the user left appeared again later";
        SettingsRejected => "settings_rejected", "refused a settings change";
        SettingsNotApplied => "settings_not_applied", "accepted a settings change that does not read back";
        SettingsNotPropagated => "settings_not_propagated", "other members never saw the settings change";
        MemberAddFailed => "member_add_failed", "a newly added member cannot see the group or its new messages";
    }
}

impl Reason {
    /// True for failures where the service worked, only worse than promised
    /// (shown amber rather than red on the status page): a late delivery.
    /// A message lost on some devices (`partial_delivery`) is a loss, red.
    pub(crate) fn is_degradation(self) -> bool {
        matches!(self, Reason::LateDelivery)
    }

    /// The operations a probe can report this reason on: a request's four
    /// errors on any, every other reason on the operations whose promise it
    /// names (`tests/fault_matrix.rs` checks its table against this).
    pub fn operations(self) -> &'static [Operation] {
        use Operation as Op;
        match self {
            Reason::HttpError | Reason::Timeout | Reason::ConnectError | Reason::AuthError => {
                Operation::ALL
            }
            Reason::NotDelivered | Reason::PartialDelivery | Reason::LateDelivery => &[Op::Deliver],
            Reason::Duplicate | Reason::OutOfOrder => &[Op::Deliver, Op::DeviceSync],
            Reason::Corrupted => &[Op::Deliver, Op::DeviceSync, Op::Leave, Op::EditSettings],
            Reason::DeviceDesync => &[Op::DeviceSync],
            Reason::LeaveRejected => &[Op::Leave, Op::Cleanup],
            Reason::LeaveNotApplied | Reason::MembershipResurrected => &[Op::Leave],
            Reason::SettingsRejected
            | Reason::SettingsNotApplied
            | Reason::SettingsNotPropagated => &[Op::EditSettings],
            Reason::MemberAddFailed => &[Op::AddMember],
        }
    }

    /// What the service did, in the words of someone watching it (the status
    /// page's wording; shorter than [`Reason::meaning`]).
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Reason::HttpError => "answered with an error",
            Reason::Timeout => "did not answer in time",
            Reason::ConnectError => "refused or dropped the connection",
            Reason::AuthError => "rejected the login",
            Reason::NotDelivered => "sent but never delivered",
            Reason::PartialDelivery => "reached only some devices",
            Reason::LateDelivery => "delivered late",
            Reason::Duplicate => "delivered more than once",
            Reason::OutOfOrder => "delivered out of order",
            Reason::Corrupted => "delivered altered content",
            Reason::DeviceDesync => "devices of one account disagree",
            Reason::LeaveRejected => "refused to let a member leave",
            Reason::LeaveNotApplied => "accepted a leave but kept the member",
            Reason::MembershipResurrected => "a left group came back",
            Reason::SettingsRejected => "refused a settings change",
            Reason::SettingsNotApplied => "accepted a settings change that did not stick",
            Reason::SettingsNotPropagated => "other members never saw a settings change",
            Reason::MemberAddFailed => "an added member cannot see the group",
        }
    }

    /// What a user of the chat service notices when a step fails with this
    /// reason on `operation`, in the public page's and the drafted
    /// statements' words (lower case, no full stop): the effect, not the cause.
    pub(crate) fn user_effect(self, operation: Operation) -> &'static str {
        match self {
            Reason::HttpError | Reason::Timeout | Reason::ConnectError | Reason::AuthError => {
                operation.user_effect_when_failing()
            }
            Reason::NotDelivered => "messages show as sent but do not reach others",
            Reason::PartialDelivery => "messages reach only some people or devices in a group",
            Reason::LateDelivery => "messages arrive late",
            Reason::Duplicate => "messages may show up more than once",
            Reason::OutOfOrder => "messages may show up in the wrong order",
            Reason::Corrupted => "messages or groups may show altered content",
            Reason::DeviceDesync => "your phone and computer may show different messages",
            Reason::LeaveRejected => "leaving a group fails",
            Reason::LeaveNotApplied => "leaving a group may not take effect",
            Reason::MembershipResurrected => "groups you left may come back",
            Reason::SettingsRejected => "changes to group settings fail",
            Reason::SettingsNotApplied => "changes to group settings may not apply",
            Reason::SettingsNotPropagated => {
                "others in a group may not see changes to its settings"
            }
            Reason::MemberAddFailed => "people added to a group may not see it",
        }
    }
}

impl Operation {
    /// What a user notices when this step fails outright (an error, no
    /// answer, a refused connection or login).
    fn user_effect_when_failing(self) -> &'static str {
        match self {
            Operation::Login => "logging in fails",
            Operation::Connect => "new messages may not show up until you reopen the app",
            Operation::Send => "sending messages fails",
            Operation::Deliver => "messages may not arrive",
            Operation::DeviceSync => "your devices may not stay in sync",
            Operation::Leave => "leaving a group fails",
            Operation::EditSettings => "changing group settings fails",
            Operation::AddMember => "adding people to a group fails",
            Operation::Cleanup => "nothing you would notice",
        }
    }
}

/// Which probe a run belongs to: the `region`, `target` and `probe` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProbeKey {
    /// The agent's region.
    pub region: String,
    /// The probed service's name in config.
    pub target: String,
    /// The probe's name.
    pub probe: String,
}

/// Longest [`Failure::detail`], in characters: whatever a server answers
/// (error text, bodies quoted in a finding) enters a detail through
/// [`shorten`] to this.
pub(crate) const DETAIL_MAX: usize = 500;

/// `text` cut to `max_chars` characters, with `…` appended when cut.
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// One failed step: which operation, the contract reason, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The step that failed.
    pub operation: Operation,
    /// Why, from the closed set.
    pub reason: Reason,
    /// What was observed, for people (never contains secrets).
    pub detail: String,
}

impl Failure {
    /// True when the failure fails its run: every failure but one of
    /// `cleanup`, which stays visible (metrics, logs, status page) without
    /// failing the run, turning the status red or firing alerts by itself.
    pub(crate) fn fails_run(&self) -> bool {
        self.operation != Operation::Cleanup
    }
}

/// Timing of one step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    /// The step.
    pub(crate) operation: Operation,
    /// How long it took.
    pub(crate) duration: Duration,
}

/// Everything one probe run found; handed to metrics, logs and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    /// Wall-clock time the run started.
    pub started_at: SystemTime,
    /// Duration of the whole run.
    pub duration: Duration,
    /// Every timed step, in order.
    pub steps: Vec<StepTiming>,
    /// Every failure found; the run passed when none of them fails it.
    pub failures: Vec<Failure>,
    /// Message deliveries waited for (one per recipient device).
    pub messages_expected: u64,
    /// Of those, the ones that arrived intact within the deadline.
    pub messages_delivered: u64,
}

impl ProbeOutcome {
    /// True when the run found no failure that fails it (cleanup failures
    /// alone do not, see [`Failure::fails_run`]).
    pub fn passed(&self) -> bool {
        !self.failures.iter().any(Failure::fails_run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_phrase_and_meaning() {
        for words in [Reason::phrase, Reason::meaning] {
            let mut all: Vec<_> = Reason::ALL.iter().map(|r| words(*r)).collect();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), Reason::ALL.len());
        }
        assert_eq!(Reason::NotDelivered.phrase(), "sent but never delivered");
    }
}
