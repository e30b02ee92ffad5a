//! `chatprobe bench targets --remote-write`: after the scraped steady
//! state, the same agent is made to push instead (its config gains a
//! `remote_write:` entry to a receiver in this process, every
//! `--scrape-every`; a SIGHUP applies it, restarting the probes) and, once
//! every probe has run again, is measured again, unscraped:
//! its CPU and RSS, and the bytes per second on the wire. Then the receiver
//! answers 503 for `--outage`: the agent's largest RSS meanwhile and its
//! queue; then it accepts again, and the time the queue takes to empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use bytes::Bytes;

use super::{BenchDir, ChildAgent, PATIENCE, RSS_SAMPLE, TargetsBenchArgs, wait_until};
use crate::cmd::bench::proc::{cpu_time_of, rss_kib_of};

/// What the receiver counted.
#[derive(Default)]
struct Counts {
    /// Pushes accepted.
    pushes: AtomicU64,
    /// Bytes of their bodies (compressed).
    bytes: AtomicU64,
    /// Whether it answers 503 to everything.
    down: AtomicBool,
}

/// A remote write receiver on 127.0.0.1 that counts what it is sent.
struct Receiver {
    url: String,
    counts: Arc<Counts>,
    server: crate::endpoints::Server,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let counts = Arc::new(Counts::default());
        let router = axum::Router::new()
            .route("/api/v1/write", axum::routing::post(receive))
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&counts));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/api/v1/write", listener.local_addr()?);
        let server = crate::endpoints::spawn(listener, router);
        Ok(Receiver {
            url,
            counts,
            server,
        })
    }

    fn bytes(&self) -> u64 {
        self.counts.bytes.load(Ordering::Relaxed)
    }

    fn pushes(&self) -> u64 {
        self.counts.pushes.load(Ordering::Relaxed)
    }

    fn set_down(&self, down: bool) {
        self.counts.down.store(down, Ordering::Relaxed);
    }
}

async fn receive(State(counts): State<Arc<Counts>>, body: Bytes) -> StatusCode {
    if counts.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    counts.pushes.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// Switches the agent to pushing and measures it; prints its numbers,
/// its CPU against `scraped_cpu` (the same agent's, scraped, over as long).
pub(super) async fn run(
    agent: &ChildAgent,
    dir: &BenchDir,
    args: &TargetsBenchArgs,
    http: &reqwest::Client,
    scraped_cpu: Duration,
) -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;
    let config = dir.path.join("agent.yaml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "remote_write:\n  - url: {}\n    interval: {}\n",
        receiver.url,
        humantime::format_duration(args.scrape_every)
    ));
    super::write_atomically(&config, &text)?;
    agent.reload()?;
    let owned = receiver;
    let receiver = &owned;
    wait_until("the first push", PATIENCE, || async move {
        agent.check_alive()?;
        Ok(receiver.pushes() > 0)
    })
    .await?;
    // A reload restarts every probe (their first runs, logins included,
    // spread over one interval): measure once those are over.
    tokio::time::sleep(args.interval + args.scrape_every).await;

    let steady = measure(agent, receiver, args.measure_for).await?;
    let seconds = args.measure_for.as_secs_f64();
    println!(
        "pushing instead (every {}, unscraped): CPU {:.2} % of one core ({:.2} s over {})",
        humantime::format_duration(args.scrape_every),
        steady.cpu.as_secs_f64() / seconds * 100.0,
        steady.cpu.as_secs_f64(),
        humantime::format_duration(args.measure_for),
    );
    println!(
        "pushing / scraped CPU:       {:.2}x",
        steady.cpu.as_secs_f64() / scraped_cpu.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    println!(
        "RSS pushing:                 {:.1} MiB (max of samples every {}s)",
        steady.max_rss_kib as f64 / 1024.0,
        RSS_SAMPLE.as_secs()
    );
    println!(
        "on the wire:                 {:.1} kB/s ({} pushes, {:.1} MB compressed)",
        steady.bytes as f64 / seconds / 1e3,
        steady.pushes,
        steady.bytes as f64 / 1e6
    );

    receiver.set_down(true);
    let outage = measure(agent, receiver, args.outage).await?;
    let queued = agent.queue_bytes(http).await?;
    println!(
        "receiver answering 503 for {}: RSS max {:.1} MiB, queue {:.1} MiB at its end",
        humantime::format_duration(args.outage),
        outage.max_rss_kib as f64 / 1024.0,
        queued as f64 / (1024.0 * 1024.0)
    );
    let dropped = agent
        .metric(
            http,
            "chatprobe_remote_write_samples_total{result=\"dropped_queue_full\"",
        )
        .await?;
    println!("samples dropped, queue full: {dropped:.0} (the oldest first)");
    receiver.set_down(false);
    let back = Instant::now();
    wait_until(
        "the queue to empty",
        PATIENCE + args.outage,
        || async move {
            agent.check_alive()?;
            Ok(agent.queue_bytes(http).await? == 0)
        },
    )
    .await?;
    println!(
        "receiver back: queue empty after {:.1} s",
        back.elapsed().as_secs_f64()
    );
    owned.server.stop(Duration::from_millis(500)).await;
    Ok(())
}

/// What the agent cost over a period, and what the receiver got meanwhile.
struct Pushed {
    cpu: Duration,
    max_rss_kib: u64,
    bytes: u64,
    pushes: u64,
}

/// The agent's CPU time over `period` and its largest RSS, sampled every
/// [`RSS_SAMPLE`]; nothing scrapes it.
async fn measure(
    agent: &ChildAgent,
    receiver: &Receiver,
    period: Duration,
) -> anyhow::Result<Pushed> {
    let pid = agent.pid();
    let (cpu_before, bytes_before, pushes_before) =
        (cpu_time_of(&pid)?, receiver.bytes(), receiver.pushes());
    let until = Instant::now() + period;
    let mut max_rss_kib = rss_kib_of(&pid)?;
    while Instant::now() < until {
        let next = (Instant::now() + RSS_SAMPLE).min(until);
        tokio::time::sleep_until(next.into()).await;
        max_rss_kib = max_rss_kib.max(rss_kib_of(&pid)?);
    }
    Ok(Pushed {
        cpu: cpu_time_of(&pid)?.saturating_sub(cpu_before),
        max_rss_kib,
        bytes: receiver.bytes() - bytes_before,
        pushes: receiver.pushes() - pushes_before,
    })
}

impl ChildAgent {
    /// Sends the agent SIGHUP: it reloads its config.
    fn reload(&self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32)
            .context("the agent has a process id")?;
        rustix::process::kill_process(pid, rustix::process::Signal::Hup)
            .context("sending SIGHUP to the agent")
    }

    /// The value of the first series of its `/metrics` that starts with
    /// `series` (a name and the start of its labels).
    async fn metric(&self, http: &reqwest::Client, series: &str) -> anyhow::Result<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no {series}...}} in /metrics"))
    }

    /// `chatprobe_remote_write_queue_bytes` of its `/metrics`.
    async fn queue_bytes(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let bytes = self
            .metric(http, "chatprobe_remote_write_queue_bytes{")
            .await?;
        Ok(bytes as u64)
    }
}
