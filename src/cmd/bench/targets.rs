//! `chatprobe bench targets`: one agent for many shards. A child `chatprobe
//! backend` and a child `chatprobe agent` whose targets all come from one
//! target file: N mock targets on that one backend, each with its own
//! account prefix, the shipped `group_message` every `--interval`. It
//! measures the agent process alone: its CPU share of one core and its
//! resident memory in steady state (every target has run, `/metrics`
//! scraped every `--scrape-every` as Prometheus would), then how long it
//! takes to follow the file shrinking to `--shrink-to` targets (the change
//! applied and the removed series gone; the removed targets' groups left on
//! the backend).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;

use super::agent::{ChildBackend, backend_stat};
use super::proc::{cpu_time_of, rss_kib_of};
use crate::probe::ProbeKind;

mod push;

/// Options of `chatprobe bench targets`.
#[derive(Debug, Clone, Args)]
pub struct TargetsBenchArgs {
    /// Targets in the target file at first.
    #[arg(long, default_value_t = 1000)]
    pub(crate) targets: usize,
    /// Targets left in the file once it shrinks.
    #[arg(long, default_value_t = 500)]
    pub(crate) shrink_to: usize,
    /// Interval of the group_message probe.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
    /// How long steady state is measured.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) measure_for: Duration,
    /// How often `/metrics` is scraped while measuring (the shipped
    /// `dashboards/prometheus.yml` scrapes every 15 s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(crate) scrape_every: Duration,
    /// Then make the agent push every `--scrape-every` instead (remote
    /// write to a receiver in this process) and measure it again, unscraped.
    #[arg(long)]
    pub(crate) remote_write: bool,
    /// With `--remote-write`: how long the receiver then answers 503.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) outage: Duration,
}

/// The log line of an agent that applied a change of its target files.
const CHANGE_APPLIED: &str = "target files changed";
/// Longest wait for one step after the agent's first interval.
const PATIENCE: Duration = Duration::from_secs(120);
/// How often a condition is checked while waiting.
const POLL: Duration = Duration::from_millis(100);
/// How often the agent's memory is sampled while measuring.
const RSS_SAMPLE: Duration = Duration::from_secs(1);

/// Run the benchmark and print its numbers.
pub(super) async fn run(args: TargetsBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.shrink_to <= args.targets,
        "--shrink-to must be at most --targets"
    );
    // The backend and the agent inherit it: both hold a socket per device.
    crate::open_files::raise_to_hard().context("raising the open-files limit")?;
    let backend = ChildBackend::start().await?;
    let dir = BenchDir::create()?;
    let targets_file = dir.path.join("targets.d/shards.yaml");
    write_atomically(&targets_file, &target_file(&backend.base, args.targets))?;
    let agent = &ChildAgent::start(&dir, &agent_config(&dir, args.interval)?)?;
    let http = &client()?;
    let backend = &backend;
    println!(
        "one agent, {} mock targets from a target file, group_message every {}; agent log: {}",
        args.targets,
        humantime::format_duration(args.interval),
        agent.log.display()
    );

    let started = Instant::now();
    wait_until(
        "every target ran once",
        args.interval + PATIENCE,
        || async move {
            agent.check_alive()?;
            Ok(agent.ready(http).await)
        },
    )
    .await?;
    println!(
        "every target ran once:       {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    let steady = agent
        .measure(http, args.measure_for, args.scrape_every)
        .await?;
    let scrape = agent.scrape(http).await?;
    println!(
        "CPU in steady state:         {:.2} % of one core ({:.2} s over {}; {} scrapes)",
        steady.cpu.as_secs_f64() / args.measure_for.as_secs_f64() * 100.0,
        steady.cpu.as_secs_f64(),
        humantime::format_duration(args.measure_for),
        steady.scrapes
    );
    println!(
        "RSS in steady state:         {:.1} MiB (max of samples every {}s)",
        steady.max_rss_kib as f64 / 1024.0,
        RSS_SAMPLE.as_secs()
    );
    println!(
        "runs so far:                 {} passed, {} failed; targets in /metrics: {}",
        scrape.passed, scrape.failed, scrape.targets
    );
    println!(
        "one /metrics scrape:         {:.1} MB in {:.0} ms",
        scrape.bytes as f64 / 1e6,
        scrape.took.as_secs_f64() * 1000.0
    );

    if args.remote_write {
        push::run(agent, &dir, &args, http, steady.cpu).await?;
    }

    let shrunk = Instant::now();
    write_atomically(&targets_file, &target_file(&backend.base, args.shrink_to))?;
    wait_until(
        "the agent to apply the shrunk file",
        PATIENCE,
        || async move {
            agent.check_alive()?;
            agent.logged(CHANGE_APPLIED)
        },
    )
    .await?;
    let applied = shrunk.elapsed();
    let scrape = agent.scrape(http).await?;
    ensure!(
        scrape.targets == args.shrink_to,
        "{} targets in /metrics after the shrink, expected {}",
        scrape.targets,
        args.shrink_to
    );
    println!(
        "file shrunk to {}: change applied and removed series gone after {:.1} s",
        args.shrink_to,
        applied.as_secs_f64()
    );
    wait_until(
        "the removed targets' groups to be left",
        PATIENCE,
        || async move {
            let groups = backend_stat(&backend.base, "groups").await?;
            Ok(groups <= args.shrink_to as u64)
        },
    )
    .await?;
    println!(
        "removed targets' groups left on the backend after {:.1} s",
        shrunk.elapsed().as_secs_f64()
    );
    let rss = rss_kib_of(&agent.pid())?;
    println!(
        "RSS after the shrink:        {:.1} MiB",
        rss as f64 / 1024.0
    );
    Ok(())
}

/// Polls `check` every [`POLL`] until it says yes, for at most `limit`.
pub(super) async fn wait_until<F, Fut>(
    what: &str,
    limit: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !check().await? {
        if Instant::now() > deadline {
            bail!("gave up waiting {limit:?} for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// A target file of `count` mock targets on the backend at `base`, each with
/// its own account prefix and a `shard` label.
fn target_file(base: &str, count: usize) -> String {
    let mut text = String::new();
    for index in 0..count {
        text.push_str(&format!(
            "- kind: mock\n  name: shard-{index:04}\n  url: {base}\n  labels: {{shard: s{index:04}}}\n  accounts: {{prefix: t{index:04}, password: bench}}\n"
        ));
    }
    if count == 0 {
        text.push_str("[]\n");
    }
    text
}

/// Writes `text` to `path` at once: beside it, then renamed into place.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let staged = path.with_extension("yaml.tmp");
    std::fs::write(&staged, text).with_context(|| format!("writing {}", staged.display()))?;
    std::fs::rename(&staged, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Writes the agent's config and probe file into `dir`; the config's path.
fn agent_config(dir: &BenchDir, interval: Duration) -> anyhow::Result<PathBuf> {
    let probe = dir.path.join("probes/group_message.yaml");
    std::fs::write(&probe, ProbeKind::GroupMessage.shipped_text())?;
    let config = dir.path.join("agent.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(
        &config,
        format!(
            "region: bench\nlisten: 127.0.0.1:{port}\ntargets: []\ntarget_files: [targets.d/*.yaml]\n\
             probes: [probes]\ninterval: {}\n",
            humantime::format_duration(interval)
        ),
    )?;
    Ok(config)
}

pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    crate::client::init_tls();
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// The benchmark's scratch folder, removed when dropped.
struct BenchDir {
    path: PathBuf,
}

impl BenchDir {
    fn create() -> anyhow::Result<BenchDir> {
        let path =
            std::env::temp_dir().join(format!("chatprobe-bench-targets-{}", std::process::id()));
        std::fs::create_dir_all(path.join("targets.d"))?;
        std::fs::create_dir_all(path.join("probes"))?;
        Ok(BenchDir { path })
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What steady state cost the agent.
struct Steady {
    cpu: Duration,
    max_rss_kib: u64,
    /// `/metrics` scrapes served meanwhile.
    scrapes: u32,
}

/// What one `/metrics` scrape showed.
struct Scrape {
    bytes: usize,
    took: Duration,
    /// Distinct `target` labels of `chatprobe_probe_runs_total`.
    targets: usize,
    passed: u64,
    failed: u64,
}

/// The agent under test: a child `chatprobe agent`, logging into a file.
struct ChildAgent {
    child: Child,
    base: String,
    log: PathBuf,
}

impl ChildAgent {
    fn start(dir: &BenchDir, config: &Path) -> anyhow::Result<ChildAgent> {
        let text = std::fs::read_to_string(config)?;
        let listen = text
            .lines()
            .find_map(|line| line.strip_prefix("listen: "))
            .context("the bench config has a listen line")?
            .to_string();
        let log = dir.path.join("agent.log");
        let output = std::fs::File::create(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(["--log-format", "json", "agent", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .context("starting `chatprobe agent`")?;
        Ok(ChildAgent {
            child,
            base: format!("http://{listen}"),
            log,
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// An error when the agent has exited.
    fn check_alive(&self) -> anyhow::Result<()> {
        if std::fs::metadata(format!("/proc/{}", self.pid())).is_err() {
            bail!("the agent exited; see {}", self.log.display());
        }
        Ok(())
    }

    /// Whether `/readyz` answers 200 (every target has run once).
    async fn ready(&self, http: &reqwest::Client) -> bool {
        let answer = http.get(format!("{}/readyz", self.base)).send().await;
        answer.is_ok_and(|answer| answer.status().is_success())
    }

    /// Whether the agent's log has a line containing `text`.
    fn logged(&self, text: &str) -> anyhow::Result<bool> {
        Ok(std::fs::read_to_string(&self.log)?.contains(text))
    }

    /// The agent's CPU time over `period` and its largest RSS meanwhile,
    /// `/metrics` scraped every `scrape_every` from the start.
    async fn measure(
        &self,
        http: &reqwest::Client,
        period: Duration,
        scrape_every: Duration,
    ) -> anyhow::Result<Steady> {
        let pid = self.pid();
        let cpu_before = cpu_time_of(&pid)?;
        let started = Instant::now();
        let until = started + period;
        let (mut next_scrape, mut scrapes) = (started, 0);
        let mut max_rss_kib = rss_kib_of(&pid)?;
        while Instant::now() < until {
            if Instant::now() >= next_scrape {
                self.scrape(http).await?;
                max_rss_kib = max_rss_kib.max(rss_kib_of(&pid)?);
                (next_scrape, scrapes) = (next_scrape + scrape_every, scrapes + 1);
            }
            let next_sample = (Instant::now() + RSS_SAMPLE).min(next_scrape).min(until);
            tokio::time::sleep_until(next_sample.into()).await;
            max_rss_kib = max_rss_kib.max(rss_kib_of(&pid)?);
        }
        Ok(Steady {
            cpu: cpu_time_of(&pid)?.saturating_sub(cpu_before),
            max_rss_kib,
            scrapes,
        })
    }

    /// One `GET /metrics`, read for its runs and targets.
    async fn scrape(&self, http: &reqwest::Client) -> anyhow::Result<Scrape> {
        let started = Instant::now();
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        let took = started.elapsed();
        let mut targets = std::collections::BTreeSet::new();
        let (mut passed, mut failed) = (0, 0);
        for line in text.lines() {
            let Some(labels) = line.strip_prefix("chatprobe_probe_runs_total{") else {
                continue;
            };
            let target = labels
                .split("target=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            targets.extend(target);
            let value: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            if labels.contains("result=\"success\"") {
                passed += value;
            } else {
                failed += value;
            }
        }
        Ok(Scrape {
            bytes: text.len(),
            took,
            targets: targets.len(),
            passed,
            failed,
        })
    }
}

impl Drop for ChildAgent {
    fn drop(&mut self) {
        // Ends only the agent this benchmark started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
