//! `chatprobe agent --config FILE`: the production agent. It serves its
//! endpoints, runs every probe against every target on schedule, reloads its
//! config and probe files on each reload request (SIGHUP; moving the
//! endpoints if `listen` changed; a bad new config is rejected and the old
//! one keeps running), and stops within [`DRAIN`](crate::shutdown::DRAIN)
//! once its shutdown future resolves (SIGINT or SIGTERM).

use std::future::Future;
use std::path::Path;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};

use crate::config::AgentConfig;
use crate::http;
use crate::record::LineStyle;
use crate::schedule::Job;
use crate::shutdown::ENDPOINTS_GRACE;
use crate::wiring::{self, Sinks};

/// Run the agent of the config at `config_path`, reloading it on each item of
/// `reloads`, until `shutdown` resolves; then stop within [`DRAIN`](crate::shutdown::DRAIN).
pub async fn run(
    config_path: &Path,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()>,
) -> anyhow::Result<()> {
    let mut config = wiring::load_config(config_path)?;
    let sinks = Sinks::new(LineStyle::Log)?;
    let mut server = sinks.serve(config.listen).await?;
    let mut scheduler = sinks.schedule(wiring::build_jobs(&config)?, wiring::timing(&config));
    tracing::info!(region = %config.region, probes = config.probes.len(), targets = config.targets.len(), "agent started");
    tokio::pin!(shutdown, reloads);
    loop {
        tokio::select! {
            Some(()) = reloads.next() => {
                if let Some(reloaded) = reload(config_path, &config).await {
                    wiring::stop_scheduler(scheduler).await;
                    sinks.retain_probes(&reloaded.jobs);
                    scheduler = sinks.schedule(reloaded.jobs, wiring::timing(&reloaded.config));
                    if let Some(listener) = reloaded.listener {
                        let moved = sinks.serve_on(listener);
                        std::mem::replace(&mut server, moved).stop(ENDPOINTS_GRACE).await;
                    }
                    config = reloaded.config;
                    tracing::info!("config reloaded");
                }
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("stopping: finishing probe runs and cleaning up");
    wiring::drain(scheduler, server).await;
    tracing::info!("stopped");
    Ok(())
}

/// What a SIGHUP loaded: the new config, its jobs, and the endpoints'
/// new listener when `listen` changed.
struct Reloaded {
    config: AgentConfig,
    jobs: Vec<Job>,
    listener: Option<tokio::net::TcpListener>,
}

/// The reloaded config, or `None` (logged) when it is invalid or its new
/// `listen` address cannot be bound.
async fn reload(config_path: &Path, current: &AgentConfig) -> Option<Reloaded> {
    tracing::info!(config = %config_path.display(), "SIGHUP: reloading config");
    match load_reloaded(config_path, current).await {
        Ok(reloaded) => Some(reloaded),
        Err(err) => {
            tracing::error!("reload rejected, the running config stays: {err:#}");
            None
        }
    }
}

async fn load_reloaded(config_path: &Path, current: &AgentConfig) -> anyhow::Result<Reloaded> {
    let config = wiring::load_config(config_path)?;
    let jobs = wiring::build_jobs(&config)?;
    let listener = if config.listen == current.listen {
        None
    } else {
        let listener = http::bind(config.listen)
            .await
            .with_context(|| format!("binding the new `listen` address {}", config.listen))?;
        Some(listener)
    };
    Ok(Reloaded {
        config,
        jobs,
        listener,
    })
}
