//! `chatprobe demo`: the mock backend and agents for three regions in one
//! process, one `/metrics` and status page for all, a line per probe run on
//! stderr, and optionally a fault scenario replayed from start.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::backend::{self, BackendConfig};
use crate::client::ProtocolConfig;
use crate::client::mock::MockTarget;
use crate::cmd::wiring::{self, Sinks};
use crate::config::{
    AccountsConfig, AgentConfig, DEFAULT_JITTER, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RUN_TIMEOUT,
    DEFAULT_TARGET_FILES_REFRESH, Label, PlainHttpUrl, TargetConfig, TargetLabels, TargetSet,
};
use crate::record::LineStyle;
use crate::schedule::Timing;

/// The demo's regions.
pub(crate) const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// First part of the demo's account names (`demo-{region}-{probe}-{i}`).
const ACCOUNT_PREFIX: &str = "demo";

/// The password of the demo's accounts on its own mock backend.
const ACCOUNT_PASSWORD: &str = "demo-password";

/// Every region's scheduling: the config's defaults.
const TIMING: Timing = Timing {
    jitter: DEFAULT_JITTER,
    run_timeout: DEFAULT_RUN_TIMEOUT,
};

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where `/metrics` and the status page are served.
    pub listen: SocketAddr,
    /// Interval of every probe.
    pub interval: Duration,
    /// A faults file replayed with times relative to start.
    pub scenario: Option<PathBuf>,
}

/// Run the demo until `shutdown` resolves, then stop the agents, the
/// endpoints and the backend. The backend and three agents share one
/// process, so this wants a multi-threaded runtime.
pub async fn run(options: DemoOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::client::init_tls();
    let mut backend_config = BackendConfig::ephemeral();
    if let Some(scenario) = &options.scenario {
        backend_config.faults = backend::load_faults(scenario)?;
        tracing::info!(scenario = %scenario.display(), faults = backend_config.faults.len(), "scenario loaded");
    }
    let backend = backend::start(backend_config)
        .await
        .context("starting the mock backend")?;
    let sinks = Sinks::new(LineStyle::Summary)?;
    let server = sinks.serve(options.listen).await?;
    let url = format!("http://{}", backend.addr());
    let mut jobs = Vec::new();
    for region in REGIONS {
        jobs.extend(wiring::build_jobs(&region_config(
            region,
            &url,
            options.interval,
        )?)?);
    }
    let scheduler = sinks.schedule(jobs, TIMING);
    eprintln!(
        "demo: mock backend on {url}; metrics and status page on http://{}/ (Ctrl-C stops)",
        options.listen
    );
    shutdown.await;
    wiring::drain(scheduler, server).await;
    backend
        .shutdown()
        .await
        .context("stopping the mock backend")?;
    Ok(())
}

/// The agent config of one demo region: the backend at `url`, every shipped
/// probe every `interval`, config defaults otherwise.
fn region_config(region: &str, url: &str, interval: Duration) -> anyhow::Result<AgentConfig> {
    let mut probes = crate::config::shipped_probes()?;
    for probe in &mut probes {
        probe.spec.interval = interval;
    }
    Ok(AgentConfig {
        path: PathBuf::from("demo"),
        region: region.to_string(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        targets: TargetSet::built(
            Path::new("demo"),
            vec![TargetConfig {
                name: Label("mock".into()),
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                accounts: AccountsConfig {
                    prefix: ACCOUNT_PREFIX.into(),
                    password: ACCOUNT_PASSWORD.into(),
                },
                protocol: ProtocolConfig::Mock(MockTarget {
                    url: PlainHttpUrl(url.to_string()),
                }),
                labels: TargetLabels::default(),
            }],
        ),
        target_files_refresh: DEFAULT_TARGET_FILES_REFRESH,
        probes,
        jitter: TIMING.jitter,
        run_timeout: TIMING.run_timeout,
        remote_write: Vec::new(),
    })
}
