//! `group_message`: a member sends a burst; every other member's every
//! device must receive each message exactly once, intact, in send order,
//! before the deadline.
//!
//! The group needs nothing fresh, so it is kept across runs (each run's
//! messages carry the run's tag); a run that finds any failure gives the
//! group up (it is emptied), and the next run creates a new one.

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::check_messages;
use super::devices::{Created, DeviceRef};
use super::kind::{self, KindDef, PublicWords};
use super::run::StepResult;
use crate::outcome::Operation;

/// The `group_message` kind in the registry.
pub(super) const KIND: KindDef = KindDef {
    name: "group_message",
    main_operation: Operation::Deliver,
    shipped: include_str!("../../probes/group_message.yaml"),
    validate: kind::no_rules,
    accounts_needed: kind::one_per_member,
    // Every message to every other member's every device.
    messages_expected: |spec| {
        (spec.messages * (spec.group_size - 1) * spec.devices_per_account) as u64
    },
    delivery_operation: Some(Operation::Deliver),
    fresh_group_per_run: false,
    steps: || Box::new(GroupMessage::default()),
    public: PublicWords {
        name: "Sending and receiving group messages",
        description: "Messages you send to a group reach everyone in it, once, in order and unchanged.",
    },
};

/// The `group_message` kind's steps; holds the group between healthy runs.
#[derive(Default)]
pub(super) struct GroupMessage {
    group: Option<Created>,
}

#[async_trait]
impl Steps for GroupMessage {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let members = cx.devices.members.len();
        let group = match &self.group {
            Some(kept) => kept.id.clone(),
            None => {
                let id = cx.create_group(members).await?;
                self.group = cx.keep(&id);
                id
            }
        };
        let recipients = cx.devices.of_members(1..members);
        let burst = (0, cx.spec.messages);
        let sending = cx.send_burst(DeviceRef::first(0), &group, burst, recipients.len());
        if let Ok(sent) = sending.await {
            let timing = cx.timing();
            check_messages(cx.devices, cx.run, &recipients, &sent, timing)
                .await
                .report(cx.run, Operation::Deliver, |_| None);
        }
        if cx.run.has_failures() {
            cx.groups.extend(self.group.take());
        }
        Ok(())
    }

    fn retire(&mut self) -> Vec<Created> {
        self.group.take().into_iter().collect()
    }
}
