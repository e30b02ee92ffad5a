//! `device_sync`: two (or more) devices of one account must agree. A message
//! the first device sends reaches the account's other devices by push; a
//! message another member sends reaches every device of the account; and
//! each device's catch-up sync carries every message any device got by push.
//! Any disagreement is `device_desync` on `device_sync`; a message no device
//! got at all is a delivery failure (`deliver`), not a disagreement.

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::{DeliveryReport, Sent, check_messages, sent_index};
use super::devices::DeviceRef;
use super::kind::{self, KindDef, PublicWords};
use super::run::StepResult;
use super::spec::{ProbeSpec, SpecError};
use crate::client::{Delivered, Event};
use crate::outcome::{Operation, Reason};

/// The `device_sync` kind in the registry.
pub(super) const KIND: KindDef = KindDef {
    name: "device_sync",
    main_operation: Operation::DeviceSync,
    shipped: include_str!("../../probes/device_sync.yaml"),
    validate: needs_two_devices,
    accounts_needed: kind::one_per_member,
    // One message to the sender's other devices and every other member's
    // devices, then one to every device of the sender.
    messages_expected: |spec| {
        let devices = spec.devices_per_account;
        (devices - 1 + (spec.group_size - 1) * devices + devices) as u64
    },
    delivery_operation: Some(Operation::Deliver),
    fresh_group_per_run: true,
    steps: || Box::new(DeviceSync),
    public: PublicWords {
        name: "Your devices staying in sync",
        description: "What you send or receive on one device shows on your other devices too.",
    },
};

/// Two devices of one account are what this kind compares.
fn needs_two_devices(spec: &ProbeSpec) -> Result<(), SpecError> {
    if spec.devices_per_account < 2 {
        let message = "device_sync needs at least 2 devices".to_string();
        return Err(("devices_per_account", message));
    }
    Ok(())
}

/// The `device_sync` kind's steps.
pub(super) struct DeviceSync;

#[async_trait]
impl Steps for DeviceSync {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let members = cx.devices.members.len();
        let group = cx.create_group(members).await?;
        let own = cx.devices.of_members([0]);
        let siblings = own.len() - 1;
        let timing = cx.timing();

        let mut recipients = own[1..].to_vec();
        recipients.extend(cx.devices.of_members(1..members));
        let first = cx
            .send_burst(own[0], &group, (0, 1), recipients.len())
            .await?;
        let report = check_messages(cx.devices, cx.run, &recipients, &first, timing).await;
        let mut pushed = reached_ids(&report, &first, 0..recipients.len());
        let mut flawed = flawed_ids(&report, &first);
        report_first(cx, report, siblings);

        let second = cx
            .send_burst(DeviceRef::first(1), &group, (1, 1), own.len())
            .await?;
        let report = check_messages(cx.devices, cx.run, &own, &second, timing).await;
        pushed.extend(reached_ids(&report, &second, 0..own.len()));
        flawed.extend(flawed_ids(&report, &second));
        // Only the account's own devices wait for it: a partial delivery is
        // its devices disagreeing.
        report.report(cx.run, Operation::Deliver, |reason| match reason {
            Reason::PartialDelivery => Some((Operation::DeviceSync, Reason::DeviceDesync)),
            _ => None,
        });

        let all: Vec<Sent> = first.into_iter().chain(second).collect();
        let seen = Seen {
            pushed: &pushed,
            flawed: &flawed,
        };
        for (index, &recipient) in own.iter().enumerate() {
            let syncing = cx.devices.slot_mut(recipient).device.sync();
            let events = cx.run.step(Operation::DeviceSync, syncing).await?;
            check_sync(cx, index + 1, &group, &events, &all, seen);
        }
        Ok(())
    }
}

/// Reports the first message's delivery to the sender's siblings (the first
/// `siblings` recipients) and the other members' devices: a sibling that missed
/// it while others got it is `device_desync`; a miss on another member's
/// device stays `partial_delivery`, whatever the siblings did.
fn report_first(cx: &mut RunContext<'_>, report: DeliveryReport, siblings: usize) {
    let missed = |recipients: std::ops::Range<usize>| {
        recipients
            .filter(|&recipient| report.alive[recipient])
            .any(|recipient| !report.reached[recipient][0])
    };
    let sibling_missed = missed(0..siblings);
    let others_missed = missed(siblings..report.reached.len());
    let partial = report
        .findings
        .iter()
        .any(|(reason, _)| *reason == Reason::PartialDelivery);
    if partial && sibling_missed && others_missed {
        let detail = "a sibling device missed the first message".to_string();
        cx.run
            .fail(Operation::DeviceSync, Reason::DeviceDesync, detail);
    }
    let desync = sibling_missed && !others_missed;
    report.report(cx.run, Operation::Deliver, |reason| match reason {
        Reason::PartialDelivery if desync => Some((Operation::DeviceSync, Reason::DeviceDesync)),
        _ => None,
    });
}

/// What push already showed of the sent messages.
#[derive(Clone, Copy)]
struct Seen<'a> {
    /// Ids of messages push delivered to some device of the account.
    pushed: &'a [String],
    /// Ids of messages push delivered twice or altered (already reported).
    flawed: &'a [String],
}

/// One device's catch-up sync must carry every message push delivered to
/// some device of the account, once, intact and in send order. A message
/// push already showed duplicated or altered is reported there, not again.
fn check_sync(
    cx: &mut RunContext<'_>,
    device: usize,
    group: &str,
    events: &[Delivered],
    sent: &[Sent],
    seen: Seen<'_>,
) {
    let mut copies = vec![0u32; sent.len()];
    let mut order = Vec::new();
    for delivered in events {
        let Some(position) = position_in_group(&delivered.event, group, sent) else {
            continue;
        };
        order.push(position);
        let Event::Message(message) = &delivered.event else {
            continue;
        };
        let Some(index) = sent_index(sent, message) else {
            continue;
        };
        copies[index] += 1;
        if message.body != sent[index].body && !seen.flawed.contains(&sent[index].id) {
            let detail = format!(
                "catch-up sync of device {device} altered message {}",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::Corrupted, detail);
        }
    }
    if order.windows(2).any(|pair| pair[0] > pair[1]) {
        let detail =
            format!("catch-up sync of device {device} carried the group's events out of order");
        cx.run
            .fail(Operation::DeviceSync, Reason::OutOfOrder, detail);
    }
    for (message, copies) in sent.iter().zip(copies) {
        if copies == 0 && seen.pushed.contains(&message.id) {
            let detail = format!(
                "catch-up sync of device {device} lacks message {}, which push delivered",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::DeviceDesync, detail);
        } else if copies > 1 && !seen.flawed.contains(&message.id) {
            let detail = format!(
                "catch-up sync of device {device} carried message {} {copies} times",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::Duplicate, detail);
        }
    }
}

/// Where an event of the run's group belongs in its history: the members'
/// joins first (0), then the sent messages in send order (1, 2, ...).
/// `None` for events of other groups and anything else.
fn position_in_group(event: &Event, group: &str, sent: &[Sent]) -> Option<usize> {
    match event {
        Event::MemberJoined { group: joined, .. } if joined == group => Some(0),
        Event::Message(message) if message.group == group => {
            sent_index(sent, message).map(|index| index + 1)
        }
        _ => None,
    }
}

/// Ids of the messages of `sent` that reached at least one of `recipients`.
fn reached_ids(
    report: &DeliveryReport,
    sent: &[Sent],
    recipients: std::ops::Range<usize>,
) -> Vec<String> {
    sent.iter()
        .enumerate()
        .filter(|(index, _)| {
            recipients
                .clone()
                .any(|recipient| report.reached[recipient][*index])
        })
        .map(|(_, message)| message.id.clone())
        .collect()
}

/// Ids of the messages of `sent` that push delivered twice or altered.
fn flawed_ids(report: &DeliveryReport, sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .zip(&report.flawed)
        .filter(|(_, flawed)| **flawed)
        .map(|(message, _)| message.id.clone())
        .collect()
}
