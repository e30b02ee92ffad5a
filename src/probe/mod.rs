//! Probe kinds: one file a kind, each a sequence of timed steps that ends in a
//! [`ProbeOutcome`]. Probes know only the [`ChatService`] trait; timing between
//! runs, whole-run timeouts, metrics and status belong to the scheduler.

mod add_member;
mod context;
pub mod deliver;
mod device_sync;
mod edit_settings;
pub mod fleet;
mod group_message;
mod leave_group;
pub mod run;
pub mod spec;

use std::sync::Arc;

use async_trait::async_trait;

use crate::client::{Account, ChatService};
use crate::outcome::ProbeOutcome;
use context::{Driver, Steps};
pub use spec::{ProbeKind, ProbeSpec};

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
    let steps: Box<dyn Steps> = match setup.spec.kind {
        ProbeKind::GroupMessage => Box::new(group_message::GroupMessage::default()),
        ProbeKind::DeviceSync => Box::new(device_sync::DeviceSync),
        ProbeKind::LeaveGroup => Box::new(leave_group::LeaveGroup::default()),
        ProbeKind::EditSettings => Box::new(edit_settings::EditSettings),
        ProbeKind::AddMember => Box::new(add_member::AddMember),
    };
    Box::new(Driver::new(setup, steps))
}

/// How many accounts a probe of `spec` acts as: one per group member (the
/// `add_member` kind adds the last of them during the run).
pub fn accounts_needed(spec: &ProbeSpec) -> usize {
    spec.group_size
}
