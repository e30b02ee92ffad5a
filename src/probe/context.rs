//! What every kind shares: the driver that prepares devices, runs a kind's
//! steps and cleans up, and the per-run context the steps work with.

use std::time::Instant;

use async_trait::async_trait;

use super::deliver::{Sent, Timing};
use super::devices::{Created, DeviceRef, Devices};
use super::run::{Run, StepResult};
use super::{Probe, ProbeSetup, ProbeSpec};
use crate::client::{GroupId, GroupSettings};
use crate::outcome::{Operation, ProbeOutcome};

/// The steps of one kind of probe, run once per probe run.
#[async_trait]
pub(super) trait Steps: Send {
    /// Runs the kind's steps; `Err` when a failure stopped them (it carries
    /// the proof that the failure is recorded).
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()>;

    /// Hands over the groups the kind keeps between runs, to be emptied at
    /// shutdown.
    fn retire(&mut self) -> Vec<Created> {
        Vec::new()
    }
}

/// One run's context, handed to a kind's steps: the devices, the run's
/// record, and the groups to clean up.
pub(super) struct RunContext<'a> {
    /// The probe's devices.
    pub(crate) devices: &'a mut Devices,
    /// The run's record.
    pub(crate) run: &'a mut Run,
    /// The probe's definition.
    pub(crate) spec: &'a ProbeSpec,
    /// Unique tag of this run, in every body, key and name it creates.
    pub(crate) tag: String,
    /// Groups created by this run, emptied after the steps.
    pub(crate) groups: Vec<Created>,
}

impl RunContext<'_> {
    /// Creates the run's group of the first `members` members (the first
    /// creates it, the others join); `Err` unless every one of them is in it.
    /// A group created at all is cleaned up after the run. None is created
    /// while one of the members holds too many groups of earlier runs
    /// ([`Devices::check_room`]).
    pub(super) async fn create_group(&mut self, members: usize) -> StepResult<GroupId> {
        self.devices.check_room(self.run, 0..members)?;
        let settings = self.group_settings();
        let mut created = self
            .devices
            .create_group(self.run, &settings, 1..members)
            .await?;
        let joined = self
            .devices
            .join_group(self.run, &mut created, 1..members)
            .await;
        let id = created.id.clone();
        self.groups.push(created);
        joined.map(|()| id)
    }

    /// The settings the run's group is created with.
    pub(super) fn group_settings(&self) -> GroupSettings {
        GroupSettings {
            name: format!("chatprobe {}", self.tag),
            notice: String::new(),
        }
    }

    /// Takes `group` out of this run's cleanup: the kind keeps it for later runs.
    pub(super) fn keep(&mut self, group: &str) -> Option<Created> {
        let index = self.groups.iter().position(|created| created.id == group)?;
        self.devices.keep(group);
        Some(self.groups.swap_remove(index))
    }

    /// Notes that `member` is (again) in `group` or is no longer, for cleanup.
    pub(super) fn set_member(&mut self, group: &str, member: usize, is_member: bool) {
        self.devices.note_membership(member, group, is_member);
        let Some(created) = self.groups.iter_mut().find(|created| created.id == group) else {
            if is_member {
                self.groups.push(Created {
                    id: group.to_string(),
                    members: vec![member],
                });
            }
            return;
        };
        created.members.retain(|&other| other != member);
        if is_member {
            created.members.push(member);
        }
    }

    /// Sends `count` messages from `from` to `group`, one after another, as
    /// steps of `send`; numbered from `first` in bodies and keys. A send that
    /// fails stops the burst and counts as a message expected on each of
    /// `recipients` devices and delivered on none.
    pub(super) async fn send_burst(
        &mut self,
        from: DeviceRef,
        group: &str,
        (first, count): (usize, usize),
        recipients: usize,
    ) -> StepResult<Vec<Sent>> {
        let mut sent = Vec::with_capacity(count);
        for index in first..first + count {
            let body = format!("chatprobe run {} message {index}", self.tag);
            let key = format!("{}-{index}", self.tag);
            let sent_at = Instant::now();
            let sending = self.devices.device(from).send(group, &key, &body);
            match self.run.step(Operation::Send, sending).await {
                Ok(id) => sent.push(Sent { id, body, sent_at }),
                Err(recorded) => {
                    self.run.count_messages(recipients as u64, 0);
                    return Err(recorded);
                }
            }
        }
        Ok(sent)
    }

    /// For each device of `member`: whether its list of groups has `group`
    /// (steps of `operation`).
    pub(super) async fn listed_on(
        &mut self,
        operation: Operation,
        member: usize,
        group: &str,
    ) -> StepResult<Vec<bool>> {
        let mut listed = Vec::new();
        for recipient in self.devices.of_members([member]) {
            let listing = self.devices.device(recipient).list_groups();
            let groups = self.run.step(operation, listing).await?;
            listed.push(groups.iter().any(|id| id == group));
        }
        Ok(listed)
    }

    /// The delivery deadline of something that started at `start`.
    pub(super) fn deadline(&self, start: Instant) -> Instant {
        start + self.spec.delivery_deadline
    }

    /// The delivery deadline and latency objective of messages.
    pub(super) fn timing(&self) -> Timing {
        Timing {
            deadline: self.spec.delivery_deadline,
            objective: self.spec.latency_objective,
        }
    }
}

/// While runs pass, one device is renewed (logged in and connected afresh)
/// every this many runs, after a failed run every run: a login or connect
/// fault that begins mid-stream is named within two runs either way, and a
/// healthy probe pays a login and a push connection only every other run.
const RENEW_EVERY: u64 = 2;

/// A probe: a kind's steps around the shared preparation and cleanup.
pub(super) struct Driver {
    spec: ProbeSpec,
    devices: Devices,
    steps: Box<dyn Steps>,
    instance: u32,
    runs: u64,
    /// The last run passed (false before the first).
    last_passed: bool,
}

impl Driver {
    /// A probe running `steps` with the devices of `setup`.
    pub(super) fn new(setup: ProbeSetup, steps: Box<dyn Steps>) -> Driver {
        let devices = Devices::new(
            &setup.spec.name,
            setup.service,
            setup.accounts,
            setup.spec.devices_per_account,
        );
        Driver {
            spec: setup.spec,
            devices,
            steps,
            instance: rand::random(),
            runs: 0,
            last_passed: false,
        }
    }
}

#[async_trait]
impl Probe for Driver {
    async fn run(&mut self) -> ProbeOutcome {
        let mut run = Run::start(self.spec.step_timeout);
        self.runs += 1;
        if !self.last_passed || self.runs.is_multiple_of(RENEW_EVERY) {
            self.devices.renew_one(&mut run).await;
        }
        if self.devices.prepare(&mut run).await.is_ok() {
            let mut cx = RunContext {
                devices: &mut self.devices,
                run: &mut run,
                spec: &self.spec,
                tag: format!("{}-{:08x}-{}", self.spec.name, self.instance, self.runs),
                groups: Vec::new(),
            };
            // Steps stopped early carry the proof that their failure is
            // recorded, so the outcome fails; cleanup runs either way.
            let _stopped_early: StepResult<()> = self.steps.steps(&mut cx).await;
            for group in std::mem::take(&mut cx.groups) {
                self.devices.clean_up(&mut run, group).await;
            }
        }
        let outcome = run.finish();
        self.last_passed = outcome.passed();
        outcome
    }

    async fn shutdown(&mut self) {
        let mut run = Run::start(self.spec.step_timeout);
        self.devices.shut_down(&mut run, self.steps.retire()).await;
        for failure in run.finish().failures {
            tracing::warn!(probe = %self.spec.name, operation = %failure.operation,
                reason = %failure.reason, detail = %failure.detail, "cleanup at shutdown failed");
        }
    }
}
