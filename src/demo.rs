//! `chatprobe demo`: the mock backend and agents for three regions in one
//! process, one `/metrics` and status page for all, a line per probe run on
//! stderr, and optionally a fault scenario replayed from start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::{self, DRAIN, Sinks};
use crate::backend::{self, BackendConfig};
use crate::client::ProtocolConfig;
use crate::client::mock::MockTarget;
use crate::config::{AccountsConfig, AgentConfig, HttpUrl, Label, TargetConfig};
use crate::http;
use crate::record::LineStyle;
use crate::schedule::{Scheduler, Timing};

/// The demo's regions.
pub const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

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

/// Run the demo until SIGINT or SIGTERM, on all cores: the backend and three
/// agents share one process.
pub fn main(options: DemoOptions) -> ExitCode {
    agent::block_on(tokio::runtime::Runtime::new(), run(options))
}

async fn run(options: DemoOptions) -> anyhow::Result<()> {
    crate::client::init_tls();
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut backend_config = BackendConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BackendConfig::default()
    };
    if let Some(scenario) = &options.scenario {
        backend_config.faults = backend::faults::load_faults(scenario)?;
        tracing::info!(scenario = %scenario.display(), faults = backend_config.faults.len(), "scenario loaded");
    }
    let backend = backend::start(backend_config)
        .await
        .context("starting the mock backend")?;
    let sinks = Sinks::new(LineStyle::Summary)?;
    let listener = http::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let server = http::spawn(listener, sinks.router());
    let url = format!("http://{}", backend.addr());
    let mut jobs = Vec::new();
    for region in REGIONS {
        jobs.extend(agent::build_jobs(&region_config(
            region,
            &url,
            options.interval,
        )?)?);
    }
    let timing = Timing {
        jitter: 0.1,
        run_timeout: Duration::from_secs(60),
    };
    let scheduler = Scheduler::start(
        jobs,
        timing,
        Arc::clone(&sinks.recorder),
        sinks.readiness.clone(),
    );
    eprintln!(
        "demo: mock backend on {url}; metrics and status page on http://{}/ (Ctrl-C stops)",
        options.listen
    );
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    scheduler.shutdown(DRAIN - Duration::from_secs(1)).await;
    server.stop(Duration::from_millis(500)).await;
    backend
        .shutdown()
        .await
        .context("stopping the mock backend")?;
    Ok(())
}

/// The agent config of one demo region: the backend at `url`, every shipped
/// probe every `interval`.
fn region_config(region: &str, url: &str, interval: Duration) -> anyhow::Result<AgentConfig> {
    let mut probes = crate::config::shipped_probes()?;
    for probe in &mut probes {
        probe.spec.interval = interval;
    }
    Ok(AgentConfig {
        path: PathBuf::from("demo"),
        region: region.to_string(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        targets: vec![TargetConfig {
            name: Label("mock".into()),
            request_timeout: Duration::from_secs(10),
            accounts: AccountsConfig {
                prefix: "demo".into(),
                password: "demo-password".into(),
            },
            protocol: ProtocolConfig::Mock(MockTarget {
                url: HttpUrl(url.to_string()),
            }),
        }],
        probes,
        jitter: 0.1,
        run_timeout: Duration::from_secs(60),
    })
}
