//! How the commands that run probes (`agent`, `once`, `demo`, `bench agent`)
//! put the pieces together: the runtime probes run on, a config's jobs and
//! timing, the sinks every run is recorded into, their endpoints, and the
//! stop of a scheduler and its endpoints within the drain.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::runtime::Runtime;

use crate::client::{Account, ChatService, Reach};
use crate::config::{AgentConfig, TargetConfig};
use crate::endpoints::{self, Endpoints, Server};
use crate::metrics::MetricsRegistry;
use crate::outcome::ProbeKey;
use crate::probe::{self, ProbeSetup, ProbeSpec};
use crate::record::{LineStyle, Recorder};
use crate::schedule::{Job, ProbeBuilder, Readiness, Scheduler, Timing};
use crate::shutdown::{ENDPOINTS_GRACE, PROBE_DRAIN};
use crate::status::StatusBoard;

/// The runtime probes run on: one thread. An agent mostly waits; on one
/// thread a probe run costs the least CPU (no wake-ups handed between
/// threads), and a push frame is time-stamped by the thread that was already
/// waiting for it, not by a second one woken up to take over.
pub fn probe_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Load `config_path`, every error on its own line.
pub(crate) fn load_config(config_path: &Path) -> anyhow::Result<AgentConfig> {
    AgentConfig::load(config_path).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid config:\n  {}", lines.join("\n  "))
    })
}

/// One job per probe × target of `config`, each probe with its own accounts.
pub(crate) fn build_jobs(config: &AgentConfig) -> anyhow::Result<Vec<Job>> {
    target_jobs(config, config.targets.placed().map(|placed| &placed.target))
}

/// One job per probe of `config` × target of `targets`, each probe with its own accounts.
pub(crate) fn target_jobs<'a>(
    config: &AgentConfig,
    targets: impl IntoIterator<Item = &'a TargetConfig>,
) -> anyhow::Result<Vec<Job>> {
    crate::client::init_tls();
    let mut jobs = Vec::new();
    for target in targets {
        let reach = Reach {
            region: &config.region,
            request_timeout: target.request_timeout,
        };
        let service = target
            .protocol
            .build(reach)
            .map_err(|err| anyhow::anyhow!(err))
            .with_context(|| format!("target `{}`", target.name()))?;
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
            let key = ProbeKey {
                region: config.region.clone(),
                target: target.name().to_string(),
                probe: spec.name.clone(),
            };
            jobs.push(probe_job(key, spec, Arc::clone(&service), accounts));
        }
    }
    Ok(jobs)
}

/// The job of the probe `key` of `spec`, acting as `accounts` on `service`.
pub(crate) fn probe_job(
    key: ProbeKey,
    spec: ProbeSpec,
    service: Arc<dyn ChatService>,
    accounts: Vec<Account>,
) -> Job {
    let (interval, timeout_operation) = (spec.interval, spec.kind.main_operation());
    let rebuild = rebuilder(spec, service, accounts);
    Job {
        key,
        interval,
        timeout_operation,
        probe: rebuild(),
        rebuild,
    }
}

/// Builds the probe of `spec` afresh each time it is called.
fn rebuilder(
    spec: ProbeSpec,
    service: Arc<dyn ChatService>,
    accounts: Vec<Account>,
) -> ProbeBuilder {
    Box::new(move || {
        probe::build(ProbeSetup {
            spec: spec.clone(),
            service: Arc::clone(&service),
            accounts: accounts.clone(),
        })
    })
}

/// The scheduler timing of `config`.
pub(crate) fn timing(config: &AgentConfig) -> Timing {
    Timing {
        jitter: config.jitter,
        run_timeout: config.run_timeout,
    }
}

/// What every run is recorded into, and what the endpoints read.
pub(crate) struct Sinks {
    /// The process's metrics.
    pub(crate) metrics: Arc<MetricsRegistry>,
    /// The status page's board.
    pub(crate) board: Arc<StatusBoard>,
    /// The recorder feeding both.
    pub(crate) recorder: Arc<Recorder>,
    /// `/readyz`.
    pub(crate) readiness: Readiness,
}

impl Sinks {
    /// Fresh sinks writing one line per run in `style`.
    pub(crate) fn new(style: LineStyle) -> anyhow::Result<Sinks> {
        let metrics = Arc::new(MetricsRegistry::default());
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
    pub(crate) fn router(&self) -> axum::Router {
        endpoints::router(Endpoints {
            metrics: Arc::clone(&self.metrics),
            readiness: self.readiness.clone(),
        })
        .merge(crate::status::router(Arc::clone(&self.board)))
    }

    /// Bind `listen` and serve [`Sinks::router`] there.
    pub(crate) async fn serve(&self, listen: SocketAddr) -> anyhow::Result<Server> {
        let listener = endpoints::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(self.serve_on(listener))
    }

    /// Serve [`Sinks::router`] on an already bound `listener`.
    pub(crate) fn serve_on(&self, listener: tokio::net::TcpListener) -> Server {
        endpoints::spawn(listener, self.router())
    }

    /// Run `jobs` on schedule, recording into these sinks.
    pub(crate) fn schedule(&self, jobs: Vec<Job>, timing: Timing) -> Scheduler {
        Scheduler::start(
            jobs,
            timing,
            Arc::clone(&self.recorder),
            self.readiness.clone(),
        )
    }

    /// Exports `chatprobe_target_info` for every target of `config`, and
    /// only for those.
    pub(crate) fn set_targets(&self, config: &AgentConfig) {
        let targets = config.targets.placed().map(|placed| {
            let target = &placed.target;
            (target.name(), &target.labels.0)
        });
        self.metrics.targets.set_region(&config.region, targets);
    }

    /// Forgets the series and status cells of every probe not among `jobs`
    /// (those a reload removed).
    pub(crate) fn retain_probes(&self, jobs: &[Job]) {
        let kept = || jobs.iter().map(|job| &job.key);
        self.metrics.probes.retain_probes(kept());
        self.board.retain_probes(kept());
    }
}

/// Stop `scheduler` (its probes get [`PROBE_DRAIN`] to finish and clean up),
/// then `server` (within [`ENDPOINTS_GRACE`]): within the drain in all.
pub(crate) async fn drain(scheduler: Scheduler, server: Server) {
    stop_scheduler(scheduler).await;
    server.stop(ENDPOINTS_GRACE).await;
}

/// Stop `scheduler`, giving its probes [`PROBE_DRAIN`] to finish and clean
/// up; a warning says how many were still busy then.
pub(crate) async fn stop_scheduler(scheduler: Scheduler) {
    let aborted = scheduler.shutdown(PROBE_DRAIN).await;
    if aborted > 0 {
        tracing::warn!(
            aborted,
            "probes still busy at the drain deadline were stopped"
        );
    }
}
