//! `add_member`: a member adds a fresh account to the run's group; the added
//! member must see the group (its list and a read) and receive the group's
//! next message on every device, else `member_add_failed`.

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::check_messages;
use super::devices::DeviceRef;
use super::kind::{self, KindDef, PublicWords};
use super::run::{Recorded, StepResult};
use crate::outcome::{Operation, Reason};

/// The `add_member` kind in the registry.
pub(super) const KIND: KindDef = KindDef {
    name: "add_member",
    main_operation: Operation::AddMember,
    shipped: include_str!("../../probes/add_member.yaml"),
    validate: kind::no_rules,
    // One per group member, the last of them added during the run.
    accounts_needed: kind::one_per_member,
    // One message to the added member's every device.
    messages_expected: |spec| spec.devices_per_account as u64,
    delivery_operation: Some(Operation::AddMember),
    fresh_group_per_run: true,
    steps: || Box::new(AddMember),
    public: PublicWords {
        name: "Adding people to groups",
        description: "People you add to a group can see it and its new messages.",
    },
};

/// The `add_member` kind's steps.
pub(super) struct AddMember;

#[async_trait]
impl Steps for AddMember {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let added = cx.devices.members.len() - 1;
        let group = cx.create_group(added).await?;
        let user = cx.devices.user(added);
        let adding = cx
            .devices
            .device(DeviceRef::first(0))
            .add_member(&group, &user);
        cx.run.step(Operation::AddMember, adding).await?;
        let joining = cx
            .devices
            .device(DeviceRef::first(added))
            .join_group(&group);
        let refused = Reason::MemberAddFailed;
        cx.run
            .step_or_refused(Operation::AddMember, refused, joining)
            .await?;
        cx.set_member(&group, added, true);
        sees_group(cx, &group, added).await??;
        let recipients = cx.devices.of_members([added]);
        let sent = cx
            .send_burst(DeviceRef::first(0), &group, (0, 1), recipients.len())
            .await?;
        let timing = cx.timing();
        check_messages(cx.devices, cx.run, &recipients, &sent, timing)
            .await
            .report(cx.run, Operation::Deliver, |reason| match reason {
                Reason::NotDelivered | Reason::PartialDelivery => {
                    Some((Operation::AddMember, Reason::MemberAddFailed))
                }
                _ => None,
            });
        Ok(())
    }
}

/// `Ok(Ok(()))` when every device of the added member lists the group and a
/// read shows the member in it; else `member_add_failed` is recorded and the
/// inner `Err` carries it. The outer `Err` is a failed step.
async fn sees_group(
    cx: &mut RunContext<'_>,
    group: &str,
    added: usize,
) -> StepResult<Result<(), Recorded>> {
    let mut sees = Ok(());
    let listed = cx.listed_on(Operation::AddMember, added, group).await?;
    for (device, _) in listed.iter().enumerate().filter(|(_, listed)| !**listed) {
        let detail = format!(
            "device {} of the added member does not list the group",
            device + 1
        );
        sees = Err(cx
            .run
            .fail(Operation::AddMember, Reason::MemberAddFailed, detail));
    }
    let user = cx.devices.user(added);
    let reading = cx.devices.device(DeviceRef::first(added)).read_group(group);
    let read = cx.run.step(Operation::AddMember, reading).await?;
    if !read.members.contains(&user) {
        let detail = "the added member does not read itself among the members";
        sees = Err(cx
            .run
            .fail(Operation::AddMember, Reason::MemberAddFailed, detail));
    }
    Ok(sees)
}
