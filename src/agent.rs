//! `chatprobe agent --config FILE`: the production agent. It serves its
//! endpoints, runs every probe against every target on schedule, reloads its
//! config and probe files on SIGHUP (moving the endpoints if `listen`
//! changed; a bad new config is rejected and the old one keeps running), and
//! drains within [`DRAIN`] on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

use crate::client::matrix::{MatrixOptions, MatrixService};
use crate::client::mock::MockService;
use crate::client::{Account, ChatService};
use crate::config::{AgentConfig, TargetConfig};
use crate::http::{self, Endpoints};
use crate::metrics::MetricsRegistry;
use crate::outcome::ProbeKey;
use crate::probe::{self, ProbeContext};
use crate::record::{LineStyle, Recorder};
use crate::schedule::{self, Job, Readiness, Scheduler, Timing};
use crate::status::StatusBoard;

/// Longest time from a stop signal to exit.
pub const DRAIN: Duration = Duration::from_secs(5);

/// How long the endpoints may finish answering when they stop or move.
const ENDPOINTS_GRACE: Duration = Duration::from_millis(500);

/// Run the agent until SIGINT or SIGTERM; the exit status says whether it
/// started and stopped cleanly.
pub fn main(config: &Path) -> ExitCode {
    block_on(probe_runtime(), run(config.to_path_buf()))
}

/// The runtime probes run on: one thread. An agent mostly waits; on one
/// thread a probe run costs the least CPU (no wake-ups handed between
/// threads), and a push frame is time-stamped by the thread that was already
/// waiting for it, not by a second one woken up to take over.
pub fn probe_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Run a command's future on `runtime`; an error (also one building the
/// runtime) is printed and makes the exit status non-zero.
pub fn block_on(
    runtime: std::io::Result<Runtime>,
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load `config_path`, every error on its own line.
pub fn load_config(config_path: &Path) -> anyhow::Result<AgentConfig> {
    AgentConfig::load(config_path).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid config:\n  {}", lines.join("\n  "))
    })
}

/// The service client for `target`, as seen from `region`.
pub fn service(target: &TargetConfig, region: &str) -> anyhow::Result<Arc<dyn ChatService>> {
    match target {
        TargetConfig::Mock(mock) => {
            let service = MockService::new(&mock.url.0, region, mock.request_timeout)
                .with_context(|| format!("target `{}`", target.name()))?;
            Ok(Arc::new(service))
        }
        TargetConfig::Matrix(matrix) => {
            let service = MatrixService::new(MatrixOptions {
                homeserver_url: matrix.homeserver.0.clone(),
                region: region.to_string(),
                request_timeout: matrix.request_timeout,
                register: matrix.register,
            })
            .with_context(|| format!("target `{}`", target.name()))?;
            Ok(Arc::new(service))
        }
    }
}

/// One job per probe × target of `config`, each probe with its own accounts.
pub fn build_jobs(config: &AgentConfig) -> anyhow::Result<Vec<Job>> {
    crate::client::init_tls();
    let mut jobs = Vec::new();
    for target in &config.targets {
        let service = service(target, &config.region)?;
        for loaded in &config.probes {
            let spec = loaded.spec.clone();
            let accounts = (0..probe::accounts_needed(&spec))
                .map(|index| Account {
                    user: target
                        .accounts()
                        .account_name(&config.region, &spec.name, index),
                    password: target.accounts().password.clone(),
                })
                .collect();
            jobs.push(Job {
                key: ProbeKey {
                    region: config.region.clone(),
                    target: target.name().to_string(),
                    probe: spec.name.clone(),
                },
                interval: spec.interval,
                timeout_operation: schedule::timeout_operation(spec.kind),
                probe: probe::build(ProbeContext {
                    spec,
                    service: Arc::clone(&service),
                    accounts,
                }),
            });
        }
    }
    Ok(jobs)
}

/// The scheduler timing of `config`.
pub fn timing(config: &AgentConfig) -> Timing {
    Timing {
        jitter: config.jitter,
        run_timeout: config.run_timeout,
    }
}

/// What every run is recorded into, and what the endpoints read.
pub struct Sinks {
    /// The process's metrics.
    pub metrics: Arc<MetricsRegistry>,
    /// The status page's board.
    pub board: Arc<StatusBoard>,
    /// The recorder feeding both.
    pub recorder: Arc<Recorder>,
    /// `/readyz`.
    pub readiness: Readiness,
}

impl Sinks {
    /// Fresh sinks writing one line per run in `style`.
    pub fn new(style: LineStyle) -> anyhow::Result<Sinks> {
        let metrics = Arc::new(MetricsRegistry::new().context("registering metrics")?);
        let board = Arc::new(StatusBoard::new());
        let recorder = Arc::new(Recorder::new(
            metrics.probes.clone(),
            Arc::clone(&board),
            style,
        ));
        Ok(Sinks {
            metrics,
            board,
            recorder,
            readiness: Readiness::default(),
        })
    }

    /// `/metrics`, `/healthz`, `/readyz`, and the status page on `/` and `/api/status`.
    pub fn router(&self) -> axum::Router {
        http::router(Endpoints {
            metrics: Arc::clone(&self.metrics),
            readiness: self.readiness.clone(),
        })
        .merge(crate::status::router(Arc::clone(&self.board)))
    }
}

async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let mut config = load_config(&config_path)?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let sinks = Sinks::new(LineStyle::Log)?;
    let listener = http::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let mut server = http::spawn(listener, sinks.router());
    let mut scheduler = start(&config, build_jobs(&config)?, &sinks);
    tracing::info!(region = %config.region, probes = config.probes.len(), targets = config.targets.len(), "agent started");
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some(reloaded) = reload(&config_path, &config).await {
                    scheduler.shutdown(DRAIN).await;
                    sinks.metrics.probes.retain_probes(reloaded.jobs.iter().map(|job| &job.key));
                    scheduler = start(&reloaded.config, reloaded.jobs, &sinks);
                    if let Some(listener) = reloaded.listener {
                        let moved = http::spawn(listener, sinks.router());
                        std::mem::replace(&mut server, moved).stop(ENDPOINTS_GRACE).await;
                    }
                    config = reloaded.config;
                    tracing::info!("config reloaded");
                }
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping: finishing probe runs and cleaning up");
    let aborted = scheduler.shutdown(DRAIN - Duration::from_millis(500)).await;
    if aborted > 0 {
        tracing::warn!(
            aborted,
            "probes still busy at the drain deadline were stopped"
        );
    }
    server.stop(ENDPOINTS_GRACE).await;
    tracing::info!("stopped");
    Ok(())
}

fn start(config: &AgentConfig, jobs: Vec<Job>, sinks: &Sinks) -> Scheduler {
    Scheduler::start(
        jobs,
        timing(config),
        Arc::clone(&sinks.recorder),
        sinks.readiness.clone(),
    )
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
    let config = load_config(config_path)?;
    let jobs = build_jobs(&config)?;
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
