//! What one probe run found: the contract vocabulary of operations and failure
//! reasons, and the record a run hands to metrics and the status page.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Declares a closed set of contract labels: an enum, its `ALL` list and its label text.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value used in metrics, logs and JSON (**contract**).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// One step of a probe run (the `operation` label).
    Operation {
        /// Log a device in.
        Login => "login",
        /// Open a device's push connection.
        Connect => "connect",
        /// Send a message (or create the run's group).
        Send => "send",
        /// Wait for messages to reach every recipient device.
        Deliver => "deliver",
        /// Check that two devices of one account agree.
        DeviceSync => "device_sync",
        /// Leave a group and check that it stays left.
        Leave => "leave",
        /// Change a group's name and notice.
        EditSettings => "edit_settings",
        /// Add a member to a group.
        AddMember => "add_member",
        /// Remove what the run created.
        Cleanup => "cleanup",
    }
}

label_enum! {
    /// Why a step failed (the `reason` label, a closed set).
    Reason {
        /// Answered an error status or a malformed body.
        HttpError => "http_error",
        /// Did not answer within the step's timeout.
        Timeout => "timeout",
        /// Refused or dropped the connection.
        ConnectError => "connect_error",
        /// Rejected credentials.
        AuthError => "auth_error",
        /// Acknowledged a send, but no recipient got it.
        NotDelivered => "not_delivered",
        /// Some recipient devices got it, others never did.
        PartialDelivery => "partial_delivery",
        /// Delivered, but after the latency objective.
        LateDelivery => "late_delivery",
        /// Delivered the same message more than once to one device.
        Duplicate => "duplicate",
        /// Delivered a group's messages out of send order.
        OutOfOrder => "out_of_order",
        /// Delivered content that differs from what was sent.
        Corrupted => "corrupted",
        /// One device of an account saw what another device of it did not.
        DeviceDesync => "device_desync",
        /// Refused a leave.
        LeaveRejected => "leave_rejected",
        /// Accepted a leave, yet the user is still listed as a member.
        LeaveNotApplied => "leave_not_applied",
        /// A group the user left appeared again later.
        MembershipResurrected => "membership_resurrected",
        /// Refused a settings change.
        SettingsRejected => "settings_rejected",
        /// Accepted a settings change that does not read back.
        SettingsNotApplied => "settings_not_applied",
        /// Other members never saw the settings change.
        SettingsNotPropagated => "settings_not_propagated",
        /// A newly added member cannot see the group or its new messages.
        MemberAddFailed => "member_add_failed",
    }
}

impl Reason {
    /// True for failures where the service worked, only worse than promised
    /// (shown amber rather than red on the status page).
    pub fn is_degradation(self) -> bool {
        matches!(self, Reason::LateDelivery | Reason::PartialDelivery)
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

/// Timing of one step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    /// The step.
    pub operation: Operation,
    /// How long it took.
    pub duration: Duration,
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
    /// Every failure found; empty means the run passed.
    pub failures: Vec<Failure>,
    /// Message deliveries waited for (one per recipient device).
    pub messages_expected: u64,
    /// Of those, the ones that arrived intact within the deadline.
    pub messages_delivered: u64,
}

impl ProbeOutcome {
    /// True when the run found no failure.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}
