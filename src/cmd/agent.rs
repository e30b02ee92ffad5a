//! `chatprobe agent --config FILE`: the production agent. It raises its
//! open-files limit, serves its endpoints, runs every probe against every
//! target on schedule, follows its target files (read again every
//! `target_files_refresh`: targets added start, targets removed stop and
//! clean up, the others run on), reloads its config and probe files on each
//! reload request (SIGHUP; moving the endpoints if `listen` changed; a bad
//! new config is rejected and the old one keeps running), and stops within
//! [`DRAIN`](crate::shutdown::DRAIN) once its shutdown future resolves
//! (SIGINT or SIGTERM).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};
use tokio::time::{Interval, MissedTickBehavior};

use crate::cmd::wiring::{self, Sinks};
use crate::config::{AgentConfig, TargetConfig, TargetSet};
use crate::endpoints;
use crate::open_files::{self, FileLimit};
use crate::record::LineStyle;
use crate::remote_write::RemoteWrite;
use crate::schedule::{Job, Scheduler};
use crate::shutdown::{ENDPOINTS_GRACE, PROBE_DRAIN};

/// Run the agent of the config at `config_path`, reloading it on each item of
/// `reloads`, until `shutdown` resolves; then stop within [`DRAIN`](crate::shutdown::DRAIN).
pub async fn run(
    config_path: &Path,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()>,
) -> anyhow::Result<()> {
    let mut config = wiring::load_config(config_path)?;
    let file_limit = open_files::raise_and_log();
    open_files::warn_if_short(file_limit.as_ref(), &config);
    let sinks = Sinks::new(LineStyle::Log)?;
    let mut server = sinks.serve(config.listen).await?;
    let mut push = RemoteWrite::start(&config, Arc::clone(&sinks.metrics))?;
    let mut scheduler = sinks.schedule(wiring::build_jobs(&config)?, wiring::timing(&config));
    sinks.set_targets(&config);
    let mut refresh = refresh_timer(&config);
    tracing::info!(region = %config.region, probes = config.probes.len(), targets = scheduler_targets(&config), target_files = config.targets.files().count(), "agent started");
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
                    push.apply(&config);
                    sinks.set_targets(&config);
                    refresh = refresh_timer(&config);
                    open_files::warn_if_short(file_limit.as_ref(), &config);
                    tracing::info!(targets = scheduler_targets(&config), "config reloaded");
                }
            }
            _ = refresh.tick(), if config.targets.has_patterns() => {
                follow_target_files(&mut config, &mut scheduler, &sinks, file_limit.as_ref());
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("stopping: finishing probe runs and cleaning up");
    let flush_by = tokio::time::Instant::now() + PROBE_DRAIN;
    wiring::stop_scheduler(scheduler).await;
    push.stop(flush_by).await;
    server.stop(ENDPOINTS_GRACE).await;
    tracing::info!("stopped");
    Ok(())
}

/// Ticks every `target_files_refresh` of `config`, the first one interval from now.
fn refresh_timer(config: &AgentConfig) -> Interval {
    let period = config.target_files_refresh;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

/// How many targets `config` probes.
fn scheduler_targets(config: &AgentConfig) -> usize {
    config.targets.placed().count()
}

/// Reads the target files of `config` again; when its targets changed,
/// stops the probes of the targets gone (they clean up in the background;
/// their series go), starts those of the new ones, and exports the targets'
/// info. A target whose fields changed is stopped and started again; one
/// whose `labels` alone changed runs on.
fn follow_target_files(
    config: &mut AgentConfig,
    scheduler: &mut Scheduler,
    sinks: &Sinks,
    file_limit: Option<&FileLimit>,
) {
    let before = config.targets.clone();
    if !config.targets.poll() {
        return;
    }
    let change = TargetChange::between(&before, &config.targets);
    let jobs = match wiring::target_jobs(config, change.started.iter().copied()) {
        Ok(jobs) => jobs,
        Err(err) => {
            tracing::error!("target files: change refused, the previous targets stay: {err:#}");
            config.targets = before;
            return;
        }
    };
    let started: Vec<String> = change
        .started
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    let stopped: BTreeSet<&str> = change.stopped.iter().copied().collect();
    tracing::info!(
        started = %started.join(","),
        stopped = %change.stopped.join(","),
        targets = scheduler_targets(config),
        "target files changed"
    );
    // Not a shutdown: a removed target's probes may take as long as a run
    // to leave their groups (a scrape or a slow service must not cut that short).
    scheduler.remove_targets(&stopped, config.run_timeout);
    scheduler.add(jobs);
    sinks.set_targets(config);
    open_files::warn_if_short(file_limit, config);
}

/// The targets to stop and to start when a target set changes.
struct TargetChange<'a> {
    /// Names of targets gone, or probed differently now.
    stopped: Vec<&'a str>,
    /// Targets new, or probed differently now.
    started: Vec<&'a TargetConfig>,
}

impl<'a> TargetChange<'a> {
    fn between(before: &'a TargetSet, after: &'a TargetSet) -> TargetChange<'a> {
        let by_name = |set: &'a TargetSet| -> BTreeMap<&'a str, &'a TargetConfig> {
            set.placed()
                .map(|placed| (placed.target.name(), &placed.target))
                .collect()
        };
        let (old, new) = (by_name(before), by_name(after));
        let alike = |target: &TargetConfig, others: &BTreeMap<&str, &TargetConfig>| {
            others
                .get(target.name())
                .is_some_and(|other| other.probed_alike(target))
        };
        TargetChange {
            stopped: old
                .iter()
                .filter(|(_, target)| !alike(target, &new))
                .map(|(name, _)| *name)
                .collect(),
            started: new
                .values()
                .filter(|target| !alike(target, &old))
                .copied()
                .collect(),
        }
    }
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
        let listener = endpoints::bind(config.listen)
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
