//! `chatprobe bench reports`: "Report a problem" under load. A child
//! `chatprobe status-page` keeps its reports in SQLite (a file in the
//! benchmark's folder) or PostgreSQL (one the benchmark starts, or a URL);
//! `--clients` concurrent HTTP clients post `POST /api/reports` for
//! `--duration`, each report from a reporter of its own (a distinct
//! `X-Forwarded-For` through the trusted proxy 127.0.0.1/32). It prints the
//! reports accepted per second and their latency, then fills the store to
//! `--fill` reports through the store's own code (the rows and hourly
//! counts counted reports leave, spread over the retention of 90 days) and
//! prints the page's RSS and the time of `GET /` and `GET
//! /api/reports?hours=24`. The page needs no Prometheus for reports: it is
//! pointed at a port nobody listens on, and its public page says it is
//! blind. The page's rate limits and hourly cap are raised (they are
//! config) so that they refuse nothing; the output says so.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;

use super::postgres::Postgres;
use super::proc::rss_kib_of;
use super::status_page::{BenchDir, ChildProcess, free_port, time_requests};
use super::targets::{client, wait_until};
use crate::config::status_page::{StoreLocation, store_flag};
use crate::metrics::ReportMetrics;
use crate::reports::config::{HOURLY_RETENTION, ReportsConfig};
use crate::reports::crowd::HOUR;
use crate::reports::ledger::{self, NewReport, Retention};
use crate::store::Store;

/// The regions the page is told of; reports name them in turn.
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// The page's rate limit for everyone together, raised for the benchmark.
const PER_SECOND: u32 = 1_000_000;
/// The page's cap of reports stored an hour, raised for the benchmark.
const STORED_PER_HOUR: u32 = 100_000_000;
/// How far back the fill spreads its reports: the default retention.
const FILL_SPAN: i64 = 90 * 24 * HOUR;
/// Reports the fill writes in one transaction.
const FILL_CHUNK: usize = 20_000;
/// Longest wait for the page to answer.
const STARTUP: Duration = Duration::from_secs(60);
/// How long the clients post before the measured span.
const WARM_UP: Duration = Duration::from_secs(1);

/// Options of `chatprobe bench reports`.
#[derive(Debug, Clone, Args)]
pub struct ReportsBenchArgs {
    /// `sqlite` (a file in the benchmark's folder), `postgres` (a
    /// PostgreSQL the benchmark starts) or a `postgres://USER@HOST:PORT/DB` URL.
    #[arg(long, default_value = "sqlite")]
    pub(crate) store: String,
    /// Concurrent HTTP clients posting reports.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// How long reports are posted (after a second of warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Reports in the store, counting those posted, before the page is timed.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) fill: usize,
    /// Requests timed per endpoint, after two of warm-up.
    #[arg(long, default_value_t = 10)]
    pub(crate) requests: usize,
    /// The folder of PostgreSQL's `initdb` and `postgres` (default:
    /// `$CHATPROBE_POSTGRES_BIN`, else Debian's newest).
    #[arg(long, value_name = "DIR")]
    pub(crate) postgres_bin: Option<PathBuf>,
    /// The `chatprobe` whose status page is measured (default: this one).
    #[arg(long, value_name = "FILE")]
    pub(crate) page_binary: Option<PathBuf>,
}

/// Run the benchmark and print its numbers.
pub(super) async fn run(args: ReportsBenchArgs) -> anyhow::Result<()> {
    ensure!(args.clients > 0, "--clients must be at least 1");
    let dir = BenchDir::create("reports")?;
    let (location, _postgres) = store_of(&args, &dir).await?;
    let page = status_page(&args, &dir, &location)?;
    let http = &client()?;
    wait_until("the status page answering", STARTUP, || async {
        page.check_alive()?;
        let answer = http.get(format!("{}/healthz", page.base)).send().await;
        Ok(answer.is_ok_and(|answer| answer.status().is_success()))
    })
    .await?;
    println!(
        "page config:                 reports.limits raised for the benchmark: per_second {PER_SECOND}, \
         stored_per_hour {STORED_PER_HOUR}; trusted_proxies [127.0.0.1/32]"
    );
    let load = post_reports(&page.base, args.clients, args.duration).await?;
    load.print(args.clients);
    page.check_alive()?;
    let posted = load.counted + load.warm_up;
    let filled = fill(&location, args.fill.saturating_sub(posted)).await?;
    println!(
        "store filled:                {} reports stored in all ({} posted, {} loaded in {:.1} s, over the last 90 days)",
        posted + filled.reports,
        posted,
        filled.reports,
        filled.took.as_secs_f64()
    );
    let pid = page.pid();
    let rss = rss_kib_of(&pid)?;
    for endpoint in ["/", "/api/reports?hours=24"] {
        let timed = time_requests(http, &format!("{}{endpoint}", page.base), args.requests).await?;
        println!(
            "GET {endpoint}: median {:.1} ms, max {:.1} ms, {:.0} kB",
            timed.median.as_secs_f64() * 1000.0,
            timed.max.as_secs_f64() * 1000.0,
            timed.bytes as f64 / 1000.0
        );
    }
    let rss = rss.max(rss_kib_of(&pid)?);
    println!(
        "status page RSS:             {:.1} MiB with {} reports stored (after posting and the GETs)",
        rss as f64 / 1024.0,
        posted + filled.reports
    );
    drop(page);
    Ok(())
}

/// The store the page keeps its reports in, and the PostgreSQL started for
/// it (stopped when dropped), if any.
async fn store_of(
    args: &ReportsBenchArgs,
    dir: &BenchDir,
) -> anyhow::Result<(StoreLocation, Option<Postgres>)> {
    match args.store.as_str() {
        "sqlite" => {
            println!(
                "store:                       SQLite, a file in {}",
                dir.path.display()
            );
            Ok((StoreLocation::Sqlite(dir.path.join("store.db")), None))
        }
        "postgres" => {
            let postgres = Postgres::start(args.postgres_bin.as_deref()).await?;
            println!(
                "store:                       {} started by the benchmark (default settings: fsync and synchronous commits on)",
                postgres.version
            );
            let location = store_flag(&postgres.url()).map_err(anyhow::Error::msg)?;
            Ok((location, Some(postgres)))
        }
        url => {
            let location = store_flag(url).map_err(anyhow::Error::msg)?;
            println!("store:                       {location}");
            Ok((location, None))
        }
    }
}

/// `chatprobe status-page` on `location`, trusting 127.0.0.1 as its proxy,
/// its limits raised, reading a Prometheus nobody listens on.
fn status_page(
    args: &ReportsBenchArgs,
    dir: &BenchDir,
    location: &StoreLocation,
) -> anyhow::Result<ChildProcess> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let store = match location {
        StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
        StoreLocation::Postgres(_) => location.to_string(),
    };
    let mut config = format!(
        "prometheus: {{url: 'http://127.0.0.1:1'}}\nlisten: {addr}\nstore: {store}\npublic:\n  regions:\n"
    );
    for region in REGIONS {
        config.push_str(&format!("    {region}: {{name: {region}}}\n"));
    }
    config.push_str(&format!(
        "reports:\n  trusted_proxies: [127.0.0.1/32]\n  limits: {{per_second: {PER_SECOND}, \
         stored_per_hour: {STORED_PER_HOUR}}}\n"
    ));
    let path = dir.path.join("status-page.yaml");
    std::fs::write(&path, config)?;
    let binary = match &args.page_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?,
    };
    let mut command = Command::new(&binary);
    command
        .env("RUST_LOG", "warn")
        .args(["status-page", "--config"])
        .arg(&path);
    ChildProcess::spawn("status-page", dir, &mut command, format!("http://{addr}"))
        .with_context(|| format!("(status page binary: {})", binary.display()))
}

/// What the clients' posts came to.
struct Load {
    /// Reports counted during the measured span.
    counted: usize,
    /// Reports answered otherwise (not counted, or an error status).
    refused: usize,
    /// Requests that failed outright.
    failed: usize,
    /// Reports counted during the warm-up.
    warm_up: usize,
    /// The measured span.
    took: Duration,
    /// Every measured request's latency, sorted.
    latencies: Vec<Duration>,
}

impl Load {
    /// Prints the rate and the latencies.
    fn print(&self, clients: usize) {
        let seconds = self.took.as_secs_f64();
        println!(
            "reports accepted:            {} in {seconds:.1} s ({:.0}/s), {clients} clients, each report from its own reporter",
            self.counted,
            self.counted as f64 / seconds.max(0.001)
        );
        println!(
            "reports refused or failed:   {} ({} answered but not counted, {} failed)",
            self.refused + self.failed,
            self.refused,
            self.failed
        );
        let at = |quantile: f64| {
            let index = ((self.latencies.len() as f64 * quantile) as usize)
                .min(self.latencies.len().saturating_sub(1));
            self.latencies
                .get(index)
                .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
        };
        println!(
            "report latency:              p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    counted: usize,
    refused: usize,
    failed: usize,
    warm_up: usize,
    latencies: Vec<Duration>,
}

/// Posts reports from `clients` concurrent clients to the page at `base`
/// for [`WARM_UP`] and then `duration`, every report from a new address.
async fn post_reports(base: &str, clients: usize, duration: Duration) -> anyhow::Result<Load> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(clients)
        .build()?;
    let next = Arc::new(AtomicU32::new(1));
    let started = Instant::now();
    let measured_from = started + WARM_UP;
    let until = measured_from + duration;
    let url = format!("{base}/api/reports");
    let problems: Vec<String> = ReportsConfig::default()
        .problems
        .iter()
        .map(|problem| problem.id.0.clone())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, next, url, problems) = (
            http.clone(),
            Arc::clone(&next),
            url.clone(),
            problems.clone(),
        );
        tasks.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                let number = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = post_one(&http, &url, number, &problems).await;
                let measured = sent >= measured_from;
                match (outcome, measured) {
                    (Ok(true), false) => tally.warm_up += 1,
                    (Ok(true), true) => tally.counted += 1,
                    (Ok(false), _) => tally.refused += 1,
                    (Err(_), _) => tally.failed += 1,
                }
                if measured {
                    tally.latencies.push(sent.elapsed());
                }
            }
            tally
        });
    }
    let mut load = Load {
        counted: 0,
        refused: 0,
        failed: 0,
        warm_up: 0,
        took: Duration::ZERO,
        latencies: Vec::new(),
    };
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.context("a client task")?;
        load.counted += tally.counted;
        load.refused += tally.refused;
        load.failed += tally.failed;
        load.warm_up += tally.warm_up;
        load.latencies.extend(tally.latencies);
    }
    load.took = started.elapsed().saturating_sub(WARM_UP);
    load.latencies.sort_unstable();
    Ok(load)
}

/// Posts report `number` (its own address, a problem and region in turn);
/// whether it was counted.
async fn post_one(
    http: &reqwest::Client,
    url: &str,
    number: u32,
    problems: &[String],
) -> anyhow::Result<bool> {
    let [_, a, b, c] = number.to_be_bytes();
    let index = number as usize;
    let body = serde_json::json!({
        "problem": problems[index % problems.len()],
        "region": REGIONS[index % REGIONS.len()],
    });
    let answer = http
        .post(url)
        .header("X-Forwarded-For", format!("10.{a}.{b}.{c}"))
        .json(&body)
        .send()
        .await?;
    if !answer.status().is_success() {
        return Ok(false);
    }
    let answer: serde_json::Value = answer.json().await?;
    Ok(answer["counted"].as_bool() == Some(true))
}

/// What the fill did.
struct Filled {
    reports: usize,
    took: Duration,
}

/// Loads `count` past reports into the store at `location` through the
/// store's code, spread evenly over the last [`FILL_SPAN`] before the
/// current hour, problems and regions in turn, each from its own reporter;
/// then prunes it as the page's upkeep does (what is past the window).
async fn fill(location: &StoreLocation, count: usize) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let store = Store::open(location, ReportMetrics::default())
        .await
        .with_context(|| format!("opening the store {location} to fill it"))?;
    let problems = ReportsConfig::default().problems;
    let newest = crate::reports::crowd::hour_start(crate::reports::unix_now()) - 1;
    let step = FILL_SPAN as f64 / count.max(1) as f64;
    let mut index = 0;
    while index < count {
        let chunk: Vec<NewReport> = (index..count.min(index + FILL_CHUNK))
            .map(|at| NewReport {
                at: newest - (at as f64 * step) as i64,
                problem: problems[at % problems.len()].id.0.clone(),
                region: REGIONS[at % REGIONS.len()].to_owned(),
                reporter: format!("{:064x}", u128::MAX - at as u128),
            })
            .collect();
        ledger::load_counted(&store, &chunk)
            .await
            .context("filling the store")?;
        index += chunk.len();
    }
    // What the page's upkeep removes at its start and every hour.
    let config = ReportsConfig::default();
    let retention = Retention {
        reports: config.retention,
        hours: HOURLY_RETENTION,
        window: config.window,
    };
    ledger::prune(&store, crate::reports::unix_now(), retention)
        .await
        .context("pruning the filled store")?;
    store.close().await;
    Ok(Filled {
        reports: count,
        took: started.elapsed(),
    })
}
