//! `device_sync`: two (or more) devices of one account must agree. A message
//! the first device sends reaches the account's other devices by push; a
//! message another member sends reaches every device of the account; and
//! each device's catch-up sync carries every message any device got by push.
//! Any disagreement is `device_desync` on `device_sync`; a message no device
//! got at all is a delivery failure (`deliver`), not a disagreement.

use std::time::Instant;

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::{DeliveryReport, Sent, check_messages, sent_index};
use super::kind::{self, KindDef};
use super::run::StepResult;
use super::spec::{ProbeSpec, SpecError};
use crate::client::{Delivered, Event};
use crate::outcome::{Operation, Reason};

/// The `device_sync` kind in the registry.
pub const KIND: KindDef = KindDef {
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
    steps: || Box::new(DeviceSync),
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
pub struct DeviceSync;

#[async_trait]
impl Steps for DeviceSync {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let members = cx.fleet.members.len();
        let group = cx.create_group(members).await?;
        let own = cx.fleet.devices_of([0]);
        let siblings = own.len() - 1;
        let objective = cx.spec.latency_objective;

        let started = Instant::now();
        let first = cx.send_burst(own[0], &group, 0, 1).await?;
        let mut targets = own[1..].to_vec();
        targets.extend(cx.fleet.devices_of(1..members));
        let deadline = cx.deadline(started);
        let report = check_messages(cx.fleet, cx.run, &targets, &first, deadline, objective).await;
        let mut pushed = reached_ids(&report, &first, 0..targets.len());
        let sibling_missed = (0..siblings).any(|target| !report.reached[target][0]);
        let desync_if = |missed: bool| {
            move |reason| match reason {
                Reason::PartialDelivery if missed => {
                    Some((Operation::DeviceSync, Reason::DeviceDesync))
                }
                _ => None,
            }
        };
        report.report(cx.run, Operation::Deliver, desync_if(sibling_missed));

        let started = Instant::now();
        let second = cx.send_burst((1, 0), &group, 1, 1).await?;
        let deadline = cx.deadline(started);
        let report = check_messages(cx.fleet, cx.run, &own, &second, deadline, objective).await;
        pushed.extend(reached_ids(&report, &second, 0..own.len()));
        report.report(cx.run, Operation::Deliver, desync_if(true));

        let all: Vec<Sent> = first.into_iter().chain(second).collect();
        for (index, &target) in own.iter().enumerate() {
            let syncing = cx.fleet.slot_mut(target).device.sync();
            let events = cx.run.step(Operation::DeviceSync, syncing).await?;
            check_sync(cx, index + 1, &events, &all, &pushed);
        }
        Ok(())
    }
}

/// One device's catch-up sync must carry every message push delivered to
/// some device of the account, once and intact.
fn check_sync(
    cx: &mut RunContext<'_>,
    device: usize,
    events: &[Delivered],
    sent: &[Sent],
    pushed: &[String],
) {
    let mut copies = vec![0u32; sent.len()];
    for delivered in events {
        let Event::Message(message) = &delivered.event else {
            continue;
        };
        let Some(index) = sent_index(sent, message) else {
            continue;
        };
        copies[index] += 1;
        if message.body != sent[index].body {
            let detail = format!(
                "catch-up sync of device {device} altered message {}",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::Corrupted, detail);
        }
    }
    for (message, copies) in sent.iter().zip(copies) {
        if copies == 0 && pushed.contains(&message.id) {
            let detail = format!(
                "catch-up sync of device {device} lacks message {}, which push delivered",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::DeviceDesync, detail);
        } else if copies > 1 {
            let detail = format!(
                "catch-up sync of device {device} carried message {} {copies} times",
                message.id
            );
            cx.run
                .fail(Operation::DeviceSync, Reason::Duplicate, detail);
        }
    }
}

/// Ids of the messages of `sent` that reached at least one of `targets`.
fn reached_ids(
    report: &DeliveryReport,
    sent: &[Sent],
    targets: std::ops::Range<usize>,
) -> Vec<String> {
    sent.iter()
        .enumerate()
        .filter(|(index, _)| targets.clone().any(|target| report.reached[target][*index]))
        .map(|(_, message)| message.id.clone())
        .collect()
}
