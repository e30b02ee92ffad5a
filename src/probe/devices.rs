//! The probe's accounts and their devices, kept logged in and push-connected
//! across runs, and the groups a run creates (with their cleanup and the
//! reconciliation that leaves what earlier runs left behind).

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::client::{Account, ChatService, ClientError, Device, Event, GroupId, GroupSettings};
use crate::outcome::{Operation, Reason};

use super::footprint::Footprint;
use super::run::{Run, StepResult};

/// Most stale events read off one device before a run (bounds the drain).
const DRAIN_MAX: usize = 10_000;

/// One logged-in device and whether its push connection was found lost.
pub(super) struct Slot {
    /// The device.
    pub(crate) device: Box<dyn Device>,
    /// Its push connection closed and the loss was already reported.
    pub(crate) push_lost: bool,
    /// Bodies of the messages this run's delivery checks saw arrive here: a
    /// copy of one read away before the next run is a late duplicate.
    pub(crate) delivered: Vec<String>,
}

/// One probe account and its devices.
pub(super) struct Member {
    account: Account,
    /// The devices logged in so far (full after [`Devices::prepare`] succeeded).
    pub(crate) slots: Vec<Slot>,
}

impl Member {
    /// The account's user id, as the service spells it.
    pub(super) fn user(&self) -> &str {
        self.slots
            .first()
            .map_or(self.account.user.as_str(), |slot| slot.device.user_id())
    }
}

/// One device of a probe's accounts: which member, and which of its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeviceRef {
    /// The member's index among the probe's accounts.
    pub(crate) member: usize,
    /// The device's index among that member's devices.
    pub(crate) device: usize,
}

impl DeviceRef {
    /// The first device of `member`.
    pub(super) fn first(member: usize) -> DeviceRef {
        DeviceRef { member, device: 0 }
    }
}

/// A group a run created and who is in it, so cleanup can empty it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Created {
    /// The group.
    pub(crate) id: GroupId,
    /// Members (indices into the probe's accounts) currently in the group.
    pub(crate) members: Vec<usize>,
}

/// Every account of a probe with its devices.
pub(super) struct Devices {
    service: Arc<dyn ChatService>,
    /// The accounts, in the order the probe was given them.
    pub(crate) members: Vec<Member>,
    devices_per_account: usize,
    footprint: Footprint,
    /// Devices retired so far by [`Devices::renew_one`] (whose turn is next).
    renewals: u64,
}

impl Devices {
    /// The devices of probe `probe`: `accounts`, each to hold
    /// `devices_per_account` devices.
    pub(super) fn new(
        probe: &str,
        service: Arc<dyn ChatService>,
        accounts: Vec<Account>,
        devices_per_account: usize,
    ) -> Devices {
        let footprint = Footprint::new(probe, accounts.len());
        let members = accounts
            .into_iter()
            .map(|account| Member {
                account,
                slots: Vec::new(),
            })
            .collect();
        Devices {
            service,
            members,
            devices_per_account,
            footprint,
            renewals: 0,
        }
    }

    /// Gets every device ready for a run: logs in missing devices, reconnects
    /// lost push connections (reporting a loss not yet reported), reads
    /// away events left from earlier runs and, when needed, reconciles (see
    /// [`Devices::reconcile`]). `Err` when some device is not ready.
    pub(super) async fn prepare(&mut self, run: &mut Run) -> StepResult<()> {
        let mut ready = Ok(());
        for member_index in 0..self.members.len() {
            if let Err(recorded) = self.prepare_member(run, member_index).await {
                ready = Err(recorded);
            }
        }
        if self.footprint.needs_reconciling() {
            self.reconcile(run).await;
        }
        ready
    }

    /// Lists each account's groups and leaves every group of the probe that
    /// no kind keeps (left by earlier runs whose cleanup failed or was cut
    /// off, or by a predecessor killed mid-run), quietly: a failed cleanup was
    /// reported when it happened. Runs at the first run and whenever an
    /// account may hold such a group.
    pub(super) async fn reconcile(&mut self, run: &mut Run) {
        for member in 0..self.members.len() {
            let Some(slot) = self.members[member].slots.first() else {
                continue;
            };
            let device = slot.device.as_ref();
            let listed = match run.timed(Operation::Cleanup, device.list_groups()).await {
                Ok(listed) => listed,
                Err(_) => continue,
            };
            let mut left_behind = Vec::new();
            for group in listed {
                if self.footprint.is_kept(&group) {
                    continue;
                }
                let ours = self.footprint.may_hold(member, &group)
                    || run
                        .timed(Operation::Cleanup, device.read_group(&group))
                        .await
                        .is_ok_and(|info| self.footprint.is_ours(&info.settings.name));
                if !ours {
                    continue;
                }
                let leaving = run.timed(Operation::Cleanup, device.leave(&group)).await;
                if leaving.is_err_and(|err| !not_a_member(&err)) {
                    left_behind.push(group);
                }
            }
            self.footprint.listed(member, left_behind);
        }
    }

    /// `Err` (recorded as `cleanup`/`leave_rejected`) when one of `members`
    /// may not be in one more group: it holds
    /// [`super::footprint::GROUPS_MAX`] of the probe's groups already,
    /// because leaving them fails.
    pub(super) fn check_room(&self, run: &mut Run, members: Range<usize>) -> StepResult<()> {
        for member in members {
            if let Some(detail) = self.footprint.no_room(member, &self.user(member)) {
                return Err(run.fail(Operation::Cleanup, Reason::LeaveRejected, detail));
            }
        }
        Ok(())
    }

    /// Notes that `member` is (again) in `group`, or left it.
    pub(super) fn note_membership(&mut self, member: usize, group: &str, is_member: bool) {
        if is_member {
            self.footprint.holds(member, group);
        } else {
            self.footprint.left(member, group);
        }
    }

    /// Notes that a kind keeps `group` between runs: reconciliation leaves it alone.
    pub(super) fn keep(&mut self, group: &str) {
        self.footprint.set_kept(group, true);
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

    /// Retires one device, so that the next [`Devices::prepare`] logs a fresh
    /// one in and connects it: each call retires the oldest device of the
    /// next member in turn (fresh ones join at the end), so each device is
    /// renewed in turn. The driver calls it every second run while runs pass
    /// and every run after a failed one (see `RENEW_EVERY` in `context.rs`),
    /// so a fault on login or connect that begins while the probe runs shows
    /// within two runs, as it would to real phones, which reconnect all the
    /// time; and no connection that went silent stays in use for long.
    /// A push connection found lost on the retired device is reported as
    /// [`Devices::prepare`] would.
    pub(super) async fn renew_one(&mut self, run: &mut Run) {
        let Some(count) = u64::try_from(self.members.len()).ok().filter(|n| *n > 0) else {
            return;
        };
        let turn = usize::try_from(self.renewals % count).unwrap_or(0);
        self.renewals += 1;
        let member = &mut self.members[turn];
        if member.slots.is_empty() {
            return;
        }
        // Dropping the device closes its push connection.
        let mut retired = member.slots.remove(0);
        if !retired.push_lost {
            report_lost(run, &mut retired).await;
        }
    }

    /// The device `device` refers to.
    pub(super) fn device(&self, DeviceRef { member, device }: DeviceRef) -> &dyn Device {
        self.members[member].slots[device].device.as_ref()
    }

    /// The slot of the device `device` refers to, for reading its events.
    pub(super) fn slot_mut(&mut self, DeviceRef { member, device }: DeviceRef) -> &mut Slot {
        &mut self.members[member].slots[device]
    }

    /// The user id of member `member`.
    pub(super) fn user(&self, member: usize) -> String {
        self.members[member].user().to_string()
    }

    /// Every device of the listed members.
    pub(super) fn of_members(&self, members: impl IntoIterator<Item = usize>) -> Vec<DeviceRef> {
        members
            .into_iter()
            .flat_map(|member| {
                (0..self.members[member].slots.len())
                    .map(move |device| DeviceRef { member, device })
            })
            .collect()
    }

    /// Member 0 creates a group inviting `invited`, as a step of the `send`
    /// operation. Each of them counts as holding it from then on.
    pub(super) async fn create_group(
        &mut self,
        run: &mut Run,
        settings: &GroupSettings,
        invited: Range<usize>,
    ) -> StepResult<Created> {
        let users: Vec<String> = invited.clone().map(|member| self.user(member)).collect();
        let creating = self
            .device(DeviceRef::first(0))
            .create_group(settings, &users);
        let id = run.step(Operation::Send, creating).await?;
        for member in std::iter::once(0).chain(invited) {
            self.footprint.holds(member, &id);
        }
        Ok(Created {
            id,
            members: vec![0],
        })
    }

    /// Each of `joining` joins `group` from its first device, as steps of the
    /// `send` operation; those who joined are added to its members. `Err`
    /// when some join failed (after every one was tried).
    pub(super) async fn join_group(
        &self,
        run: &mut Run,
        group: &mut Created,
        joining: Range<usize>,
    ) -> StepResult<()> {
        let mut joined: StepResult<()> = Ok(());
        for member in joining {
            let join = self.device(DeviceRef::first(member)).join_group(&group.id);
            match run.step(Operation::Send, join).await {
                Ok(()) => group.members.push(member),
                Err(recorded) => joined = Err(recorded),
            }
        }
        joined
    }

    /// Every member still in `group` leaves it (steps of `cleanup`), so the
    /// service deletes it; a member that could not leave still holds it and
    /// the next run reconciles.
    pub(super) async fn clean_up(&mut self, run: &mut Run, group: Created) {
        self.footprint.set_kept(&group.id, false);
        for &member in &group.members {
            // At shutdown a member may have no device left (its login failed).
            let Some(slot) = self.members[member].slots.first() else {
                continue;
            };
            match run
                .timed(Operation::Cleanup, slot.device.leave(&group.id))
                .await
            {
                Ok(()) => self.footprint.left(member, &group.id),
                Err(err) if not_a_member(&err) => self.footprint.left(member, &group.id),
                Err(err) => {
                    run.fail(Operation::Cleanup, err.reason(), err.to_string());
                }
            }
        }
    }

    /// Empties the groups kept between runs, reconciles (leaving whatever
    /// else of the probe's the accounts hold) and disconnects every device
    /// (at shutdown).
    pub(super) async fn shut_down(&mut self, run: &mut Run, kept: Vec<Created>) {
        for group in kept {
            self.clean_up(run, group).await;
        }
        if self.footprint.needs_reconciling() {
            self.reconcile(run).await;
        }
        for (index, member) in self.members.iter().enumerate() {
            let left_behind = self.footprint.held_by(index).count();
            if left_behind > 0 {
                tracing::warn!(user = %member.user(), groups = left_behind,
                    "groups still held at shutdown: leaving them failed");
            }
        }
        for slot in self
            .members
            .iter_mut()
            .flat_map(|member| member.slots.iter_mut())
        {
            slot.device.disconnect().await;
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
