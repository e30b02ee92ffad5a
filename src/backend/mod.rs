//! The mock group-chat service (`chatprobe backend`): HTTP JSON API, WebSocket
//! push, catch-up sync and fault injection. The wire format is
//! [`crate::protocol`]; `docs/mock-backend.md` documents routes, statuses and faults.
//!
//! Modules, each importing only modules listed after it: `admin`, `routes` and
//! `push` (routes); `gate` (authentication and the fault gate); `shared`
//! (handler state); `wire` (error answers, JSON, headers); `state` (the model);
//! `delivery` (push fan-out); `distort` (what `drop`, `duplicate`, `reorder`,
//! `corrupt` and `stale` do to data); `event` (an event encoded once);
//! `config`; `faults` (spec, validation, firing); `timer`.

mod admin;
mod config;
mod delivery;
mod distort;
mod event;
mod faults;
mod gate;
mod push;
mod routes;
mod shared;
mod state;
mod timer;
mod verdicts;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::BackendConfig;
use faults::FaultEngine;
pub use faults::{APPLICABILITY, Effect, FaultPoint, load_faults};
use shared::Shared;
use state::Model;
use timer::Timer;
pub use verdicts::{Kinds, Report, VERDICTS, Verdict};

use crate::yaml::FileErrors;

/// Why the backend could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A config or faults file is invalid (every error).
    #[error(transparent)]
    File(#[from] FileErrors),
    /// The config given to [`start`] is invalid.
    #[error("invalid backend config: field `{field}` {message}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
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

/// A running backend.
pub struct BackendHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl BackendHandle {
    /// The address the backend listens on (with the real port when config said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

/// Validate `config`, bind `config.listen` and serve in the background.
pub async fn start(config: BackendConfig) -> Result<BackendHandle, BackendError> {
    config
        .validate()
        .map_err(|(field, message)| BackendError::Config { field, message })?;
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
        timer: Timer::start(
            &tokio::runtime::Handle::current(),
            config.max_delayed_deliveries,
        )?,
        config,
        shutdown,
    });
    let router = router(shared.clone());
    let stopping = shared.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopping.shutting_down().await })
            .await
    });
    tracing::info!(%addr, "listening on {addr}");
    Ok(BackendHandle { addr, stop, server })
}

/// Every route of the service, admin included.
fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.max_body_bytes;
    Router::new()
        .merge(routes::routes())
        .merge(push::routes())
        .merge(admin::routes())
        .fallback(wire::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}
