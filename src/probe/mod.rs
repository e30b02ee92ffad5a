//! Probe kinds: one file a kind, each a sequence of timed steps that ends in a
//! [`ProbeOutcome`]. Probes know only the [`ChatService`] trait; timing between
//! runs, whole-run timeouts, metrics and status belong to the scheduler.

pub mod spec;

use std::sync::Arc;

use async_trait::async_trait;

use crate::client::{Account, ChatService};
use crate::outcome::ProbeOutcome;
pub use spec::{ProbeKind, ProbeSpec};

/// What a probe is built from.
pub struct ProbeContext {
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
