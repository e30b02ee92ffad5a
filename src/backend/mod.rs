//! The mock group-chat service (`chatprobe backend`): HTTP JSON API, WebSocket
//! push, catch-up sync and fault injection. The wire format is
//! [`crate::protocol`]; `docs/api.md` documents routes, statuses and faults.

mod admin;
mod api;
pub mod config;
pub mod delivery;
pub mod faults;
mod push;
pub mod state;
pub mod timer;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::BackendConfig;
use faults::FaultEngine;
use state::{Fanout, Model};
use timer::Timer;

use crate::yaml::FileError;

/// Why the backend could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A config or faults file is invalid.
    #[error(transparent)]
    File(#[from] FileError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The timer thread could not start, or serving failed.
    #[error("backend I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every request handler.
pub(crate) struct Shared {
    model: Mutex<Model>,
    faults: FaultEngine,
    timer: Timer,
    config: BackendConfig,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fanout(&self) -> Fanout<'_> {
        Fanout {
            faults: self.faults.snapshot(),
            timer: &self.timer,
        }
    }

    /// Resolves when the backend shuts down.
    async fn shutting_down(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means the handle is gone, which is a shutdown too.
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    }
}

/// A running backend.
pub struct BackendHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl BackendHandle {
    /// The address the backend listens on (with the real port when config said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace the active faults; their windows start now.
    pub fn set_faults(&self, faults: Vec<faults::Fault>) {
        self.shared.faults.replace(faults, Instant::now());
    }

    /// Stop accepting, close push connections, answer held requests, and wait for the server.
    pub async fn shutdown(self) -> Result<(), BackendError> {
        let _ = self.stop.send(true);
        match self.server.await {
            Ok(result) => Ok(result?),
            Err(join_error) => Err(BackendError::Io(std::io::Error::other(join_error))),
        }
    }
}

/// Bind `config.listen` and serve in the background.
pub async fn start(config: BackendConfig) -> Result<BackendHandle, BackendError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| BackendError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        model: Mutex::new(Model::new(&config)),
        faults: FaultEngine::new(config.faults.clone(), started),
        timer: Timer::start(&tokio::runtime::Handle::current())?,
        config,
        shutdown,
    });
    let router = api::router(shared.clone());
    let stopping = shared.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopping.shutting_down().await })
            .await
    });
    tracing::info!(%addr, "listening on {addr}");
    Ok(BackendHandle {
        addr,
        shared,
        stop,
        server,
    })
}

/// `chatprobe backend`: load the config (and faults file), serve until
/// `shutdown` resolves.
pub async fn run(
    config_path: &Path,
    faults_path: Option<&Path>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BackendError> {
    let mut config = BackendConfig::load(config_path)?;
    if let Some(path) = faults_path {
        config.faults.extend(faults::load_faults(path)?);
    }
    let handle = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    handle.shutdown().await
}
