//! `add_member`: a member adds a fresh account to the run's group; the added
//! member must see the group (its list and a read) and receive the group's
//! next message on every device, else `member_add_failed`.

use std::time::Instant;

use async_trait::async_trait;

use super::context::{Cx, Steps};
use super::deliver::check_messages;
use crate::outcome::{Operation, Reason};

/// The `add_member` kind.
pub struct AddMember;

#[async_trait]
impl Steps for AddMember {
    async fn steps(&mut self, cx: &mut Cx<'_>) -> Option<()> {
        let added = cx.fleet.members.len() - 1;
        let initial: Vec<usize> = (0..added).collect();
        let group = cx.create_group(&initial).await?;
        let user = cx.fleet.user(added);
        let adding = cx.fleet.device((0, 0)).add_member(&group, &user);
        cx.run.step(Operation::AddMember, adding).await?;
        let joining = cx.fleet.device((added, 0)).join_group(&group);
        let refused = Reason::MemberAddFailed;
        cx.run
            .step_or_refused(Operation::AddMember, refused, joining)
            .await?;
        cx.set_member(&group, added, true);
        if !sees_group(cx, &group, added).await? {
            return None;
        }
        let started = Instant::now();
        let sent = cx.send_burst((0, 0), &group, 0, 1).await?;
        let targets = cx.fleet.devices_of([added]);
        let deadline = cx.deadline(started);
        let objective = cx.spec.latency_objective;
        check_messages(cx.fleet, cx.run, &targets, &sent, deadline, objective)
            .await
            .report(cx.run, Operation::Deliver, |reason| match reason {
                Reason::NotDelivered | Reason::PartialDelivery => {
                    Some((Operation::AddMember, Reason::MemberAddFailed))
                }
                _ => None,
            });
        Some(())
    }
}

/// True when every device of the added member lists the group and a read
/// shows the member in it; else `member_add_failed` is recorded.
async fn sees_group(cx: &mut Cx<'_>, group: &str, added: usize) -> Option<bool> {
    let mut sees = true;
    for target in cx.fleet.devices_of([added]) {
        let listing = cx.fleet.device(target).list_groups();
        if !cx
            .run
            .step(Operation::AddMember, listing)
            .await?
            .iter()
            .any(|id| id == group)
        {
            let detail = format!(
                "device {} of the added member does not list the group",
                target.1 + 1
            );
            cx.run
                .fail(Operation::AddMember, Reason::MemberAddFailed, detail);
            sees = false;
        }
    }
    let user = cx.fleet.user(added);
    let reading = cx.fleet.device((added, 0)).read_group(group);
    let read = cx.run.step(Operation::AddMember, reading).await?;
    if !read.members.contains(&user) {
        let detail = "the added member does not read itself among the members";
        cx.run
            .fail(Operation::AddMember, Reason::MemberAddFailed, detail);
        sees = false;
    }
    Some(sees)
}
