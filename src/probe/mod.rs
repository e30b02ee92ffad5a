//! Probe kinds: one file a kind, each a sequence of timed steps that ends in a
//! [`ProbeOutcome`]. Probes know only the [`ChatService`] trait; timing between
//! runs, whole-run timeouts, metrics and status belong to the scheduler.
//!
//! Every kind is one line of the registry below ([`probe_kinds!`]); its file
//! declares the rest (see [`kind::KindDef`]).

#[macro_use]
mod kind;

mod add_member;
mod context;
mod deliver;
mod device_sync;
mod devices;
mod edit_settings;
mod footprint;
mod group_message;
mod leave_group;
mod run;
mod spec;

probe_kinds! {
    /// A burst reaches every other member's every device exactly once, intact, in order.
    GroupMessage => group_message,
    /// Two devices of one account agree, by push and by catch-up sync.
    DeviceSync => device_sync,
    /// A leave is accepted, applied everywhere, seen by others, and stays done.
    LeaveGroup => leave_group,
    /// A name and notice change reads back and reaches every member's devices.
    EditSettings => edit_settings,
    /// An added member sees the group and its next message.
    AddMember => add_member,
}

use std::sync::Arc;

use async_trait::async_trait;

use crate::client::{Account, ChatService};
use crate::outcome::ProbeOutcome;
use context::Driver;
use kind::KindDef;
pub use spec::{ProbeSpec, SpecError};

/// What a probe is built from: its definition, the service and its accounts.
pub struct ProbeSetup {
    /// The probe's definition.
    pub spec: ProbeSpec,
    /// The service to probe.
    pub service: Arc<dyn ChatService>,
    /// The accounts the probe acts as (as many as [`accounts_needed`] says).
    pub accounts: Vec<Account>,
}

/// One probe instance. It keeps its logged-in devices and what earlier runs
/// left behind (groups left, to check they stay left) between runs.
#[async_trait]
pub trait Probe: Send {
    /// Run once: every step bounded by the spec's timeouts; never panics on
    /// anything the service does.
    async fn run(&mut self) -> ProbeOutcome;

    /// Leave and remove whatever the probe still holds on the service
    /// (called once at shutdown).
    async fn shutdown(&mut self);
}

/// Builds the probe `setup.spec` describes.
pub fn build(setup: ProbeSetup) -> Box<dyn Probe> {
    let steps = setup.spec.kind.steps();
    Box::new(Driver::new(setup, steps))
}

/// How many accounts a probe of `spec` acts as (as its kind says).
pub fn accounts_needed(spec: &ProbeSpec) -> usize {
    spec.kind.accounts_needed(spec)
}

/// Message deliveries one healthy run of a probe of `spec` waits for (its
/// outcome's `messages_expected`, as its kind says).
pub fn messages_expected(spec: &ProbeSpec) -> u64 {
    spec.kind.messages_expected(spec)
}
