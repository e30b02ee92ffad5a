//! The state every request handler shares: the model behind its lock, the
//! fault engine, the timer, the config and the shutdown signal.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::config::BackendConfig;
use super::faults::FaultEngine;
use super::state::{Fanout, Model};
use super::timer::Timer;

/// State shared by every request handler.
pub(crate) struct Shared {
    /// The whole model; locked only for the synchronous part of an operation.
    pub(crate) model: Mutex<Model>,
    /// The installed faults.
    pub(crate) faults: FaultEngine,
    /// Timer for delayed and reordered pushes.
    pub(crate) timer: Timer,
    /// The backend's config.
    pub(crate) config: BackendConfig,
    /// Turns true when the backend shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The model, locked.
    pub(super) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a fan-out needs besides the model, as the faults are now.
    pub(super) fn fanout(&self) -> Fanout<'_> {
        Fanout {
            faults: self.faults.snapshot(),
            timer: &self.timer,
        }
    }

    /// Resolves when the backend shuts down.
    pub(super) async fn shutting_down(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means the handle is gone, which is a shutdown too.
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    }
}
