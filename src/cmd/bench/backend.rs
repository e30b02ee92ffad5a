//! `chatprobe bench backend`: connects real HTTP and WebSocket clients over
//! 127.0.0.1 to a backend (started in this process unless `--url` is given)
//! and measures sends/s and push deliveries/s (`fanout`), or runs/s of the
//! `group_message` workload (`group-message`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::backend::{self, BackendConfig, BackendHandle};
use crate::protocol::{CreateGroupRequest, Group, LoginRequest, LoginResponse, SendRequest};

/// Timeout of every HTTP call and WebSocket handshake of the benchmark.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// After sending stops, how long to wait for the remaining deliveries.
const DRAIN: Duration = Duration::from_secs(5);
/// Read buffer of each benchmark push connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Messages per `group_message` run, and receiving devices per room.
const BURST: usize = 3;
const RECEIVERS: usize = 3;

/// Options of `chatprobe bench backend`.
#[derive(Debug, Clone, Args)]
pub struct BackendBenchArgs {
    /// Backend to measure (`http://HOST:PORT`); default: start one in this process on 127.0.0.1:0.
    #[arg(long)]
    pub url: Option<String>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Workload::Fanout)]
    pub workload: Workload,
    /// Connected devices (fanout), one per user.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Members per group (fanout); devices are split into groups of this size.
    #[arg(long, default_value_t = 100)]
    pub group_size: usize,
    /// Concurrent senders per group (fanout).
    #[arg(long, default_value_t = 2)]
    pub senders_per_group: usize,
    /// Concurrent rooms (group-message), each 1 sender and 3 receiving devices.
    #[arg(long, default_value_t = 32)]
    pub rooms: usize,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Many senders, every message pushed to every member's device.
    Fanout,
    /// The group_message probe: 3 messages, 3 receiving devices, wait for all 9 deliveries.
    GroupMessage,
}

/// Run the benchmark and print its numbers.
pub(crate) async fn run(args: BackendBenchArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    println!("{report}");
    Ok(())
}

/// What one benchmark measured.
#[derive(Debug, Clone)]
pub enum Report {
    /// Numbers of the `fanout` workload.
    Fanout(FanoutReport),
    /// Numbers of the `group-message` workload.
    GroupMessage(GroupMessageReport),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Fanout(report) => report.fmt(f),
            Report::GroupMessage(report) => report.fmt(f),
        }
    }
}

/// Numbers of the `fanout` workload.
#[derive(Debug, Clone)]
pub struct FanoutReport {
    /// Connected devices.
    pub devices: usize,
    /// Groups they were split into.
    pub groups: usize,
    /// Members per group.
    pub(crate) group_size: usize,
    /// Concurrent senders per group.
    pub(crate) senders_per_group: usize,
    /// Length of the measuring window.
    pub(crate) elapsed: Duration,
    /// Acknowledged sends in the window.
    pub sends: u64,
    /// Sends answered with an error.
    pub failed_sends: u64,
    /// Push frames received in the window.
    pub(crate) delivered_in_window: u64,
    /// Push frames received by the end of the drain.
    pub delivered: u64,
    /// Push frames the acknowledged sends should produce.
    pub expected: u64,
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "fanout: {} devices connected, {} groups of {}, {} senders per group, {seconds:.1}s",
            self.devices, self.groups, self.group_size, self.senders_per_group
        )?;
        writeln!(
            f,
            "sends: {} ({:.0}/s), failed sends: {}",
            self.sends,
            self.sends as f64 / seconds,
            self.failed_sends
        )?;
        write!(
            f,
            "push deliveries: {} in the window ({:.0}/s); after drain {} of {} expected",
            self.delivered_in_window,
            self.delivered_in_window as f64 / seconds,
            self.delivered,
            self.expected
        )
    }
}

/// Numbers of the `group-message` workload.
#[derive(Debug, Clone)]
pub struct GroupMessageReport {
    /// Concurrent rooms.
    pub(crate) rooms: usize,
    /// Length of the measuring window.
    pub(crate) elapsed: Duration,
    /// Durations of the successful runs, sorted.
    pub latencies: Vec<Duration>,
    /// Runs that failed (an error or a missing delivery).
    pub failed: u64,
}

impl fmt::Display for GroupMessageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let runs = self.latencies.len();
        let deliveries = runs * BURST * RECEIVERS;
        writeln!(
            f,
            "group-message: {} rooms (1 sender, {RECEIVERS} receiving devices, {BURST} messages a run), {seconds:.1}s",
            self.rooms
        )?;
        write!(
            f,
            "runs: {runs} ({:.0}/s), failed runs: {}, deliveries: {deliveries} ({:.0}/s)",
            runs as f64 / seconds,
            self.failed,
            deliveries as f64 / seconds
        )?;
        if let (Some(median), Some(max)) = (self.latencies.get(runs / 2), self.latencies.last()) {
            let p99 = self.latencies[(runs * 99 / 100).min(runs - 1)];
            write!(f, "\nrun latency: p50 {median:?}, p99 {p99:?}, max {max:?}")?;
        }
        Ok(())
    }
}

/// Run the benchmark and answer its numbers.
pub async fn measure(args: &BackendBenchArgs) -> anyhow::Result<Report> {
    crate::client::init_tls();
    let (base, local) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_string(), None),
        None => {
            let handle = backend::start(BackendConfig::ephemeral()).await?;
            (format!("http://{}", handle.addr()), Some(handle))
        }
    };
    let api = Arc::new(Api::new(&base)?);
    let result = match args.workload {
        Workload::Fanout => fanout(&api, args).await.map(Report::Fanout),
        Workload::GroupMessage => group_message(&api, args).await.map(Report::GroupMessage),
    };
    if let Some(handle) = local {
        stop(handle).await;
    }
    result
}

async fn stop(handle: BackendHandle) {
    if let Err(error) = handle.shutdown().await {
        tracing::warn!(%error, "in-process backend did not stop cleanly");
    }
}

/// The HTTP side of the benchmark clients.
struct Api {
    http: reqwest::Client,
    base: String,
    run: String,
}

impl Api {
    fn new(base: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(STEP_TIMEOUT)
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(Api {
            http,
            base: base.to_string(),
            run: format!("{:08x}", rand::random::<u32>()),
        })
    }

    /// A bench user name unique to this run (the backend may be shared and long-running).
    fn user(&self, index: usize) -> String {
        format!("bench-{}-{index}", self.run)
    }

    async fn login(&self, user: &str) -> anyhow::Result<LoginResponse> {
        let request = LoginRequest {
            user: user.to_string(),
            password: format!("pw-{}", self.run),
        };
        let response = self
            .http
            .post(format!("{}{}", self.base, crate::protocol::route::LOGIN))
            .json(&request)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    async fn create_group(&self, token: &str, members: Vec<String>) -> anyhow::Result<Group> {
        let request = CreateGroupRequest {
            name: format!("bench-{}", self.run),
            notice: String::new(),
            members,
        };
        let response = self
            .http
            .post(format!("{}{}", self.base, crate::protocol::route::GROUPS))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    async fn send(&self, token: &str, group: &str, key: String) -> anyhow::Result<()> {
        let request = SendRequest {
            body: format!("bench message {key}"),
            idempotency_key: key,
        };
        self.http
            .post(format!("{}/api/v1/groups/{group}/messages", self.base))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Open a push connection and forward each text frame's text to `on_frame`.
    async fn push(
        &self,
        token: &str,
        mut on_frame: impl FnMut(&str) + Send + 'static,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = format!("{ws_base}{}", crate::protocol::route::PUSH);
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        // tungstenite zero-fills its whole read buffer (128 KiB by default) on every read.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        let (stream, _) = tokio::time::timeout(STEP_TIMEOUT, connect)
            .await
            .context("push connect timed out")??;
        Ok(tokio::spawn(async move {
            let mut stream = stream;
            while let Some(Ok(frame)) = stream.next().await {
                if let tungstenite::Message::Text(text) = frame {
                    on_frame(text.as_str());
                }
            }
        }))
    }

    /// Log in users `first..first+count`, a few at a time.
    async fn login_many(
        self: &Arc<Self>,
        first: usize,
        count: usize,
    ) -> anyhow::Result<Vec<LoginResponse>> {
        let mut tasks = JoinSet::new();
        let per_task = count.div_ceil(16).max(1);
        for chunk_start in (first..first + count).step_by(per_task) {
            let api = self.clone();
            let chunk_end = (chunk_start + per_task).min(first + count);
            tasks.spawn(async move {
                let mut logins = Vec::new();
                for index in chunk_start..chunk_end {
                    logins.push((index, api.login(&api.user(index)).await?));
                }
                anyhow::Ok(logins)
            });
        }
        let mut logins = Vec::with_capacity(count);
        while let Some(done) = tasks.join_next().await {
            logins.extend(done??);
        }
        logins.sort_by_key(|(index, _)| *index);
        Ok(logins.into_iter().map(|(_, login)| login).collect())
    }
}

/// Fan-out: `devices` connected devices in groups of `group_size`, senders in every group.
async fn fanout(api: &Arc<Api>, args: &BackendBenchArgs) -> anyhow::Result<FanoutReport> {
    if args.group_size == 0 || args.devices < args.group_size {
        bail!("--devices must be at least --group-size, which must be at least 1");
    }
    let groups_count = args.devices / args.group_size;
    let devices = groups_count * args.group_size;
    let logins = api.login_many(0, devices).await?;
    let mut groups = Vec::new();
    for members in logins.chunks(args.group_size) {
        let others = members[1..]
            .iter()
            .map(|login| login.user.clone())
            .collect();
        let group = api.create_group(&members[0].token, others).await?;
        groups.push((group.id, members.to_vec()));
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for login in &logins {
        let counter = delivered.clone();
        readers.push(
            api.push(&login.token, move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .await?,
        );
    }
    // The connections may still receive the groups' creation events.
    settle(&delivered).await;
    let before = delivered.load(Ordering::Relaxed);
    let sends = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = JoinSet::new();
    let started = Instant::now();
    for (group_index, (group, members)) in groups.iter().enumerate() {
        for sender in 0..args.senders_per_group {
            let (api, sends, failures, stop) =
                (api.clone(), sends.clone(), failures.clone(), stop.clone());
            let member = &members[sender % members.len()];
            let (token, group) = (member.token.clone(), group.clone());
            senders.spawn(async move {
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    count += 1;
                    match api
                        .send(&token, &group, format!("{group_index}-{sender}-{count}"))
                        .await
                    {
                        Ok(()) => sends.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    }
    tokio::time::sleep(args.duration).await;
    let in_window = delivered.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    while senders.join_next().await.is_some() {}
    let sent = sends.load(Ordering::Relaxed);
    let expected = sent * args.group_size as u64;
    let drain_until = Instant::now() + DRAIN;
    while delivered.load(Ordering::Relaxed) - before < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = delivered.load(Ordering::Relaxed) - before;
    for reader in readers {
        reader.abort();
    }
    Ok(FanoutReport {
        devices,
        groups: groups_count,
        group_size: args.group_size,
        senders_per_group: args.senders_per_group,
        elapsed,
        sends: sent,
        failed_sends: failures.load(Ordering::Relaxed),
        delivered_in_window: in_window,
        delivered: total,
        expected,
    })
}

/// Wait until no frame has arrived for a moment (bounded).
async fn settle(counter: &AtomicU64) {
    let mut last = counter.load(Ordering::Relaxed);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

/// One room of the group_message workload: a sender and its receivers' arrivals.
struct Room {
    sender_token: String,
    group: String,
    arrivals: mpsc::UnboundedReceiver<()>,
}

/// group_message: rooms of 1 sender + 3 receiving devices; a run sends 3 messages
/// (each after the previous one's acknowledgment) and waits for all 9 deliveries.
async fn group_message(
    api: &Arc<Api>,
    args: &BackendBenchArgs,
) -> anyhow::Result<GroupMessageReport> {
    if args.rooms == 0 {
        bail!("--rooms must be at least 1");
    }
    let per_room = 1 + RECEIVERS;
    let logins = api.login_many(0, args.rooms * per_room).await?;
    let mut rooms = Vec::new();
    let mut readers = Vec::new();
    for members in logins.chunks(per_room) {
        let others = members[1..]
            .iter()
            .map(|login| login.user.clone())
            .collect();
        let group = api.create_group(&members[0].token, others).await?;
        let (arrived, arrivals) = mpsc::unbounded_channel();
        for receiver in &members[1..] {
            let arrived = arrived.clone();
            readers.push(
                api.push(&receiver.token, move |text| {
                    if text.contains("\"type\":\"message\"") {
                        let _ = arrived.send(());
                    }
                })
                .await?,
            );
        }
        rooms.push(Room {
            sender_token: members[0].token.clone(),
            group: group.id,
            arrivals,
        });
    }
    let deadline = Instant::now() + args.duration;
    let started = Instant::now();
    let mut drivers = JoinSet::new();
    for (index, room) in rooms.into_iter().enumerate() {
        let api = api.clone();
        drivers.spawn(async move { drive_room(&api, room, index, deadline).await });
    }
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    while let Some(done) = drivers.join_next().await {
        let (room_latencies, room_failed) = done?;
        latencies.extend(room_latencies);
        failed += room_failed;
    }
    let elapsed = started.elapsed();
    for reader in readers {
        reader.abort();
    }
    latencies.sort();
    Ok(GroupMessageReport {
        rooms: args.rooms,
        elapsed,
        latencies,
        failed,
    })
}

/// Run the room until `deadline`; answers each successful run's duration and the failures.
async fn drive_room(
    api: &Api,
    mut room: Room,
    index: usize,
    deadline: Instant,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut run = 0u64;
    while Instant::now() < deadline {
        run += 1;
        let started = Instant::now();
        if one_run(api, &mut room, &format!("{index}-{run}")).await {
            latencies.push(started.elapsed());
        } else {
            failed += 1;
            // Forget arrivals of the failed run so the next one counts from zero.
            while room.arrivals.try_recv().is_ok() {}
        }
    }
    (latencies, failed)
}

async fn one_run(api: &Api, room: &mut Room, run: &str) -> bool {
    for message in 0..BURST {
        if api
            .send(&room.sender_token, &room.group, format!("{run}-{message}"))
            .await
            .is_err()
        {
            return false;
        }
    }
    for _ in 0..BURST * RECEIVERS {
        match tokio::time::timeout(STEP_TIMEOUT, room.arrivals.recv()).await {
            Ok(Some(())) => {}
            _ => return false,
        }
    }
    true
}
