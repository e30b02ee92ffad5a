//! The probe's accounts and their devices, kept logged in and push-connected
//! across runs, and the groups a run creates (with their cleanup).

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::client::{Account, ChatService, ClientError, Device, Event, GroupId, GroupSettings};
use crate::outcome::{Operation, Reason};

use super::run::{Run, StepResult};

/// Most stale events read off one device before a run (bounds the drain).
const DRAIN_MAX: usize = 10_000;
/// Most groups whose cleanup failed kept for retrying in later runs.
const PENDING_MAX: usize = 32;

/// One logged-in device and whether its push connection was found lost.
pub struct Slot {
    /// The device.
    pub device: Box<dyn Device>,
    /// Its push connection closed and the loss was already reported.
    pub push_lost: bool,
    /// Bodies of the messages this run's delivery checks saw arrive here: a
    /// copy of one read away before the next run is a late duplicate.
    pub delivered: Vec<String>,
}

/// One probe account and its devices.
pub struct Member {
    account: Account,
    /// The devices logged in so far (full after [`Fleet::prepare`] succeeded).
    pub slots: Vec<Slot>,
}

impl Member {
    /// The account's user id, as the service spells it.
    pub fn user(&self) -> &str {
        self.slots
            .first()
            .map_or(self.account.user.as_str(), |slot| slot.device.user_id())
    }
}

/// A device of the fleet: member index and device index.
pub type Target = (usize, usize);

/// A group a run created and who is in it, so cleanup can empty it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The group.
    pub id: GroupId,
    /// Members (indices into the fleet) currently in the group.
    pub members: Vec<usize>,
}

/// Every account of a probe with its devices.
pub struct Fleet {
    service: Arc<dyn ChatService>,
    /// The accounts, in the order the probe was given them.
    pub members: Vec<Member>,
    devices_per_account: usize,
    pending_cleanup: Vec<Created>,
}

impl Fleet {
    /// A fleet of `accounts`, each to hold `devices_per_account` devices.
    pub fn new(
        service: Arc<dyn ChatService>,
        accounts: Vec<Account>,
        devices_per_account: usize,
    ) -> Fleet {
        let members = accounts
            .into_iter()
            .map(|account| Member {
                account,
                slots: Vec::new(),
            })
            .collect();
        Fleet {
            service,
            members,
            devices_per_account,
            pending_cleanup: Vec::new(),
        }
    }

    /// Gets every device ready for a run: logs in missing devices, reconnects
    /// lost push connections (reporting a loss not yet reported) and reads
    /// away events left from earlier runs. `Err` when some device is not ready.
    pub async fn prepare(&mut self, run: &mut Run) -> StepResult<()> {
        self.retry_pending_cleanup(run).await;
        let mut ready = Ok(());
        for member_index in 0..self.members.len() {
            if let Err(recorded) = self.prepare_member(run, member_index).await {
                ready = Err(recorded);
            }
        }
        ready
    }

    async fn prepare_member(&mut self, run: &mut Run, member_index: usize) -> StepResult<()> {
        let service = Arc::clone(&self.service);
        let member = &mut self.members[member_index];
        let mut index = 0;
        while index < member.slots.len() {
            if reconnect_if_lost(run, &mut member.slots[index]).await {
                index += 1;
            } else {
                member.slots.swap_remove(index);
            }
        }
        while member.slots.len() < self.devices_per_account {
            let mut device = run
                .step(Operation::Login, service.login(&member.account))
                .await?;
            run.step(Operation::Connect, device.connect()).await?;
            member.slots.push(Slot {
                device,
                push_lost: false,
                delivered: Vec::new(),
            });
        }
        Ok(())
    }

    /// Retires one device, so that the next [`Fleet::prepare`] logs a fresh
    /// one in and connects it: run `n` retires the oldest device of member
    /// `n mod members` (fresh ones join at the end), so each device is
    /// renewed in turn. A fault on login or connect that begins while the
    /// probe runs shows within a run or two, as it would to real phones,
    /// which reconnect all the time; and no connection that went silent
    /// stays in use for long.
    /// A push connection found lost on the retired device is reported as
    /// [`Fleet::prepare`] would.
    pub async fn renew_one(&mut self, run: &mut Run, run_number: u64) {
        let Some(count) = u64::try_from(self.members.len()).ok().filter(|n| *n > 0) else {
            return;
        };
        let member = &mut self.members[usize::try_from(run_number % count).unwrap_or(0)];
        if member.slots.is_empty() {
            return;
        }
        // Dropping the device closes its push connection.
        let mut retired = member.slots.remove(0);
        if !retired.push_lost {
            report_lost(run, &mut retired).await;
        }
    }

    /// The device at `target`.
    pub fn device(&self, (member, device): Target) -> &dyn Device {
        self.members[member].slots[device].device.as_ref()
    }

    /// The slot at `target`, for reading its events.
    pub fn slot_mut(&mut self, (member, device): Target) -> &mut Slot {
        &mut self.members[member].slots[device]
    }

    /// The user id of member `member`.
    pub fn user(&self, member: usize) -> String {
        self.members[member].user().to_string()
    }

    /// Every device of the listed members.
    pub fn devices_of(&self, members: impl IntoIterator<Item = usize>) -> Vec<Target> {
        members
            .into_iter()
            .flat_map(|member| (0..self.members[member].slots.len()).map(move |d| (member, d)))
            .collect()
    }

    /// Member 0 creates a group inviting `invited`, as a step of the `send`
    /// operation.
    pub async fn create_group(
        &self,
        run: &mut Run,
        settings: &GroupSettings,
        invited: Range<usize>,
    ) -> StepResult<Created> {
        let users: Vec<String> = invited.map(|member| self.user(member)).collect();
        let creating = self.device((0, 0)).create_group(settings, &users);
        let id = run.step(Operation::Send, creating).await?;
        Ok(Created {
            id,
            members: vec![0],
        })
    }

    /// Each of `joining` joins `group` from its first device, as steps of the
    /// `send` operation; those who joined are added to its members. `Err`
    /// when some join failed (after every one was tried).
    pub async fn join_group(
        &self,
        run: &mut Run,
        group: &mut Created,
        joining: Range<usize>,
    ) -> StepResult<()> {
        let mut joined: StepResult<()> = Ok(());
        for member in joining {
            let join = self.device((member, 0)).join_group(&group.id);
            match run.step(Operation::Send, join).await {
                Ok(()) => group.members.push(member),
                Err(recorded) => joined = Err(recorded),
            }
        }
        joined
    }

    /// Every member still in `group` leaves it (steps of `cleanup`), so the
    /// service deletes it; a group not emptied is retried in later runs.
    pub async fn clean_up(&mut self, run: &mut Run, group: Created) {
        let mut remaining = Vec::new();
        for &member in &group.members {
            // At shutdown a member may have no device left (its login failed).
            let Some(slot) = self.members[member].slots.first() else {
                remaining.push(member);
                continue;
            };
            match run
                .timed(Operation::Cleanup, slot.device.leave(&group.id))
                .await
            {
                Ok(()) => {}
                Err(err) if not_a_member(&err) => {}
                Err(err) => {
                    run.fail(Operation::Cleanup, err.reason(), err.to_string());
                    remaining.push(member);
                }
            }
        }
        self.keep_pending(Created {
            id: group.id,
            members: remaining,
        });
    }

    /// Empties the groups kept between runs and those whose cleanup failed
    /// earlier, and disconnects every device (at shutdown).
    pub async fn shut_down(&mut self, run: &mut Run, kept: Vec<Created>) {
        let pending = std::mem::take(&mut self.pending_cleanup);
        for group in kept.into_iter().chain(pending) {
            self.clean_up(run, group).await;
        }
        for slot in self
            .members
            .iter_mut()
            .flat_map(|member| member.slots.iter_mut())
        {
            slot.device.disconnect().await;
        }
    }

    fn keep_pending(&mut self, group: Created) {
        if !group.members.is_empty() && self.pending_cleanup.len() < PENDING_MAX {
            self.pending_cleanup.push(group);
        }
    }

    /// Retries cleanups that failed in earlier runs, quietly: their failure
    /// was reported when it happened.
    async fn retry_pending_cleanup(&mut self, run: &mut Run) {
        for group in std::mem::take(&mut self.pending_cleanup) {
            let mut remaining = Vec::new();
            for &member in &group.members {
                let Some(slot) = self.members[member].slots.first() else {
                    remaining.push(member);
                    continue;
                };
                let leaving = run.timed(Operation::Cleanup, slot.device.leave(&group.id));
                if leaving.await.is_err_and(|err| !not_a_member(&err)) {
                    remaining.push(member);
                }
            }
            self.keep_pending(Created {
                id: group.id,
                members: remaining,
            });
        }
    }
}

/// True for the answer to a leave by a user who is not (or no longer) in
/// the group: forbidden or not found. Cleanup's goal is met then.
fn not_a_member(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::Status {
            status: 403 | 404,
            ..
        }
    )
}

/// Reads away a device's stale events; reconnects its push connection when
/// it was lost. False when the device has to log in again.
async fn reconnect_if_lost(run: &mut Run, slot: &mut Slot) -> bool {
    if !slot.push_lost && !report_lost(run, slot).await {
        return true;
    }
    match run.timed(Operation::Connect, slot.device.connect()).await {
        Ok(()) => {
            slot.push_lost = false;
            true
        }
        Err(err) => {
            run.fail(Operation::Connect, err.reason(), err.to_string());
            false
        }
    }
}

/// Reads away a device's stale events; true (and the loss reported) when
/// its push connection was lost. A copy of a message the last check saw
/// arrive, come after that check ended, is reported as a `duplicate` on
/// `deliver`.
async fn report_lost(run: &mut Run, slot: &mut Slot) -> bool {
    let delivered = std::mem::take(&mut slot.delivered);
    let device = slot.device.as_mut();
    let mut late_copies = 0;
    let drained = drain(device, |event| {
        late_copies += usize::from(
            matches!(event, Event::Message(message) if delivered.contains(&message.body)),
        );
    })
    .await;
    if late_copies > 0 {
        let detail = format!(
            "{late_copies} copies of messages {} already had arrived after the check ended",
            device.device_id()
        );
        run.fail(Operation::Deliver, Reason::Duplicate, detail);
    }
    let Err(err) = drained else {
        return false;
    };
    let detail = format!("push of {} lost between runs: {err}", device.device_id());
    run.fail(Operation::Connect, err.reason(), detail);
    true
}

/// Reads every event already waiting on the device, handing each to `seen`.
async fn drain(device: &mut dyn Device, mut seen: impl FnMut(&Event)) -> Result<(), ClientError> {
    for _ in 0..DRAIN_MAX {
        match device.next_event(Instant::now()).await {
            Ok(Some(delivered)) => seen(&delivered.event),
            Err(ClientError::Malformed(_)) => {}
            Ok(None) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
