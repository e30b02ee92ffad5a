//! Synthetic agents for `chatprobe bench status-page`: one `/metrics`
//! endpoint per region on 127.0.0.1, written by the agent's own exposition
//! code ([`MetricsRegistry`]), holding N targets × P probes whose runs are
//! recorded on a schedule, every cell once an interval, spread over it, as
//! real agents' runs are. What they serve is what a real agent serves, but
//! no probe runs: the benchmark measures the page, not the probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::task::JoinSet;

use crate::metrics::MetricsRegistry;
use crate::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};

/// How the synthetic fleet is made.
#[derive(Debug, Clone)]
pub(super) struct FleetShape {
    /// Targets (shards) each agent probes.
    pub(super) targets: usize,
    /// The probes each agent runs against every target.
    pub(super) probes: Vec<String>,
    /// One agent per region.
    pub(super) regions: Vec<String>,
    /// Targets failing in the last region (every probe): sends answered with errors.
    pub(super) failing: usize,
    /// Time between two runs of one cell.
    pub(super) interval: Duration,
}

impl FleetShape {
    /// Cells in the whole fleet.
    pub(super) fn cells(&self) -> usize {
        self.targets * self.probes.len() * self.regions.len()
    }

    /// Whether the cell of `target` (by index) in `region` fails.
    fn fails(&self, region: &str, target: usize) -> bool {
        self.regions.last().is_some_and(|last| last == region) && target < self.failing
    }
}

/// The name of the target with index `index`.
pub(super) fn target_name(index: usize) -> String {
    format!("shard-{index:05}")
}

/// The running agents: (region, address); they stop when it drops.
pub(super) struct SyntheticFleet {
    /// Each agent's region and `/metrics` address.
    pub(super) agents: Vec<(String, SocketAddr)>,
    _tasks: JoinSet<()>,
}

/// Starts one synthetic agent per region of `shape`.
pub(super) async fn start(shape: &FleetShape) -> anyhow::Result<SyntheticFleet> {
    let mut tasks = JoinSet::new();
    let mut agents = Vec::new();
    for region in &shape.regions {
        let registry = Arc::new(MetricsRegistry::default());
        let keys: Vec<(ProbeKey, bool)> = (0..shape.targets)
            .flat_map(|target| shape.probes.iter().map(move |probe| (target, probe)))
            .map(|(target, probe)| {
                let key = ProbeKey {
                    region: region.clone(),
                    target: target_name(target),
                    probe: probe.clone(),
                };
                (key, shape.fails(region, target))
            })
            .collect();
        for (key, _) in &keys {
            registry.probes.init_probe(key);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a synthetic agent")?;
        let addr = listener.local_addr()?;
        let served = Arc::clone(&registry);
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let registry = Arc::clone(&served);
                async move {
                    tokio::task::spawn_blocking(move || registry.render())
                        .await
                        .unwrap_or_default()
                }
            }),
        );
        tasks.spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!("a synthetic agent stopped serving: {error}");
            }
        });
        tasks.spawn(record_runs(registry, keys, shape.interval));
        agents.push((region.clone(), addr));
    }
    Ok(SyntheticFleet {
        agents,
        _tasks: tasks,
    })
}

/// Records a run of each cell once every `interval`, cells spread over it
/// a second at a time.
async fn record_runs(
    registry: Arc<MetricsRegistry>,
    keys: Vec<(ProbeKey, bool)>,
    interval: Duration,
) {
    let slots = interval.as_secs().max(1) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    for tick in 0usize.. {
        ticker.tick().await;
        let slot = tick % slots;
        for (key, fails) in keys.iter().skip(slot).step_by(slots) {
            registry.probes.observe(key, &outcome(*fails));
        }
    }
}

/// A run that just finished: passed, or failed with sends answered with errors.
fn outcome(fails: bool) -> ProbeOutcome {
    let duration = Duration::from_millis(400);
    let failures = match fails {
        true => vec![Failure {
            operation: Operation::Send,
            reason: Reason::HttpError,
            detail: "synthetic: the send was answered 503".to_owned(),
        }],
        false => Vec::new(),
    };
    ProbeOutcome {
        started_at: SystemTime::now() - duration,
        duration,
        steps: Vec::new(),
        failures,
        messages_expected: 0,
        messages_delivered: 0,
    }
}
