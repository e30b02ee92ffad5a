//! `group_message`: a member sends a burst; every other member's every
//! device must receive each message exactly once, intact, in send order,
//! before the deadline.

use std::time::Instant;

use async_trait::async_trait;

use super::context::{Cx, Steps};
use super::deliver::check_messages;
use crate::outcome::Operation;

/// The `group_message` kind.
pub struct GroupMessage;

#[async_trait]
impl Steps for GroupMessage {
    async fn steps(&mut self, cx: &mut Cx<'_>) -> Option<()> {
        let members: Vec<usize> = (0..cx.fleet.members.len()).collect();
        let group = cx.create_group(&members).await?;
        let started = Instant::now();
        let sent = cx.send_burst((0, 0), &group, 0, cx.spec.messages).await?;
        let recipients = cx.fleet.devices_of(1..members.len());
        let deadline = cx.deadline(started);
        let objective = cx.spec.latency_objective;
        check_messages(cx.fleet, cx.run, &recipients, &sent, deadline, objective)
            .await
            .report(cx.run, Operation::Deliver, |_| None);
        Some(())
    }
}
