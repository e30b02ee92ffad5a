//! `device_sync`: two (or more) devices of one account must agree. A message
//! the first device sends reaches the account's other devices by push; a
//! message another member sends reaches every device of the account; and
//! each device's catch-up sync carries every message any device got by push.
//! Any disagreement is `device_desync` on `device_sync`; a message no device
//! got at all is a delivery failure (`deliver`), not a disagreement.

use std::time::Instant;

use async_trait::async_trait;

use super::context::{Cx, Steps};
use super::deliver::{DeliveryReport, Sent, check_messages};
use crate::client::Event;
use crate::outcome::{Operation, Reason};

/// The `device_sync` kind.
pub struct DeviceSync;

#[async_trait]
impl Steps for DeviceSync {
    async fn steps(&mut self, cx: &mut Cx<'_>) -> Option<()> {
        let members: Vec<usize> = (0..cx.fleet.members.len()).collect();
        let group = cx.create_group(&members).await?;
        let own = cx.fleet.devices_of([0]);
        let siblings = own.len() - 1;
        let objective = cx.spec.latency_objective;

        let started = Instant::now();
        let first = cx.send_burst(own[0], &group, 0, 1).await?;
        let mut targets = own[1..].to_vec();
        targets.extend(cx.fleet.devices_of(1..members.len()));
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

        for (index, &target) in own.iter().enumerate() {
            let syncing = cx.fleet.slot_mut(target).device.sync();
            let events = cx.run.step(Operation::DeviceSync, syncing).await?;
            let carried: Vec<&str> = events
                .iter()
                .filter_map(|delivered| match &delivered.event {
                    Event::Message(message) => Some(message.id.as_str()),
                    _ => None,
                })
                .collect();
            for missing in pushed.iter().filter(|id| !carried.contains(&id.as_str())) {
                let detail = format!(
                    "catch-up sync of device {} lacks message {missing}, which push delivered",
                    index + 1
                );
                cx.run
                    .fail(Operation::DeviceSync, Reason::DeviceDesync, detail);
            }
        }
        Some(())
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
