//! How a fault becomes a reason: for every pair of effect and fault point
//! the backend accepts ([`APPLICABILITY`]), which probe kinds report which
//! reason on which operation. Data beside the backend's table of accepted
//! pairs: the fault matrix test runs every row against a real backend, and
//! the table in `docs/mock-backend.md` is generated from it. The one module
//! of the backend that names the probes' vocabulary; no backend code reads it.

#[cfg(test)]
use super::faults::APPLICABILITY;
use super::faults::{Effect, FaultPoint};
use crate::outcome::{Operation, Reason};
use crate::probe::ProbeKind::{
    self, AddMember, DeviceSync, EditSettings, GroupMessage, LeaveGroup,
};

use Effect as E;
use FaultPoint as P;
use Operation as Op;
use Reason as R;

/// The probe kinds that report: every kind, those their definitions mark
/// (see [`ProbeKind::delivery_operation`], [`ProbeKind::fresh_group_per_run`]),
/// or the ones named.
#[derive(Debug, Clone, Copy)]
pub enum Kinds {
    /// Every kind.
    All,
    /// Kinds that send messages.
    Senders,
    /// Kinds whose run creates a fresh group, emptied by `cleanup`.
    FreshGroups,
    /// Kinds that watch for a message's delivery as `deliver`.
    Delivery,
    /// These kinds.
    Only(&'static [ProbeKind]),
}

impl Kinds {
    /// The kinds, in registry order (or as named).
    pub fn resolve(self) -> Vec<ProbeKind> {
        let marked = |mark: fn(ProbeKind) -> bool| {
            ProbeKind::ALL
                .iter()
                .copied()
                .filter(|kind| mark(*kind))
                .collect()
        };
        match self {
            Kinds::All => ProbeKind::ALL.to_vec(),
            Kinds::Senders => marked(|kind| kind.delivery_operation().is_some()),
            Kinds::FreshGroups => marked(ProbeKind::fresh_group_per_run),
            Kinds::Delivery => marked(|kind| kind.delivery_operation() == Some(Operation::Deliver)),
            Kinds::Only(kinds) => kinds.to_vec(),
        }
    }
}

/// What probes report for one fault: kinds, the operation, the reason.
pub type Report = (Kinds, Operation, Reason);

/// One row of the table: a fault of `effect` on `point`, and what it causes.
pub struct Verdict {
    /// The fault's effect.
    pub effect: Effect,
    /// Where it hits.
    pub point: FaultPoint,
    /// What the probes report when it hits every operation at `point`.
    pub reports: &'static [Report],
    /// What it may cause besides when it hits only some operations (it
    /// began mid-stream, or fires by chance).
    pub partly: &'static [Report],
    /// True when it may also fire where no probe looks, by design: at the
    /// leaves of a run's cleanup (a dropped, stale or undone cleanup leave
    /// is left to a later run, unreported), or on the push connection of a
    /// device no probe of the run waits on (a sender's own, or one the next
    /// run retires before the loss of its connection has reached it: a
    /// `disconnect` at a run's closing sync), or on a run's last delivery
    /// to a device (a `reorder` there has nothing to swap it with).
    pub fires_unseen: bool,
}

const fn v(effect: Effect, point: FaultPoint, reports: &'static [Report]) -> Verdict {
    Verdict {
        effect,
        point,
        reports,
        partly: &[],
        fires_unseen: false,
    }
}

impl Verdict {
    const fn partly(self, partly: &'static [Report]) -> Verdict {
        Verdict { partly, ..self }
    }

    const fn fires_unseen(self) -> Verdict {
        Verdict {
            fires_unseen: true,
            ..self
        }
    }
}

/// How a fault becomes a reason: for every accepted pair, in the order of
/// [`APPLICABILITY`], the failures each kind reports. `delay` is longer than
/// the step timeout (on `deliver`: between the latency objective and the
/// deadline); `reorder` on `deliver` holds a delivery up to 1 s, so that
/// the next one overtakes it even when sends are slow; `resurrect` re-adds
/// after 1 s.
pub const VERDICTS: &[Verdict] = &[
    v(E::Error, P::Login, &[(Kinds::All, Op::Login, R::HttpError)]),
    v(
        E::Error,
        P::Connect,
        &[(Kinds::All, Op::Connect, R::HttpError)],
    ),
    v(
        E::Error,
        P::Send,
        &[(Kinds::Senders, Op::Send, R::HttpError)],
    ),
    v(
        E::Error,
        P::Deliver,
        &[(Kinds::All, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Error,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::HttpError)],
    ),
    v(
        E::Error,
        P::Leave,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveRejected),
            (Kinds::FreshGroups, Op::Cleanup, R::HttpError),
        ],
    ),
    v(
        E::Error,
        P::ListGroups,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::HttpError),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::HttpError),
        ],
    ),
    v(
        E::Error,
        P::EditSettings,
        &[(
            Kinds::Only(&[EditSettings]),
            Op::EditSettings,
            R::SettingsRejected,
        )],
    ),
    v(
        E::Error,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::HttpError),
            (Kinds::Only(&[EditSettings]), Op::EditSettings, R::HttpError),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::HttpError),
        ],
    ),
    v(
        E::Error,
        P::AddMember,
        &[(Kinds::Only(&[AddMember]), Op::AddMember, R::HttpError)],
    ),
    v(E::Delay, P::Login, &[(Kinds::All, Op::Login, R::Timeout)]),
    v(
        E::Delay,
        P::Connect,
        &[(Kinds::All, Op::Connect, R::Timeout)],
    ),
    v(E::Delay, P::Send, &[(Kinds::Senders, Op::Send, R::Timeout)]),
    // Some deliveries delayed, others not: they overtake each other.
    v(
        E::Delay,
        P::Deliver,
        &[(Kinds::Senders, Op::Deliver, R::LateDelivery)],
    )
    .partly(&[(Kinds::Only(&[GroupMessage]), Op::Deliver, R::OutOfOrder)]),
    v(
        E::Delay,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::Timeout)],
    ),
    v(
        E::Delay,
        P::Leave,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::FreshGroups, Op::Cleanup, R::Timeout),
        ],
    ),
    v(
        E::Delay,
        P::ListGroups,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout),
        ],
    ),
    v(
        E::Delay,
        P::EditSettings,
        &[(Kinds::Only(&[EditSettings]), Op::EditSettings, R::Timeout)],
    ),
    v(
        E::Delay,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::Only(&[EditSettings]), Op::EditSettings, R::Timeout),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout),
        ],
    ),
    v(
        E::Delay,
        P::AddMember,
        &[(Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout)],
    ),
    v(E::Timeout, P::Login, &[(Kinds::All, Op::Login, R::Timeout)]),
    v(
        E::Timeout,
        P::Connect,
        &[(Kinds::All, Op::Connect, R::Timeout)],
    ),
    v(
        E::Timeout,
        P::Send,
        &[(Kinds::Senders, Op::Send, R::Timeout)],
    ),
    v(
        E::Timeout,
        P::Deliver,
        &[
            (Kinds::Delivery, Op::Deliver, R::NotDelivered),
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied),
            (
                Kinds::Only(&[EditSettings]),
                Op::EditSettings,
                R::SettingsNotPropagated,
            ),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    ),
    v(
        E::Timeout,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::Timeout)],
    ),
    v(
        E::Timeout,
        P::Leave,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::FreshGroups, Op::Cleanup, R::Timeout),
        ],
    ),
    v(
        E::Timeout,
        P::ListGroups,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout),
        ],
    ),
    v(
        E::Timeout,
        P::EditSettings,
        &[(Kinds::Only(&[EditSettings]), Op::EditSettings, R::Timeout)],
    ),
    v(
        E::Timeout,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Timeout),
            (Kinds::Only(&[EditSettings]), Op::EditSettings, R::Timeout),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout),
        ],
    ),
    v(
        E::Timeout,
        P::AddMember,
        &[(Kinds::Only(&[AddMember]), Op::AddMember, R::Timeout)],
    ),
    v(
        E::Drop,
        P::Login,
        &[(Kinds::All, Op::Connect, R::AuthError)],
    ),
    v(
        E::Drop,
        P::Connect,
        &[
            (Kinds::Delivery, Op::Deliver, R::NotDelivered),
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied),
            (
                Kinds::Only(&[EditSettings]),
                Op::EditSettings,
                R::SettingsNotPropagated,
            ),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    )
    .fires_unseen(),
    v(
        E::Drop,
        P::Send,
        &[
            (Kinds::Delivery, Op::Deliver, R::NotDelivered),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    ),
    v(
        E::Drop,
        P::Deliver,
        &[
            (Kinds::Delivery, Op::Deliver, R::NotDelivered),
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied),
            (
                Kinds::Only(&[EditSettings]),
                Op::EditSettings,
                R::SettingsNotPropagated,
            ),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    ),
    v(
        E::Drop,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::DeviceDesync)],
    ),
    v(
        E::Drop,
        P::Leave,
        &[(Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied)],
    )
    .fires_unseen(),
    v(
        E::Drop,
        P::ListGroups,
        &[(Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed)],
    ),
    v(
        E::Drop,
        P::EditSettings,
        &[(
            Kinds::Only(&[EditSettings]),
            Op::EditSettings,
            R::SettingsNotPropagated,
        )],
    ),
    v(
        E::Drop,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::HttpError),
            (Kinds::Only(&[EditSettings]), Op::EditSettings, R::HttpError),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::HttpError),
        ],
    ),
    v(
        E::Duplicate,
        P::Connect,
        &[(Kinds::Senders, Op::Deliver, R::Duplicate)],
    )
    .fires_unseen(),
    v(
        E::Duplicate,
        P::Send,
        &[(Kinds::Senders, Op::Deliver, R::Duplicate)],
    ),
    v(
        E::Duplicate,
        P::Deliver,
        &[(Kinds::Senders, Op::Deliver, R::Duplicate)],
    ),
    v(
        E::Duplicate,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::Duplicate)],
    ),
    v(
        E::Reorder,
        P::Deliver,
        &[(Kinds::Only(&[GroupMessage]), Op::Deliver, R::OutOfOrder)],
    )
    .fires_unseen(),
    v(
        E::Reorder,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::OutOfOrder)],
    ),
    v(
        E::Corrupt,
        P::Send,
        &[(Kinds::Senders, Op::Deliver, R::Corrupted)],
    ),
    v(
        E::Corrupt,
        P::Deliver,
        &[
            (Kinds::Senders, Op::Deliver, R::Corrupted),
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::Corrupted),
            (Kinds::Only(&[EditSettings]), Op::EditSettings, R::Corrupted),
        ],
    ),
    v(
        E::Corrupt,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::Corrupted)],
    ),
    v(
        E::Corrupt,
        P::EditSettings,
        &[(
            Kinds::Only(&[EditSettings]),
            Op::EditSettings,
            R::SettingsNotApplied,
        )],
    ),
    v(
        E::Corrupt,
        P::ReadGroup,
        &[(
            Kinds::Only(&[EditSettings]),
            Op::EditSettings,
            R::SettingsNotApplied,
        )],
    ),
    v(
        E::Stale,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::DeviceSync, R::DeviceDesync)],
    ),
    // A leave not applied, then applied by a retry: the group reads back.
    v(
        E::Stale,
        P::Leave,
        &[(Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied)],
    )
    .partly(&[(
        Kinds::Only(&[LeaveGroup]),
        Op::Leave,
        R::MembershipResurrected,
    )])
    .fires_unseen(),
    // A group left in an earlier run, listed again.
    v(
        E::Stale,
        P::ListGroups,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    )
    .partly(&[(
        Kinds::Only(&[LeaveGroup]),
        Op::Leave,
        R::MembershipResurrected,
    )]),
    v(
        E::Stale,
        P::EditSettings,
        &[(
            Kinds::Only(&[EditSettings]),
            Op::EditSettings,
            R::SettingsNotApplied,
        )],
    ),
    // A fresh read, then a stale one that shows the leaver again.
    v(
        E::Stale,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Leave, R::LeaveNotApplied),
            (
                Kinds::Only(&[EditSettings]),
                Op::EditSettings,
                R::SettingsNotApplied,
            ),
            (Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed),
        ],
    )
    .partly(&[(
        Kinds::Only(&[LeaveGroup]),
        Op::Leave,
        R::MembershipResurrected,
    )]),
    v(
        E::Stale,
        P::AddMember,
        &[(Kinds::Only(&[AddMember]), Op::AddMember, R::MemberAddFailed)],
    ),
    v(
        E::Resurrect,
        P::Leave,
        &[(
            Kinds::Only(&[LeaveGroup]),
            Op::Leave,
            R::MembershipResurrected,
        )],
    )
    .fires_unseen(),
    v(
        E::Disconnect,
        P::Login,
        &[(Kinds::All, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::Connect,
        &[(Kinds::All, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::Send,
        &[(Kinds::Senders, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::Deliver,
        &[(Kinds::All, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::Sync,
        &[(Kinds::Only(&[DeviceSync]), Op::Connect, R::ConnectError)],
    )
    .fires_unseen(),
    v(
        E::Disconnect,
        P::Leave,
        &[(Kinds::FreshGroups, Op::Connect, R::ConnectError)],
    ),
    // Every kind lists its accounts' groups at its first run (to reconcile
    // what earlier runs or a killed agent left); later runs only where the
    // kind itself lists.
    v(
        E::Disconnect,
        P::ListGroups,
        &[(Kinds::All, Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::EditSettings,
        &[(Kinds::Only(&[EditSettings]), Op::Connect, R::ConnectError)],
    ),
    v(
        E::Disconnect,
        P::ReadGroup,
        &[
            (Kinds::Only(&[LeaveGroup]), Op::Connect, R::ConnectError),
            (Kinds::Only(&[EditSettings]), Op::Connect, R::ConnectError),
            (Kinds::Only(&[AddMember]), Op::Connect, R::ConnectError),
        ],
    ),
    v(
        E::Disconnect,
        P::AddMember,
        &[(Kinds::Only(&[AddMember]), Op::Connect, R::ConnectError)],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_accepted_pair_once_in_table_order() {
        let accepted: Vec<(Effect, FaultPoint)> = APPLICABILITY
            .iter()
            .flat_map(|(effect, points)| points.iter().map(move |point| (*effect, *point)))
            .collect();
        let table: Vec<(Effect, FaultPoint)> = VERDICTS
            .iter()
            .map(|verdict| (verdict.effect, verdict.point))
            .collect();
        assert_eq!(table, accepted);
        assert!(VERDICTS.iter().all(|verdict| !verdict.reports.is_empty()));
    }

    /// Every (operation, reason) the table expects is one the agent exports at 0
    /// from a probe's start ([`Reason::operations`]), so `increase()` sees it.
    #[test]
    fn every_reported_pair_is_exported_from_the_start() {
        for verdict in VERDICTS {
            for (_, operation, reason) in verdict.reports.iter().chain(verdict.partly) {
                assert!(
                    reason.operations().contains(operation),
                    "`{reason}` on `{operation}` ({:?} on {:?}) is missing from Reason::operations",
                    verdict.effect,
                    verdict.point
                );
            }
        }
    }
}
