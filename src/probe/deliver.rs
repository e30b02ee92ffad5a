//! Watching several devices for what a run caused, and the delivery checker
//! every kind uses: did each sent message reach each recipient device
//! exactly once, intact, in send order, within the objective and deadline?

use std::time::{Duration, Instant};

use crate::client::{ClientError, Delivered, Event, MessageId, ReceivedMessage};
use crate::outcome::{Operation, Reason};

use super::devices::{DeviceRef, Devices};
use super::run::{Run, StepResult};

/// How long to keep listening after every expected event arrived, to catch
/// duplicates sent right behind the original (a copy later still, read away
/// before the next run, is reported then: see `Slot::delivered`).
const SETTLE: Duration = Duration::from_millis(20);

/// Watches `recipients` until each has seen what it waits for (`observe`
/// returns true for a recipient once it has everything) or `until` passes, then
/// listens a moment longer so late duplicates are seen too. Returns which
/// recipients kept their push connection; a lost one is reported on `connect`
/// with the reason of its error (`connect_error`, `auth_error`, `http_error`,
/// `timeout`: one reason per failure), and its device reconnects before the
/// next run. Malformed push frames are `http_error` on `deliver`.
pub(super) async fn watch(
    devices: &mut Devices,
    run: &mut Run,
    recipients: &[DeviceRef],
    until: Instant,
    mut observe: impl FnMut(usize, &Delivered) -> bool,
) -> Vec<bool> {
    let begun = Instant::now();
    let mut alive = vec![true; recipients.len()];
    let mut done = vec![false; recipients.len()];
    for (index, &recipient) in recipients.iter().enumerate() {
        let slot = devices.slot_mut(recipient);
        alive[index] = !slot.push_lost;
        while alive[index] && !done[index] {
            match listen(slot, run, until).await {
                Ok(Some(event)) => done[index] = observe(index, &event),
                Ok(None) => break,
                Err(_lost) => alive[index] = false,
            }
        }
    }
    let settle_until = (Instant::now() + SETTLE).min(until);
    for (index, &recipient) in recipients.iter().enumerate() {
        let slot = devices.slot_mut(recipient);
        while alive[index] {
            match listen(slot, run, settle_until).await {
                Ok(Some(event)) => {
                    observe(index, &event);
                }
                Ok(None) => break,
                Err(_lost) => alive[index] = false,
            }
        }
    }
    run.record(Operation::Deliver, begun.elapsed());
    alive
}

/// The next event of one device before `until`: `Ok(None)` at `until`,
/// `Err` once its push connection is lost (the loss is recorded once: a
/// push channel that closes right after a malformed answer, as a Matrix
/// long poll does, is that one failure, not a second).
async fn listen(
    slot: &mut super::devices::Slot,
    run: &mut Run,
    until: Instant,
) -> StepResult<Option<Delivered>> {
    let mut malformed = None;
    loop {
        match slot.device.next_event(until).await {
            Ok(event) => return Ok(event),
            Err(ClientError::Malformed(detail)) => {
                malformed = Some(run.fail(Operation::Deliver, Reason::HttpError, detail));
            }
            Err(err) => {
                slot.push_lost = true;
                return Err(match malformed {
                    Some(recorded) => recorded,
                    None => run.fail(
                        Operation::Connect,
                        err.reason(),
                        format!("push of {} lost: {err}", slot.device.device_id()),
                    ),
                });
            }
        }
    }
}

/// One message a run sent.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    /// The id the service acknowledged it with.
    pub(crate) id: MessageId,
    /// The text sent.
    pub(crate) body: String,
    /// When the send began (latency and the delivery deadline count from here).
    pub(crate) sent_at: Instant,
}

impl Sent {
    /// The instant the message must have reached every device by.
    fn deadline(&self, allowed: Duration) -> Instant {
        self.sent_at + allowed
    }
}

/// Which of `sent` a received message is: by the acknowledged id, or by its
/// body (unique per run), so a copy stored under another id still counts.
pub(super) fn sent_index(sent: &[Sent], message: &ReceivedMessage) -> Option<usize> {
    sent.iter()
        .position(|one| one.id == message.id || one.body == message.body)
}

/// What one recipient device got of one message.
#[derive(Debug, Clone, Copy, Default)]
struct Receipt {
    copies: u32,
    first_at: Option<Instant>,
    intact: bool,
}

impl Receipt {
    fn arrived_by(&self, deadline: Instant) -> bool {
        self.copies > 0 && self.first_at.is_some_and(|at| at <= deadline)
    }

    fn flawed(&self) -> bool {
        self.copies > 1 || (self.copies > 0 && !self.intact)
    }
}

/// How long deliveries may take: the deadline and the latency objective,
/// both counted from each message's own send.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// A message not on a device this long after its send is missing there.
    pub(crate) deadline: Duration,
    /// A message slower than this is late.
    pub(crate) objective: Duration,
}

/// What the delivery checker found, reason by reason, for the caller to
/// report under the operation its kind gives each reason.
#[derive(Debug, Default)]
pub(super) struct DeliveryReport {
    /// Each finding: the contract reason and what was seen.
    pub(crate) findings: Vec<(Reason, String)>,
    /// Deliveries waited for (messages × recipient devices).
    pub(crate) expected: u64,
    /// Of those, arrived intact before the deadline.
    pub(crate) delivered: u64,
    /// Per recipient, per message: whether it arrived before the deadline.
    pub(crate) reached: Vec<Vec<bool>>,
    /// Per recipient: whether its push connection stayed up (a lost one is
    /// reported on `connect`, not as its misses).
    pub(crate) alive: Vec<bool>,
    /// Per message: whether some device got it twice or altered (already
    /// reported here, so other checks need not report it again).
    pub(crate) flawed: Vec<bool>,
}

impl DeliveryReport {
    /// Records every finding on `operation`, except those `remap` moves to
    /// another operation and reason; counts the messages.
    pub(super) fn report(
        self,
        run: &mut Run,
        operation: Operation,
        remap: impl Fn(Reason) -> Option<(Operation, Reason)>,
    ) {
        for (reason, detail) in self.findings {
            let (operation, reason) = remap(reason).unwrap_or((operation, reason));
            run.fail(operation, reason, detail);
        }
        run.count_messages(self.expected, self.delivered);
    }
}

/// Waits until every recipient got every message of `sent` or the last
/// message's deadline passes, and classifies what arrived. Events of other
/// messages (older runs, other groups) are ignored.
pub(super) async fn check_messages(
    devices: &mut Devices,
    run: &mut Run,
    recipients: &[DeviceRef],
    sent: &[Sent],
    timing: Timing,
) -> DeliveryReport {
    let until = sent
        .iter()
        .map(|message| message.deadline(timing.deadline))
        .max()
        .unwrap_or_else(Instant::now);
    let mut receipts = vec![vec![Receipt::default(); sent.len()]; recipients.len()];
    let mut arrival_order: Vec<Vec<usize>> = vec![Vec::new(); recipients.len()];
    let alive = watch(devices, run, recipients, until, |recipient, delivered| {
        let Event::Message(message) = &delivered.event else {
            return false;
        };
        let Some(index) = sent_index(sent, message) else {
            return false;
        };
        let receipt = &mut receipts[recipient][index];
        if receipt.copies == 0 {
            receipt.first_at = Some(delivered.received_at);
            receipt.intact = message.body == sent[index].body;
            arrival_order[recipient].push(index);
        } else {
            receipt.intact &= message.body == sent[index].body;
        }
        receipt.copies += 1;
        receipts[recipient].iter().all(|receipt| receipt.copies > 0)
    })
    .await;
    for (&recipient, per_recipient) in recipients.iter().zip(&receipts) {
        let arrived = sent
            .iter()
            .zip(per_recipient)
            .filter(|(_, receipt)| receipt.copies > 0)
            .map(|(message, _)| message.body.clone());
        devices.slot_mut(recipient).delivered.extend(arrived);
    }
    classify(sent, &receipts, &arrival_order, &alive, timing)
}

/// What the receipts of every recipient say: a missing message is counted
/// against the devices whose push stayed up (a device whose push died is
/// reported on `connect`); what did arrive counts as delivered wherever it
/// arrived, so `delivered` and the reasons agree.
fn classify(
    sent: &[Sent],
    receipts: &[Vec<Receipt>],
    arrival_order: &[Vec<usize>],
    alive: &[bool],
    timing: Timing,
) -> DeliveryReport {
    let objective = timing.objective;
    let mut report = DeliveryReport {
        expected: (sent.len() * receipts.len()) as u64,
        ..DeliveryReport::default()
    };
    let mut found = |reason: Reason, detail: String| {
        if !report.findings.iter().any(|(seen, _)| *seen == reason) {
            report.findings.push((reason, detail));
        }
    };
    let listening = alive.iter().filter(|alive| **alive).count();
    for (index, message) in sent.iter().enumerate() {
        let deadline = message.deadline(timing.deadline);
        let got: Vec<&Receipt> = receipts
            .iter()
            .zip(alive)
            .filter(|(_, alive)| **alive)
            .map(|(per_recipient, _)| &per_recipient[index])
            .filter(|receipt| receipt.arrived_by(deadline))
            .collect();
        let name = format!("message {} ({})", index + 1, message.id);
        if got.is_empty() && listening > 0 {
            found(
                Reason::NotDelivered,
                format!("{name} reached no recipient device"),
            );
        } else if got.len() < listening {
            found(
                Reason::PartialDelivery,
                format!("{name} reached {} of {listening} devices", got.len()),
            );
        }
        if got.iter().any(|receipt| receipt.copies > 1) {
            found(Reason::Duplicate, format!("{name} arrived more than once"));
        }
        if got.iter().any(|receipt| !receipt.intact) {
            found(Reason::Corrupted, format!("{name} arrived altered"));
        }
        let slowest = got
            .iter()
            .filter_map(|receipt| receipt.first_at)
            .map(|at| at.saturating_duration_since(message.sent_at))
            .max();
        if let Some(slowest) = slowest.filter(|slowest| *slowest > objective) {
            found(
                Reason::LateDelivery,
                format!("{name} took {slowest:?} (objective {objective:?})"),
            );
        }
    }
    if arrival_order
        .iter()
        .any(|order| order.windows(2).any(|pair| pair[0] > pair[1]))
    {
        found(
            Reason::OutOfOrder,
            "messages arrived out of send order".to_string(),
        );
    }
    let arrived = |(index, receipt): (usize, &Receipt)| {
        receipt.arrived_by(sent[index].deadline(timing.deadline))
    };
    report.reached = receipts
        .iter()
        .map(|per_recipient| per_recipient.iter().enumerate().map(arrived).collect())
        .collect();
    report.delivered = receipts
        .iter()
        .flat_map(|per_recipient| per_recipient.iter().enumerate())
        .filter(|&(index, receipt)| arrived((index, receipt)) && receipt.intact)
        .count() as u64;
    report.alive = alive.to_vec();
    report.flawed = (0..sent.len())
        .map(|index| {
            receipts
                .iter()
                .any(|per_recipient| per_recipient[index].flawed())
        })
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientResult;

    fn sent(count: usize, at: Instant) -> Vec<Sent> {
        (0..count)
            .map(|index| Sent {
                id: format!("m{index}"),
                body: format!("body {index}"),
                sent_at: at,
            })
            .collect()
    }

    fn receipt(at: Instant, copies: u32, intact: bool) -> Receipt {
        Receipt {
            copies,
            first_at: Some(at),
            intact,
        }
    }

    fn timing(deadline_secs: u64, objective_secs: u64) -> Timing {
        Timing {
            deadline: Duration::from_secs(deadline_secs),
            objective: Duration::from_secs(objective_secs),
        }
    }

    fn reasons(report: &DeliveryReport) -> Vec<Reason> {
        report.findings.iter().map(|(reason, _)| *reason).collect()
    }

    #[test]
    fn each_fault_is_its_own_reason() {
        let start = Instant::now();
        let messages = sent(2, start);
        let ok = receipt(start + Duration::from_millis(5), 1, true);
        let classify_one = |receipts: Vec<Vec<Receipt>>, order: Vec<Vec<usize>>| {
            let alive = vec![true; receipts.len()];
            classify(&messages, &receipts, &order, &alive, timing(10, 1))
        };
        let healthy = classify_one(vec![vec![ok, ok]; 2], vec![vec![0, 1]; 2]);
        assert!(healthy.findings.is_empty());
        assert_eq!((healthy.expected, healthy.delivered), (4, 4));

        let none = classify_one(vec![vec![ok, Receipt::default()]; 2], vec![vec![0]; 2]);
        assert_eq!(reasons(&none), [Reason::NotDelivered]);
        assert_eq!(none.delivered, 2);

        let partial = classify_one(
            vec![vec![ok, ok], vec![ok, Receipt::default()]],
            vec![vec![0, 1], vec![0]],
        );
        assert_eq!(reasons(&partial), [Reason::PartialDelivery]);

        let twice = classify_one(
            vec![vec![ok, receipt(start, 2, true)]; 2],
            vec![vec![0, 1]; 2],
        );
        assert_eq!(reasons(&twice), [Reason::Duplicate]);

        let altered = classify_one(
            vec![vec![ok, receipt(start, 1, false)]; 2],
            vec![vec![0, 1]; 2],
        );
        assert_eq!(reasons(&altered), [Reason::Corrupted]);
        assert_eq!(altered.delivered, 2);

        let slow = receipt(start + Duration::from_secs(3), 1, true);
        let late = classify_one(vec![vec![ok, slow]; 2], vec![vec![0, 1]; 2]);
        assert_eq!(reasons(&late), [Reason::LateDelivery]);

        let swapped = classify_one(vec![vec![ok, ok]; 2], vec![vec![0, 1], vec![1, 0]]);
        assert_eq!(reasons(&swapped), [Reason::OutOfOrder]);
    }

    #[test]
    fn a_device_that_lost_its_push_is_not_counted_as_missing() {
        let start = Instant::now();
        let messages = sent(1, start);
        let ok = receipt(start, 1, true);
        let receipts = vec![vec![ok], vec![Receipt::default()]];
        let report = classify(
            &messages,
            &receipts,
            &[vec![0], vec![]],
            &[true, false],
            timing(1, 1),
        );
        assert!(report.findings.is_empty());
        assert_eq!((report.expected, report.delivered), (2, 1));
    }

    #[test]
    fn a_dead_push_does_not_hide_a_loss_on_a_live_device() {
        let start = Instant::now();
        let messages = sent(1, start);
        let ok = receipt(start, 1, true);
        // The dead device got the message before dying; the live one never did.
        let receipts = vec![vec![ok], vec![ok], vec![Receipt::default()]];
        let report = classify(
            &messages,
            &receipts,
            &[vec![0], vec![0], vec![]],
            &[true, false, true],
            timing(1, 1),
        );
        assert_eq!(reasons(&report), [Reason::PartialDelivery]);
        assert_eq!((report.expected, report.delivered), (3, 2));
    }

    #[test]
    fn the_deadline_counts_from_each_messages_own_send() {
        let start = Instant::now();
        let slow_send = start + Duration::from_secs(4);
        let mut messages = sent(2, start);
        messages[1].sent_at = slow_send;
        // The second message arrived 4.1 s after the burst began, 0.1 s after its send.
        let late_burst = receipt(slow_send + Duration::from_millis(100), 1, true);
        let ok = receipt(start + Duration::from_millis(5), 1, true);
        let report = classify(
            &messages,
            &[vec![ok, late_burst]],
            &[vec![0, 1]],
            &[true],
            timing(2, 1),
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.delivered, 2);
    }

    /// A device whose push channel answers a scripted sequence, then is closed.
    struct ScriptedPush(std::collections::VecDeque<ClientError>);

    #[async_trait::async_trait]
    impl crate::client::Device for ScriptedPush {
        fn user_id(&self) -> &str {
            "u"
        }
        fn device_id(&self) -> &str {
            "d"
        }
        async fn connect(&mut self) -> ClientResult<()> {
            Ok(())
        }
        async fn disconnect(&mut self) {}
        async fn next_event(&mut self, _until: Instant) -> ClientResult<Option<Delivered>> {
            Err(self
                .0
                .pop_front()
                .unwrap_or_else(|| ClientError::Connect("push connection closed".into())))
        }
        async fn sync(&mut self) -> ClientResult<Vec<Delivered>> {
            Ok(Vec::new())
        }
        async fn send(&self, _: &str, _: &str, _: &str) -> ClientResult<MessageId> {
            Err(ClientError::Connect("not in this test".into()))
        }
        async fn list_groups(&self) -> ClientResult<Vec<crate::client::GroupId>> {
            Ok(Vec::new())
        }
        async fn read_group(&self, _: &str) -> ClientResult<crate::client::GroupInfo> {
            Err(ClientError::Connect("not in this test".into()))
        }
        async fn create_group(
            &self,
            _: &crate::client::GroupSettings,
            _: &[crate::client::UserId],
        ) -> ClientResult<crate::client::GroupId> {
            Err(ClientError::Connect("not in this test".into()))
        }
        async fn join_group(&self, _: &str) -> ClientResult<()> {
            Ok(())
        }
        async fn add_member(&self, _: &str, _: &str) -> ClientResult<()> {
            Ok(())
        }
        async fn leave(&self, _: &str) -> ClientResult<()> {
            Ok(())
        }
        async fn edit_settings(
            &self,
            _: &str,
            _: &crate::client::GroupSettings,
        ) -> ClientResult<()> {
            Ok(())
        }
    }

    /// The failures `listen` records for a push channel answering `script`.
    async fn push_failures(script: Vec<ClientError>) -> Vec<(Operation, Reason)> {
        let mut slot = super::super::devices::Slot {
            device: Box::new(ScriptedPush(script.into())),
            push_lost: false,
            delivered: Vec::new(),
        };
        let mut run = Run::start(Duration::from_secs(1));
        assert!(listen(&mut slot, &mut run, Instant::now()).await.is_err());
        assert!(slot.push_lost);
        let outcome = run.finish();
        outcome
            .failures
            .iter()
            .map(|failure| (failure.operation, failure.reason))
            .collect()
    }

    #[tokio::test]
    async fn a_lost_push_channel_keeps_its_errors_reason_once() {
        let status = |status| ClientError::Status {
            status,
            message: "m".into(),
        };
        let cases = [
            (ClientError::Auth("401".into()), Reason::AuthError),
            (status(503), Reason::HttpError),
            (status(429), Reason::HttpError),
            (
                ClientError::Timeout(Duration::from_secs(1)),
                Reason::Timeout,
            ),
            (ClientError::Connect("reset".into()), Reason::ConnectError),
        ];
        for (error, reason) in cases {
            assert_eq!(
                push_failures(vec![error]).await,
                [(Operation::Connect, reason)]
            );
        }
        // A long poll that ends on a malformed answer: one failure, not two.
        let malformed = ClientError::Malformed("not JSON".into());
        assert_eq!(
            push_failures(vec![malformed]).await,
            [(Operation::Deliver, Reason::HttpError)]
        );
    }
}
