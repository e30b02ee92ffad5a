//! A monitoring stack for the dashboard and alerting tests, built from real
//! processes on 127.0.0.1: the `chatprobe` binary as mock backend and agents,
//! Prometheus and Alertmanager. Every process is killed when its guard drops,
//! also when a test fails.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for a process to say where it listens.
const STARTUP: Duration = Duration::from_secs(60);
/// Timeout of one HTTP request to a process of the stack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The repository's `dashboards/` directory.
pub const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");

/// A file of `dashboards/`.
pub fn dashboards_file(name: &str) -> PathBuf {
    Path::new(DASHBOARDS).join(name)
}

/// A temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory whose name says what it is for.
    pub fn new(purpose: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "chatprobe-{purpose}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("temporary directory can be created");
        TempDir(path)
    }

    /// The path of `name` inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` inside it and returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed and reaped on drop. Its output is copied to the
/// test's stderr with its name in front, so a failing test shows it.
pub struct Process {
    name: String,
    child: Child,
    listening: mpsc::Receiver<SocketAddr>,
}

impl Process {
    /// Starts `command`, with stdout and stderr forwarded line by line.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let (sender, listening) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward_output(name, stdout, sender.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward_output(name, stderr, sender);
        }
        Process {
            name: name.to_string(),
            child,
            listening,
        }
    }

    /// The address from the process's `listening on ADDR` log line.
    pub fn listening_addr(&mut self) -> SocketAddr {
        match self.listening.recv_timeout(STARTUP) {
            Ok(addr) => addr,
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{} did not log `listening on ADDR` within {STARTUP:?} (exit status: {status:?})",
                    self.name
                )
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a child's output to stderr and reports any `listening on ADDR`.
fn forward_output(
    name: &str,
    output: impl Read + Send + 'static,
    listening: mpsc::Sender<SocketAddr>,
) {
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
            if let Some(addr) = listening_addr_in(&line) {
                let _ = listening.send(addr);
            }
        }
    });
}

/// The socket address after `listening on ` in a log line (text or JSON).
pub fn listening_addr_in(line: &str) -> Option<SocketAddr> {
    let (_, after) = line.split_once("listening on ")?;
    let addr: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse().ok()
}

/// The `chatprobe` binary under test.
pub fn chatprobe() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatprobe"));
    command.arg("--log-format").arg("json");
    command
}

/// Starts the mock backend on a free port; returns it and its base URL.
pub fn start_backend(dir: &TempDir) -> (Process, String) {
    let config = dir.write("backend.yaml", "listen: 127.0.0.1:0\n");
    let mut backend = Process::spawn(
        "backend",
        chatprobe().arg("backend").arg("--config").arg(config),
    );
    let addr = backend.listening_addr();
    (backend, format!("http://{addr}"))
}

/// The probe every test agent runs: a group message burst, quick deadlines.
const GROUP_MESSAGE_PROBE: &str = "\
name: group_message
kind: group_message
step_timeout: 2s
delivery_deadline: 3s
latency_objective: 1s
group_size: 3
messages: 2
";

/// Starts an agent for `region` probing the backend at `backend_url` every
/// `interval`; returns it and its /metrics URL.
pub fn start_agent(
    dir: &TempDir,
    region: &str,
    backend_url: &str,
    interval: Duration,
) -> (Process, String) {
    let probe = dir.write("group_message.yaml", GROUP_MESSAGE_PROBE);
    let config = format!(
        "region: {region}\n\
         listen: 127.0.0.1:0\n\
         interval: {interval}\n\
         targets:\n\
         \x20 - kind: mock\n\
         \x20   name: mock\n\
         \x20   url: {backend_url}\n\
         \x20   request_timeout: 3s\n\
         \x20   accounts:\n\
         \x20     password: chatprobe-test\n\
         probes:\n\
         \x20 - {probe}\n",
        interval = humantime::format_duration(interval),
        probe = probe.display(),
    );
    let config = dir.write(&format!("agent-{region}.yaml"), &config);
    let mut agent = Process::spawn(
        &format!("agent {region}"),
        chatprobe().arg("agent").arg("--config").arg(config),
    );
    let addr = agent.listening_addr();
    (agent, format!("http://{addr}/metrics"))
}

/// An HTTP client for the stack (plain HTTP on loopback, bounded requests).
pub fn http_client() -> reqwest::Client {
    chatprobe::client::init_tls();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client can be built")
}

/// GET `url` and its body as text, or why not.
pub async fn get_text(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| format!("GET {url}: body: {error}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

/// GET `url` as JSON, or why not.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let body = get_text(http, url).await?;
    serde_json::from_str(&body).map_err(|error| format!("GET {url}: not JSON ({error}): {body}"))
}

/// Polls `check` every `every` until it returns `Some`, for at most `limit`;
/// panics naming `what` (and the last state seen) when time runs out.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(state) => state,
        };
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(every).await;
    }
}

/// A fault that makes every `send` from `regions` answer 503 (reason `http_error`).
pub fn send_outage(regions: &[&str]) -> Value {
    serde_json::json!([{
        "name": "send-outage",
        "operations": ["send"],
        "regions": regions,
        "effect": "error",
        "status": 503,
    }])
}

/// Replaces the backend's faults (`PUT /admin/faults`); an empty array removes them.
pub async fn set_faults(http: &reqwest::Client, backend_url: &str, faults: &Value) {
    let url = format!("{backend_url}/admin/faults");
    let response = http
        .put(&url)
        .json(faults)
        .send()
        .await
        .unwrap_or_else(|error| panic!("PUT {url}: {error}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "PUT {url} {faults}: {status}: {body}");
}
