//! `chatprobe backend`: the mock group-chat service with fault injection, from
//! its config file and an optional faults file, until `shutdown`.

use std::path::Path;

use crate::backend::{self, BackendConfig, BackendError, load_faults};

/// `chatprobe backend`: load the config (and faults file), serve until
/// `shutdown` resolves.
pub async fn run(
    config_path: &Path,
    faults_path: Option<&Path>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BackendError> {
    let mut config = BackendConfig::load(config_path)?;
    if let Some(path) = faults_path {
        config.faults.extend(load_faults(path)?);
    }
    let handle = backend::start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    handle.shutdown().await
}
