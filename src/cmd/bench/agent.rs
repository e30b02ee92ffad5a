//! `chatprobe bench agent`: what the agent side costs, against a mock backend
//! in another process (started as a child `chatprobe backend` unless `--url`
//! names one), so the numbers are the agent's alone:
//! - `devices`: resident memory of N logged-in, push-connected devices;
//! - `cpu`: CPU time of one `group_message` run (3 sends, 9 deliveries);
//! - `latency`: agent-measured delivery latency against a `delay` fault on
//!   `deliver`, as error over the injected delay;
//! - `failing-rss`: resident memory over N runs failing in a leave outage
//!   (flat, or the agent leaks per failure);
//! - `leave-outage`: groups on the service during a leave outage and after
//!   it ends (the footprint bound and reconciliation).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::{StreamExt, stream};

use super::proc::{cpu_time, rss_kib};
use crate::client::mock::MockService;
use crate::client::{Account, ChatService, Device, Event, GroupSettings};
use crate::probe::{self, ProbeKind, ProbeSetup, ProbeSpec};
use crate::protocol::route;

/// Timeout of every request of the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Logins and push connections in flight at once while devices are set up.
const SETUP_CONCURRENCY: usize = 64;
/// Devices per account in the `devices` measurement.
const DEVICES_PER_ACCOUNT: usize = 100;
/// Longest wait for a child backend to answer.
const BACKEND_START: Duration = Duration::from_secs(10);
/// Unmeasured runs before the `cpu` measurement.
const WARM_UP_RUNS: usize = 20;
/// Receiving devices in the `latency` measurement.
const LATENCY_RECEIVERS: usize = 3;

/// Options of `chatprobe bench agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentBenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Measure::Devices)]
    pub(crate) measure: Measure,
    /// Backend to use (`http://HOST:PORT`); default: start `chatprobe backend` as a child process.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Push-connected devices to hold (`devices`).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) devices: usize,
    /// Measured probe runs (`cpu`).
    #[arg(long, default_value_t = 500)]
    pub(crate) runs: usize,
    /// Injected delivery delay (`latency`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub(crate) delay: Duration,
    /// Messages sent (`latency`); each is measured on every receiving device.
    #[arg(long, default_value_t = 300)]
    pub(crate) samples: usize,
    /// Failing runs (`failing-rss`).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) failing_runs: usize,
    /// How long leaves fail (`leave-outage`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) outage: Duration,
}

/// An agent benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Measure {
    /// Resident memory of N push-connected devices.
    Devices,
    /// CPU time per group_message run.
    Cpu,
    /// Delivery latency measurement error against an injected delay.
    Latency,
    /// Resident memory over N runs failing in a leave outage.
    FailingRss,
    /// Groups on the service during and after a leave outage.
    LeaveOutage,
}

/// Run the benchmark and print its numbers.
pub(super) async fn run(args: AgentBenchArgs) -> anyhow::Result<()> {
    let child = match &args.url {
        Some(_) => None,
        None => Some(ChildBackend::start().await?),
    };
    let base = match (&args.url, &child) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(child)) => child.base.clone(),
        (None, None) => bail!("no backend"),
    };
    match args.measure {
        Measure::Devices => on_probe_runtime(devices(base, args.devices)).await,
        Measure::Cpu => on_probe_runtime(cpu(base, args.runs)).await,
        Measure::Latency => on_probe_runtime(latency(base, args.delay, args.samples)).await,
        Measure::FailingRss => on_probe_runtime(failing_rss(base, args.failing_runs)).await,
        Measure::LeaveOutage => on_probe_runtime(leave_outage(base, args.outage)).await,
    }
}

/// `devices`: log in and push-connect N devices, then read this process's RSS.
async fn devices(base: String, count: usize) -> anyhow::Result<()> {
    let base = base.as_str();
    let service = Arc::new(MockService::new(base, "bench", REQUEST_TIMEOUT)?);
    let before = rss_kib()?;
    let started = Instant::now();
    let held: Vec<Box<dyn Device>> = stream::iter(0..count)
        .map(|index| {
            let service = Arc::clone(&service);
            async move {
                let account = bench_account(index / DEVICES_PER_ACCOUNT);
                let mut device = service.login(&account).await?;
                device.connect().await?;
                anyhow::Ok(device)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("setting up devices (raise `ulimit -n` for many devices)")?;
    let setup = started.elapsed();
    let after = rss_kib()?;
    let sockets = backend_push_sockets(base).await?;
    println!("devices held:             {}", held.len());
    println!("push sockets at backend:  {sockets}");
    println!("setup time:               {setup:.1?}");
    println!(
        "agent RSS before:         {:.1} MiB",
        before as f64 / 1024.0
    );
    println!("agent RSS with devices:   {:.1} MiB", after as f64 / 1024.0);
    println!(
        "per device:               {:.1} KiB",
        after.saturating_sub(before) as f64 / held.len().max(1) as f64
    );
    Ok(())
}

/// Runs `work` on a runtime of its own, built as the agent builds the one its
/// probes run on, waiting for it here.
async fn on_probe_runtime(
    work: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || crate::cmd::wiring::probe_runtime()?.block_on(work)).await?
}

/// `cpu`: CPU time of this process per `group_message` run.
async fn cpu(base: String, runs: usize) -> anyhow::Result<()> {
    let base = base.as_str();
    let spec = ProbeSpec {
        name: "group_message".into(),
        kind: ProbeKind::GroupMessage,
        interval: Duration::from_secs(1),
        step_timeout: Duration::from_secs(5),
        delivery_deadline: Duration::from_secs(5),
        latency_objective: Duration::from_secs(1),
        group_size: 4,
        devices_per_account: 1,
        messages: 3,
    };
    let probe = bench_probe(base, spec)?;
    // As a task, the way the agent runs its probes (`schedule`): wake-ups of
    // a runtime's main future go through its driver's eventfd, a task's do not.
    let (failed, delivered, cpu, wall) = tokio::spawn(measured_runs(probe, runs)).await??;
    let runs = runs.max(1) as u32;
    println!("group_message runs:       {runs} (3 sends, 9 deliveries each; {failed} failed)");
    println!("deliveries received:      {delivered}");
    println!(
        "agent CPU per run:        {:.0} µs",
        cpu.as_secs_f64() * 1e6 / f64::from(runs)
    );
    println!("wall time per run:        {:.1?}", wall / runs);
    Ok(())
}

/// Runs `probe` [`WARM_UP_RUNS`] times, then `runs` times measured: failed
/// runs, messages delivered, this process's CPU time and the wall time.
async fn measured_runs(
    mut probe: Box<dyn probe::Probe>,
    runs: usize,
) -> anyhow::Result<(usize, u64, Duration, Duration)> {
    for _ in 0..WARM_UP_RUNS {
        probe.run().await;
    }
    let (cpu_before, wall_before) = (cpu_time()?, Instant::now());
    let (mut failed, mut delivered) = (0, 0);
    for _ in 0..runs {
        let outcome = probe.run().await;
        failed += usize::from(!outcome.passed());
        delivered += outcome.messages_delivered;
    }
    let (cpu, wall) = (cpu_time()? - cpu_before, wall_before.elapsed());
    probe.shutdown().await;
    Ok((failed, delivered, cpu, wall))
}

/// Runs between two RSS samples of `failing-rss`.
const RSS_SAMPLE_EVERY: usize = 1_000;

/// An `edit_settings` probe (one group a run, left at cleanup) against
/// `base`, with every leave from its region failing.
async fn probe_in_leave_outage(base: &str) -> anyhow::Result<Box<dyn probe::Probe>> {
    let spec = ProbeSpec {
        name: "edit_settings".into(),
        kind: ProbeKind::EditSettings,
        interval: Duration::from_secs(1),
        step_timeout: Duration::from_secs(5),
        delivery_deadline: Duration::from_secs(5),
        latency_objective: Duration::from_secs(1),
        group_size: 3,
        devices_per_account: 1,
        messages: 1,
    };
    put_faults(base, &leave_outage_faults()).await?;
    bench_probe(base, spec)
}

/// The probe of `spec` against the backend at `base`, acting from the
/// `bench` region as the benchmark's own accounts.
fn bench_probe(base: &str, spec: ProbeSpec) -> anyhow::Result<Box<dyn probe::Probe>> {
    let accounts = (0..probe::accounts_needed(&spec))
        .map(bench_account)
        .collect();
    let service = MockService::new(base, "bench", spec.step_timeout)?;
    Ok(probe::build(ProbeSetup {
        spec,
        service: Arc::new(service),
        accounts,
    }))
}

/// Every leave from the benchmark's region answers 503.
fn leave_outage_faults() -> serde_json::Value {
    serde_json::json!([{
        "name": "bench-leave-outage",
        "operations": ["leave"],
        "regions": ["bench"],
        "effect": "error",
        "status": 503,
    }])
}

/// `failing-rss`: this process's RSS every [`RSS_SAMPLE_EVERY`] of `runs`
/// runs that fail in a leave outage, after warm-up runs.
async fn failing_rss(base: String, runs: usize) -> anyhow::Result<()> {
    let mut probe = probe_in_leave_outage(&base).await?;
    for _ in 0..WARM_UP_RUNS {
        probe.run().await;
    }
    let first = rss_kib()?;
    let (mut samples, mut failed) = (vec![first], 0);
    let started = Instant::now();
    for run in 1..=runs {
        failed += usize::from(!probe.run().await.passed());
        if run % RSS_SAMPLE_EVERY == 0 {
            samples.push(rss_kib()?);
        }
    }
    let wall = started.elapsed();
    put_faults(&base, &serde_json::json!([])).await?;
    probe.shutdown().await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (low, high) = (
        samples.iter().copied().min().unwrap_or(first),
        samples.iter().copied().max().unwrap_or(first),
    );
    println!("failing runs:             {runs} ({failed} failed; leave outage)");
    println!("wall time:                {wall:.1?}");
    let listed: Vec<String> = samples
        .iter()
        .map(|kib| format!("{:.1}", mib(*kib)))
        .collect();
    println!(
        "agent RSS every {RSS_SAMPLE_EVERY} runs: {} MiB",
        listed.join(", ")
    );
    println!(
        "RSS range:                {:.1} to {:.1} MiB ({:+.1} % of the first sample)",
        mib(low),
        mib(high),
        (high as f64 - first as f64) * 100.0 / first.max(1) as f64
    );
    Ok(())
}

/// `leave-outage`: runs back to back while leaves fail for `outage`, then
/// one run after it; groups on the service after each.
async fn leave_outage(base: String, outage: Duration) -> anyhow::Result<()> {
    let mut probe = probe_in_leave_outage(&base).await?;
    let baseline = backend_stat(&base, "groups").await?;
    let started = Instant::now();
    let (mut runs, mut most, mut refused) = (0, 0, 0);
    while started.elapsed() < outage {
        let outcome = probe.run().await;
        runs += 1;
        refused += usize::from(
            outcome
                .failures
                .iter()
                .any(|failure| failure.reason == crate::outcome::Reason::LeaveRejected),
        );
        most = most.max(
            backend_stat(&base, "groups")
                .await?
                .saturating_sub(baseline),
        );
    }
    put_faults(&base, &serde_json::json!([])).await?;
    let after = probe.run().await;
    let left = backend_stat(&base, "groups")
        .await?
        .saturating_sub(baseline);
    probe.shutdown().await;
    println!("runs during the outage:   {runs} ({refused} created no group: bound reached)");
    println!("most groups during it:    {most} (one probe of 3 accounts)");
    println!(
        "groups after one run:     {left} (that run {})",
        if after.passed() { "passed" } else { "failed" }
    );
    Ok(())
}

/// `latency`: measured delivery latency minus the injected delay.
async fn latency(base: String, delay: Duration, samples: usize) -> anyhow::Result<()> {
    let base = base.as_str();
    set_delay_fault(base, delay).await?;
    let service = MockService::new(base, "bench", REQUEST_TIMEOUT)?;
    let sender = service.login(&bench_account(0)).await?;
    let mut receivers = Vec::new();
    for index in 1..=LATENCY_RECEIVERS {
        let mut device = service.login(&bench_account(index)).await?;
        device.connect().await?;
        receivers.push(device);
    }
    let users: Vec<String> = receivers.iter().map(|d| d.user_id().to_string()).collect();
    let settings = GroupSettings {
        name: "latency bench".into(),
        notice: String::new(),
    };
    let group = sender.create_group(&settings, &users).await?;
    for receiver in &receivers {
        receiver.join_group(&group).await?;
    }
    let mut errors_us = Vec::with_capacity(samples * receivers.len());
    for index in 0..samples {
        let sent_at = Instant::now();
        let key = format!("latency-{}-{index}", std::process::id());
        let id = sender.send(&group, &key, &key).await?;
        for receiver in &mut receivers {
            let arrived = wait_for_message(receiver.as_mut(), &id, sent_at + delay * 10).await?;
            let latency = arrived.saturating_duration_since(sent_at);
            errors_us.push((latency.as_secs_f64() - delay.as_secs_f64()) * 1e6);
        }
    }
    for receiver in &receivers {
        receiver.leave(&group).await?;
    }
    sender.leave(&group).await?;
    errors_us.sort_by(f64::total_cmp);
    let quantile = |q: f64| errors_us[((errors_us.len() - 1) as f64 * q).round() as usize];
    println!("injected delay:           {delay:?} (deliver)");
    println!("deliveries measured:      {}", errors_us.len());
    println!("error p50:                {:.0} µs", quantile(0.50));
    println!("error p99:                {:.0} µs", quantile(0.99));
    println!("error max:                {:.0} µs", quantile(1.0));
    Ok(())
}

/// When the message `id` reached `device` (as its push reader stamped it).
async fn wait_for_message(
    device: &mut dyn Device,
    id: &str,
    until: Instant,
) -> anyhow::Result<Instant> {
    while let Some(delivered) = device.next_event(until).await? {
        if matches!(&delivered.event, Event::Message(message) if message.id == id) {
            return Ok(delivered.received_at);
        }
    }
    bail!("message {id} did not arrive in time")
}

fn bench_account(index: usize) -> Account {
    Account {
        user: format!("bench-agent-{}-{index}", std::process::id()),
        password: "bench".into(),
    }
}

/// Installs a `delay` fault on `deliver` through the admin API.
async fn set_delay_fault(base: &str, delay: Duration) -> anyhow::Result<()> {
    let faults = serde_json::json!([{
        "name": "bench-delay",
        "operations": ["deliver"],
        "effect": "delay",
        "delay": humantime::format_duration(delay).to_string(),
    }]);
    put_faults(base, &faults).await
}

/// Replaces the backend's faults through the admin API.
async fn put_faults(base: &str, faults: &serde_json::Value) -> anyhow::Result<()> {
    let response = admin_client()?
        .put(format!("{base}{}", route::ADMIN_FAULTS))
        .json(faults)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("PUT {}: {}", route::ADMIN_FAULTS, response.status());
    }
    Ok(())
}

/// Open push connections the backend counts.
async fn backend_push_sockets(base: &str) -> anyhow::Result<u64> {
    backend_stat(base, "push_sockets").await
}

/// One count of the backend's `/admin/stats`.
pub(super) async fn backend_stat(base: &str, name: &str) -> anyhow::Result<u64> {
    let stats: serde_json::Value = admin_client()?
        .get(format!("{base}{}", route::ADMIN_STATS))
        .send()
        .await?
        .json()
        .await?;
    stats[name]
        .as_u64()
        .with_context(|| format!("`{name}` missing from /admin/stats"))
}

fn admin_client() -> anyhow::Result<reqwest::Client> {
    crate::client::init_tls();
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// A `chatprobe backend` child process on a free loopback port.
pub(super) struct ChildBackend {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(super) base: String,
    config: PathBuf,
}

impl ChildBackend {
    /// Starts it and waits until it answers.
    pub(super) async fn start() -> anyhow::Result<ChildBackend> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config =
            std::env::temp_dir().join(format!("chatprobe-bench-{}.yaml", std::process::id()));
        std::fs::write(&config, format!("listen: 127.0.0.1:{port}\n"))?;
        let child = Command::new(std::env::current_exe()?)
            .args(["backend", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting `chatprobe backend`")?;
        let backend = ChildBackend {
            child,
            base: format!("http://127.0.0.1:{port}"),
            config,
        };
        let deadline = Instant::now() + BACKEND_START;
        while backend_push_sockets(&backend.base).await.is_err() {
            if Instant::now() > deadline {
                bail!("the backend did not answer within {BACKEND_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(backend)
    }
}

impl Drop for ChildBackend {
    fn drop(&mut self) {
        // Ends only the child this benchmark started.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}
