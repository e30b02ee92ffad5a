//! `chatprobe bench soak`: a healthy soak. A mock backend in this process
//! (no faults), three regions, every shipped probe in each region at a short
//! interval with the agent's default jitter, each run bounded by the agent's
//! run timeout; prints the runs and every false failure (on a healthy
//! service, every failure is false).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::task::JoinSet;

use crate::backend::{self, BackendConfig};
use crate::client::Account;
use crate::client::mock::MockService;
use crate::cmd::wiring;
use crate::config::{DEFAULT_JITTER, DEFAULT_RUN_TIMEOUT};
use crate::outcome::{Failure, ProbeKey};
use crate::probe::{self, ProbeKind, ProbeSpec};
use crate::schedule::{Job, first_delay, next_wait, run_bounded};

/// The regions of the soak.
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// Options of `chatprobe bench soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long to soak.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Time between the starts of two runs of one probe (before jitter).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
}

/// What a soak found.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// How long it ran.
    pub(crate) elapsed: Duration,
    /// Probe runs finished.
    pub runs: u64,
    /// Runs that failed (each a false failure: the service was healthy).
    pub failed: u64,
    /// The failures, with the probe they happened on.
    pub failures: Vec<(ProbeKey, Failure)>,
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak: {} runs in {} ({} regions × {} probes), {} false failures",
            self.runs,
            humantime::format_duration(Duration::from_secs(self.elapsed.as_secs())),
            REGIONS.len(),
            ProbeKind::ALL.len(),
            self.failed
        )?;
        for (key, failure) in &self.failures {
            writeln!(
                f,
                "  {} {}: {}/{}: {}",
                key.region, key.probe, failure.operation, failure.reason, failure.detail
            )?;
        }
        Ok(())
    }
}

impl SoakReport {
    fn add(&mut self, other: SoakReport) {
        self.runs += other.runs;
        self.failed += other.failed;
        self.failures.extend(other.failures);
    }
}

/// Run the soak and print what it found.
pub(crate) async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let report = soak(args.duration, args.interval).await?;
    print!("{report}");
    Ok(())
}

/// Soaks for `duration`, every shipped probe at `interval` in each region.
pub async fn soak(duration: Duration, interval: Duration) -> anyhow::Result<SoakReport> {
    crate::client::init_tls();
    let backend = backend::start(BackendConfig::ephemeral())
        .await
        .context("starting the mock backend")?;
    let base = format!("http://{}", backend.addr());
    let started = Instant::now();
    let until = started + duration;
    let mut probes = JoinSet::new();
    for region in REGIONS {
        for &kind in ProbeKind::ALL {
            let shipped: ProbeSpec = crate::yaml::parse(&kind.shipped_path(), kind.shipped_text())
                .context("reading a shipped probe")?;
            let spec = ProbeSpec {
                interval,
                ..shipped
            };
            let job = job(&base, region, spec)?;
            probes.spawn(keep_running(job, until));
        }
    }
    let mut report = SoakReport::default();
    while let Some(finished) = probes.join_next().await {
        report.add(finished.context("a soak probe task panicked")?);
    }
    report.elapsed = started.elapsed();
    backend
        .shutdown()
        .await
        .context("stopping the mock backend")?;
    Ok(report)
}

/// The job of one probe of `spec` in `region`, against the backend at `base`.
fn job(base: &str, region: &str, spec: ProbeSpec) -> anyhow::Result<Job> {
    let service = MockService::new(base, region, spec.step_timeout)?;
    let accounts = (0..probe::accounts_needed(&spec))
        .map(|index| Account {
            user: format!("soak-{region}-{}-{index}", spec.name),
            password: format!("soak-{index}"),
        })
        .collect();
    let key = ProbeKey {
        region: region.to_string(),
        target: "mock".to_string(),
        probe: spec.name.clone(),
    };
    Ok(wiring::probe_job(key, spec, Arc::new(service), accounts))
}

/// Runs `job` as the scheduler would (a random first delay, then the
/// interval with jitter) until `until`; what its runs found.
async fn keep_running(mut job: Job, until: Instant) -> SoakReport {
    let mut report = SoakReport::default();
    tokio::time::sleep(first_delay(job.interval, rand::random())).await;
    while Instant::now() < until {
        let outcome = run_bounded(&mut job, DEFAULT_RUN_TIMEOUT).await;
        report.runs += 1;
        if !outcome.passed() {
            report.failed += 1;
        }
        for failure in outcome.failures {
            report.failures.push((job.key.clone(), failure));
        }
        let sample = rand::random::<f64>() * 2.0 - 1.0;
        let wait = next_wait(job.interval, DEFAULT_JITTER, sample, outcome.duration);
        tokio::time::sleep_until((Instant::now() + wait).min(until).into()).await;
    }
    job.probe.shutdown().await;
    report
}
