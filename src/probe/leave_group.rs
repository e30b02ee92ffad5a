//! `leave_group`: a member leaves the run's group. The leave must be
//! accepted (else `leave_rejected`); afterwards the group must be gone from
//! the list of every device of the leaver, the leaver gone from the members
//! others read, and every other device must see the member leave by push
//! (else `leave_not_applied`; a push of the leave naming someone else is
//! `corrupted`); a later look must not find the group back on the leaver
//! (else `membership_resurrected`): in this run, and in later runs. Other
//! members still listing it in later runs leave it again, unreported: they
//! left it in the run's cleanup, which may fail without the leave having
//! come undone, so their lists prove nothing about it.

use std::collections::VecDeque;
use std::time::Instant;

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::watch;
use super::devices::DeviceRef;
use super::kind::{self, KindDef, PublicWords};
use super::run::{Recorded, StepResult};
use crate::client::Event;
use crate::outcome::{Operation, Reason};

/// Most groups left in earlier runs that are checked again.
const REMEMBERED: usize = 8;

/// The `leave_group` kind in the registry.
pub(super) const KIND: KindDef = KindDef {
    name: "leave_group",
    main_operation: Operation::Leave,
    shipped: include_str!("../../probes/leave_group.yaml"),
    validate: kind::no_rules,
    accounts_needed: kind::one_per_member,
    messages_expected: kind::no_messages,
    delivery_operation: None,
    fresh_group_per_run: true,
    steps: || Box::new(LeaveGroup::default()),
    public: PublicWords {
        name: "Leaving groups",
        description: "When you leave a group you are out of it on every device, and it does not come back.",
    },
};

/// The `leave_group` kind's steps; remembers the groups it left.
#[derive(Default)]
pub(super) struct LeaveGroup {
    left: VecDeque<String>,
}

#[async_trait]
impl Steps for LeaveGroup {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let members = cx.devices.members.len();
        let leaver = members - 1;
        self.recheck_earlier(cx).await?;
        let group = cx.create_group(members).await?;
        let leaving = cx.devices.device(DeviceRef::first(leaver)).leave(&group);
        let refused = Reason::LeaveRejected;
        cx.run
            .step_or_refused(Operation::Leave, refused, leaving)
            .await?;
        cx.set_member(&group, leaver, false);
        let started = Instant::now();
        if let Err(recorded) = check_applied(cx, &group, leaver, started).await? {
            cx.set_member(&group, leaver, true);
            return Err(recorded);
        }
        let later = started + cx.spec.latency_objective;
        tokio::time::sleep_until(later.into()).await;
        if still_member(cx, &group, leaver).await? {
            let detail = format!("group {group} came back after the leave");
            let recorded = cx
                .run
                .fail(Operation::Leave, Reason::MembershipResurrected, detail);
            cx.set_member(&group, leaver, true);
            return Err(recorded);
        }
        if self.left.len() == REMEMBERED {
            self.left.pop_front();
        }
        self.left.push_back(group);
        Ok(())
    }
}

impl LeaveGroup {
    /// Groups left in earlier runs must stay gone from the leaver's list;
    /// one that came back is reported and no longer remembered. A member
    /// still listing one is in it again (or its cleanup failed): it leaves
    /// it again at the end of this run.
    async fn recheck_earlier(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        if self.left.is_empty() {
            return Ok(());
        }
        let leaver = cx.devices.members.len() - 1;
        let mut back = Vec::new();
        for member in 0..cx.devices.members.len() {
            let listing = cx.devices.device(DeviceRef::first(member)).list_groups();
            let listed = cx.run.step(Operation::Leave, listing).await?;
            for group in self.left.iter().filter(|group| listed.contains(group)) {
                cx.set_member(group, member, true);
                if member == leaver {
                    let detail = format!(
                        "group {group}, left in an earlier run, is listed again for member {}",
                        member + 1
                    );
                    cx.run
                        .fail(Operation::Leave, Reason::MembershipResurrected, detail);
                    back.push(group.clone());
                }
            }
        }
        self.left.retain(|group| !back.contains(group));
        Ok(())
    }
}

/// `Ok(Ok(()))` when the leave shows everywhere: the leaver's devices no
/// longer list the group, another member no longer reads the leaver among its
/// members, and every other device saw the member leave by push. Else
/// `leave_not_applied` is recorded and the inner `Err` carries it; the outer
/// `Err` is a failed step.
async fn check_applied(
    cx: &mut RunContext<'_>,
    group: &str,
    leaver: usize,
    started: Instant,
) -> StepResult<Result<(), Recorded>> {
    let mut applied = Ok(());
    let listed = cx.listed_on(Operation::Leave, leaver, group).await?;
    for (device, _) in listed.iter().enumerate().filter(|(_, listed)| **listed) {
        let detail = format!("device {} of the leaver still lists the group", device + 1);
        applied = Err(cx
            .run
            .fail(Operation::Leave, Reason::LeaveNotApplied, detail));
    }
    let user = cx.devices.user(leaver);
    let reading = cx.devices.device(DeviceRef::first(0)).read_group(group);
    if cx
        .run
        .step(Operation::Leave, reading)
        .await?
        .members
        .contains(&user)
    {
        let detail = "other members still read the leaver as a member".to_string();
        applied = Err(cx
            .run
            .fail(Operation::Leave, Reason::LeaveNotApplied, detail));
    }
    let others = cx.devices.of_members(0..leaver);
    let mut saw = vec![false; others.len()];
    let mut altered = 0;
    let deadline = cx.deadline(started);
    let alive = watch(
        cx.devices,
        cx.run,
        &others,
        deadline,
        |recipient, delivered| {
            // Only the leaver leaves the run's group: a leave of it naming
            // someone else is the leave, altered on the way.
            if let Event::MemberLeft {
                group: left,
                user: who,
            } = &delivered.event
                && left == group
            {
                saw[recipient] = true;
                altered += usize::from(*who != user);
            }
            saw[recipient]
        },
    )
    .await;
    if altered > 0 {
        let detail = format!("{altered} pushes of the leave named another member");
        cx.run.fail(Operation::Leave, Reason::Corrupted, detail);
    }
    let missed = saw
        .iter()
        .zip(&alive)
        .filter(|(saw, alive)| **alive && !**saw)
        .count();
    if missed > 0 {
        let detail = format!(
            "{missed} of {} other devices never saw the member leave",
            others.len()
        );
        applied = Err(cx
            .run
            .fail(Operation::Leave, Reason::LeaveNotApplied, detail));
    }
    Ok(applied)
}

/// True when the leaver is back in `group`, by its own list or by the members
/// another member reads.
async fn still_member(cx: &mut RunContext<'_>, group: &str, leaver: usize) -> StepResult<bool> {
    let listing = cx.devices.device(DeviceRef::first(leaver)).list_groups();
    let listed = cx.run.step(Operation::Leave, listing).await?;
    let reading = cx.devices.device(DeviceRef::first(0)).read_group(group);
    let read = cx.run.step(Operation::Leave, reading).await?;
    Ok(listed.iter().any(|id| id == group) || read.members.contains(&cx.devices.user(leaver)))
}
