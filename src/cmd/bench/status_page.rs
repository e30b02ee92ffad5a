//! `chatprobe bench status-page`: the fleet status page at fleet scale.
//! Synthetic agents in this process serve N targets × P probes × R regions
//! on `/metrics` (a few targets failing in the last region), a real
//! Prometheus started by the benchmark scrapes them (every `--scrape`,
//! optionally with the shipped rules), and a child `chatprobe status-page`
//! reads it. Once every cell is on the page it prints, per endpoint, the
//! time of a request (median and max after warm-up), the page's RSS and CPU,
//! and what each refresh asks of Prometheus (queries, samples read, points
//! returned). Prometheus' data lives under `target/` and goes at the end.

mod synthetic;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;

use super::proc::{cpu_time_of, rss_kib_of};
use super::targets::{client, wait_until};
use crate::probe::ProbeKind;
use synthetic::FleetShape;

/// The regions of the synthetic fleet, in order (the last one has the failing targets).
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// The log line of a refresh (`RUST_LOG` debug for the refresher).
const REFRESH_LINE: &str = "refresh read Prometheus: ";

/// Options of `chatprobe bench status-page`.
#[derive(Debug, Clone, Args)]
pub struct StatusPageBenchArgs {
    /// Targets (shards) per region.
    #[arg(long, default_value_t = 1000)]
    pub(crate) targets: usize,
    /// Probes per target (the first P shipped probe kinds, up to 5).
    #[arg(long, default_value_t = 5)]
    pub(crate) probes: usize,
    /// Regions (up to 3), one synthetic agent each.
    #[arg(long, default_value_t = 3)]
    pub(crate) regions: usize,
    /// Targets failing (every probe) in the last region.
    #[arg(long, default_value_t = 20)]
    pub(crate) failing: usize,
    /// Time between two runs of one cell.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
    /// Prometheus' scrape and evaluation interval.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(crate) scrape: Duration,
    /// Load these recording rules into Prometheus (e.g. `dashboards/rules.yml`).
    #[arg(long, value_name = "FILE")]
    pub(crate) rules: Option<PathBuf>,
    /// Requests timed per endpoint, after two of warm-up.
    #[arg(long, default_value_t = 10)]
    pub(crate) requests: usize,
    /// How long the refreshes are watched for their load on Prometheus.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) measure_for: Duration,
    /// The Prometheus binary (default: `$CHATPROBE_PROMETHEUS`, else `prometheus` on the PATH).
    #[arg(long, value_name = "FILE")]
    pub(crate) prometheus: Option<PathBuf>,
}

/// Longest wait for every cell to be on the page.
const PATIENCE: Duration = Duration::from_secs(600);

/// Run the benchmark and print its numbers.
pub(super) async fn run(args: StatusPageBenchArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=ProbeKind::ALL.len()).contains(&args.probes),
        "--probes must be 1 to {}",
        ProbeKind::ALL.len()
    );
    ensure!(
        (1..=REGIONS.len()).contains(&args.regions),
        "--regions must be 1 to 3"
    );
    let shape = FleetShape {
        targets: args.targets,
        probes: ProbeKind::ALL[..args.probes]
            .iter()
            .map(|kind| kind.as_str().to_owned())
            .collect(),
        regions: REGIONS[..args.regions]
            .iter()
            .map(|r| r.to_string())
            .collect(),
        failing: args.failing.min(args.targets),
        interval: args.interval,
    };
    let fleet = synthetic::start(&shape).await?;
    let dir = BenchDir::create("status-page")?;
    let prometheus = ChildProcess::prometheus(&args, &dir, &fleet.agents)?;
    let http = &client()?;
    wait_until("Prometheus ready", PATIENCE, || async {
        prometheus.check_alive()?;
        let ready = http
            .get(format!("{}/-/ready", prometheus.base))
            .send()
            .await;
        Ok(ready.is_ok_and(|answer| answer.status().is_success()))
    })
    .await?;
    let page = ChildProcess::status_page(&dir, &prometheus.base)?;
    println!(
        "{} targets × {} probes × {} regions = {} cells ({} failing); runs every {}, scraped every {}{}",
        shape.targets,
        shape.probes.len(),
        shape.regions.len(),
        shape.cells(),
        shape.failing * shape.probes.len(),
        humantime::format_duration(args.interval),
        humantime::format_duration(args.scrape),
        if args.rules.is_some() {
            ", shipped rules loaded"
        } else {
            ", no rules"
        },
    );
    let started = Instant::now();
    wait_until("every cell fresh on the page", PATIENCE, || async {
        prometheus.check_alive()?;
        page.check_alive()?;
        every_cell_fresh(http, &page.base, shape.cells()).await
    })
    .await?;
    println!(
        "every cell on the page:      {:.1} s after the page started",
        started.elapsed().as_secs_f64()
    );
    if shape.failing > 0 {
        let expected = shape.probes.len();
        wait_until(
            "an ongoing incident of every failing probe",
            PATIENCE,
            || async {
                page.check_alive()?;
                Ok(ongoing_incidents(http, &page.base).await? == expected)
            },
        )
        .await?;
        println!(
            "every incident ongoing:      {:.1} s after the page started",
            started.elapsed().as_secs_f64()
        );
    }
    let pid = page.pid();
    let mut max_rss_kib = rss_kib_of(&pid)?;
    let probe = shape.probes[0].as_str();
    let region = shape.regions[shape.regions.len() - 1].as_str();
    let endpoints = [
        "/".to_owned(),
        "/operators".to_owned(),
        "/api/status".to_owned(),
        "/api/incidents".to_owned(),
        "/feed.atom".to_owned(),
        format!("/cells?probe={probe}&region={region}"),
    ];
    for endpoint in &endpoints {
        let timed = time_requests(http, &format!("{}{endpoint}", page.base), args.requests).await?;
        max_rss_kib = max_rss_kib.max(rss_kib_of(&pid)?);
        println!(
            "GET {endpoint}: median {:.1} ms, max {:.1} ms, {:.0} kB",
            timed.median.as_secs_f64() * 1000.0,
            timed.max.as_secs_f64() * 1000.0,
            timed.bytes as f64 / 1000.0
        );
    }
    let ongoing = ongoing_incidents(http, &page.base).await?;
    println!("ongoing incidents:           {ongoing} (one per failing probe)");

    let cpu_before = cpu_time_of(&pid)?;
    let prometheus_cpu_before = cpu_time_of(&prometheus.pid())?;
    let lines_before = page.log_lines(REFRESH_LINE)?.len();
    let until = Instant::now() + args.measure_for;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        max_rss_kib = max_rss_kib.max(rss_kib_of(&pid)?);
    }
    let cpu = cpu_time_of(&pid)?.saturating_sub(cpu_before);
    let prometheus_cpu = cpu_time_of(&prometheus.pid())?.saturating_sub(prometheus_cpu_before);
    let refreshes: Vec<Refresh> = page.log_lines(REFRESH_LINE)?[lines_before..]
        .iter()
        .filter_map(|line| Refresh::parse(line))
        .collect();
    ensure!(
        !refreshes.is_empty(),
        "no refresh logged; see {}",
        page.log.display()
    );
    let per_refresh = |pick: fn(&Refresh) -> u64| -> (u64, u64) {
        let mut values: Vec<u64> = refreshes.iter().map(pick).collect();
        values.sort_unstable();
        (values[values.len() / 2], values[values.len() - 1])
    };
    let (queries, queries_max) = per_refresh(|r| r.queries);
    let (samples, samples_max) = per_refresh(|r| r.samples);
    let (points, points_max) = per_refresh(|r| r.points);
    let (millis, millis_max) = per_refresh(|r| r.millis);
    let seconds = args.measure_for.as_secs_f64();
    println!(
        "refreshes watched:           {} over {seconds:.0} s",
        refreshes.len()
    );
    println!("queries per refresh:         median {queries}, max {queries_max}");
    println!(
        "samples per refresh:         median {samples}, max {samples_max} (read by Prometheus)"
    );
    println!("points per refresh:          median {points}, max {points_max} (in its answers)");
    println!("a refresh takes:             median {millis} ms, max {millis_max} ms");
    println!(
        "status page RSS:             {:.1} MiB (max of samples every second)",
        max_rss_kib as f64 / 1024.0
    );
    println!(
        "status page CPU:             {:.1} % of one core",
        cpu.as_secs_f64() / seconds * 100.0
    );
    println!(
        "Prometheus CPU:              {:.1} % of one core (scrapes, rules and the page's queries); RSS {:.0} MiB",
        prometheus_cpu.as_secs_f64() / seconds * 100.0,
        rss_kib_of(&prometheus.pid())? as f64 / 1024.0
    );
    drop(page);
    drop(prometheus);
    drop(fleet);
    Ok(())
}

/// Whether `/api/status` of the page at `base` holds `cells` cells, none stale.
async fn every_cell_fresh(
    http: &reqwest::Client,
    base: &str,
    cells: usize,
) -> anyhow::Result<bool> {
    let Ok(answer) = http.get(format!("{base}/api/status")).send().await else {
        return Ok(false);
    };
    let status: serde_json::Value = answer.json().await.context("reading /api/status")?;
    let all = status["cells"].as_array().map_or(&[][..], Vec::as_slice);
    Ok(status["source"]["error"].is_null()
        && all.len() == cells
        && all.iter().all(|cell| cell["stale"].is_null()))
}

/// How many incidents `/api/incidents` of the page at `base` lists as ongoing.
async fn ongoing_incidents(http: &reqwest::Client, base: &str) -> anyhow::Result<usize> {
    let answer: serde_json::Value = http
        .get(format!("{base}/api/incidents"))
        .send()
        .await?
        .json()
        .await
        .context("reading /api/incidents")?;
    let all = answer["incidents"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    Ok(all
        .iter()
        .filter(|incident| incident["ended_at"].is_null())
        .count())
}

/// Request times of one endpoint.
pub(super) struct Timed {
    /// The median request.
    pub(super) median: Duration,
    /// The slowest request.
    pub(super) max: Duration,
    /// The size of the last answer.
    pub(super) bytes: usize,
}

/// Times `count` GETs of `url` (whole body read) after two of warm-up.
pub(super) async fn time_requests(
    http: &reqwest::Client,
    url: &str,
    count: usize,
) -> anyhow::Result<Timed> {
    let mut times = Vec::with_capacity(count);
    let mut bytes = 0;
    for index in 0..count.max(1) + 2 {
        let started = Instant::now();
        let answer = http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        ensure!(
            answer.status().is_success(),
            "GET {url} answered {}",
            answer.status()
        );
        bytes = answer.bytes().await?.len();
        if index >= 2 {
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    Ok(Timed {
        median: times[times.len() / 2],
        max: times[times.len() - 1],
        bytes,
    })
}

/// One refresh as the page logged it.
struct Refresh {
    queries: u64,
    samples: u64,
    points: u64,
    millis: u64,
}

impl Refresh {
    /// `… refresh read Prometheus: 7 queries, 1200 samples, 300 points in 12 ms`.
    fn parse(line: &str) -> Option<Refresh> {
        let rest = line.split(REFRESH_LINE).nth(1)?;
        let numbers: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|word| !word.is_empty())
            .filter_map(|word| word.parse().ok())
            .collect();
        match numbers[..] {
            [queries, samples, points, millis, ..] => Some(Refresh {
                queries,
                samples,
                points,
                millis,
            }),
            _ => None,
        }
    }
}

/// The benchmark's files under `target/`, removed at the end.
pub(super) struct BenchDir {
    /// Where they are.
    pub(super) path: PathBuf,
}

impl BenchDir {
    /// `target/bench-NAME-PID`, made now.
    pub(super) fn create(name: &str) -> anyhow::Result<BenchDir> {
        let path = Path::new("target").join(format!("bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BenchDir {
            path: std::path::absolute(&path)?,
        })
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A free port on 127.0.0.1.
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process the benchmark started, logging into a file; killed when dropped.
pub(super) struct ChildProcess {
    name: &'static str,
    child: Child,
    /// Its `http://ADDR`, or for a server of another protocol its `ADDR`.
    pub(super) base: String,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` named `name`, its stderr into `NAME.log` of `dir`.
    pub(super) fn spawn(
        name: &'static str,
        dir: &BenchDir,
        command: &mut Command,
        base: String,
    ) -> anyhow::Result<Self> {
        let log = dir.path.join(format!("{name}.log"));
        let output = std::fs::File::create(&log)?;
        let child = command
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(ChildProcess {
            name,
            child,
            base,
            log,
        })
    }

    /// Prometheus scraping `agents` (region, address).
    fn prometheus(
        args: &StatusPageBenchArgs,
        dir: &BenchDir,
        agents: &[(String, std::net::SocketAddr)],
    ) -> anyhow::Result<Self> {
        let binary = args
            .prometheus
            .clone()
            .or_else(|| std::env::var_os("CHATPROBE_PROMETHEUS").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("prometheus"));
        let interval = humantime::format_duration(args.scrape).to_string();
        let mut yml =
            format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n");
        if let Some(rules) = &args.rules {
            let rules = std::path::absolute(rules)?;
            ensure!(rules.is_file(), "no rules file {}", rules.display());
            yml.push_str(&format!("rule_files: [\"{}\"]\n", rules.display()));
        }
        let timeout = humantime::format_duration(args.scrape.min(Duration::from_secs(10)));
        yml.push_str(&format!(
            "scrape_configs:\n  - job_name: chatprobe\n    honor_labels: true\n    scrape_timeout: {timeout}\n    static_configs:\n"
        ));
        for (region, addr) in agents {
            yml.push_str(&format!(
                "      - targets: [\"{addr}\"]\n        labels: {{region: {region}}}\n"
            ));
        }
        let config = dir.path.join("prometheus.yml");
        std::fs::write(&config, yml)?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(&binary);
        command.args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path.join("tsdb").display()),
            "--storage.tsdb.retention.time=2h".to_owned(),
            format!("--web.listen-address={addr}"),
        ]);
        Self::spawn("prometheus", dir, &mut command, format!("http://{addr}"))
            .with_context(|| format!("(Prometheus binary: {})", binary.display()))
    }

    /// `chatprobe status-page` reading `prometheus`, logging its refreshes.
    fn status_page(dir: &BenchDir, prometheus: &str) -> anyhow::Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env("RUST_LOG", "info,chatprobe::status_page::refresher=debug")
            .args(["status-page", "--prometheus", prometheus, "--listen", &addr]);
        Self::spawn("status-page", dir, &mut command, format!("http://{addr}"))
    }

    /// Its process id.
    pub(super) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// An error when the process has exited (gone, or a zombie not yet waited for).
    pub(super) fn check_alive(&self) -> anyhow::Result<()> {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state.is_none_or(|state| state == "Z") {
            bail!("{} exited; see {}", self.name, self.log.display());
        }
        Ok(())
    }

    /// The lines of its log containing `text`.
    fn log_lines(&self, text: &str) -> anyhow::Result<Vec<String>> {
        let log = std::fs::read_to_string(&self.log)
            .with_context(|| format!("reading {}", self.log.display()))?;
        Ok(log
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_owned)
            .collect())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Ends only the process this benchmark started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_refresh_is_read_back() {
        let line = "2026-12-02T05:00:00Z DEBUG chatprobe::status_page::refresher: refresh read Prometheus: 7 queries, 1200 samples, 300 points in 12 ms";
        let refresh = Refresh::parse(line).expect("parsed");
        assert_eq!(
            (
                refresh.queries,
                refresh.samples,
                refresh.points,
                refresh.millis
            ),
            (7, 1200, 300, 12)
        );
        assert!(Refresh::parse("something else").is_none());
        assert_eq!(synthetic::target_name(7), "shard-00007");
    }
}
