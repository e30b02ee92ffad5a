//! Runs the `chatprobe` binary as a child process and talks to its endpoints,
//! for the agent and demo tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits for on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `chatprobe` child with its stderr collected line by line.
pub struct Running {
    child: Child,
    /// Where its endpoints listen (from its `listening on ADDR` log line).
    pub addr: SocketAddr,
    /// Every stderr line so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

/// Start `chatprobe --log-format json ARGS` and wait until its HTTP endpoints
/// are bound.
pub fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatprobe");
    let stderr = child.stderr.take().expect("stderr is piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            collected.lock().unwrap().push(line);
        }
    });
    let mut running = Running {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        lines,
    };
    running.addr = running.wait_for_listening();
    running
}

impl Running {
    fn wait_for_listening(&mut self) -> SocketAddr {
        let found = self.wait_for_line(|line| {
            line.contains("\"target\":\"chatprobe::http\"") && line.contains("listening on ")
        });
        let line = found.unwrap_or_else(|| panic!("no `listening on` line:\n{}", self.log()));
        let tail = &line[line.find("listening on ").unwrap() + "listening on ".len()..];
        let addr: String = tail.chars().take_while(|c| *c != '"').collect();
        addr.parse().expect("listening address parses")
    }

    /// The first stderr line matching `wanted`, waiting up to [`PATIENCE`].
    pub fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| wanted(l)) {
                return Some(line.clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chatprobe exited ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// How many stderr lines so far match `wanted`.
    pub fn count_lines(&self, wanted: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| wanted(l))
            .count()
    }

    /// Everything it wrote to stderr.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// `GET path` on its endpoints: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    /// Poll `GET path` until `accept` says yes (up to [`PATIENCE`]); the last answer.
    pub fn poll(&self, path: &str, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
        poll_get(self.addr, path, accept)
    }

    /// Send a signal (`TERM`, `HUP`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Wait up to `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `GET path` on `addr` until `accept` says yes (up to [`PATIENCE`]); the last answer.
pub fn poll_get(addr: SocketAddr, path: &str, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = http_get(addr, path);
        if accept(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.0 GET over a plain socket.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    attempt().unwrap_or((0, String::new()))
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("chatprobe-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Write `name` (a relative path; parent directories are made) with `text`; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped probe directory.
pub fn shipped_probes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("probes")
}

/// An agent config probing the mock at `url` in `region` with `probes`, every
/// probe every `interval`, endpoints on an ephemeral port.
pub fn agent_config(region: &str, url: &str, probes: &Path, interval: &str) -> String {
    format!(
        "region: {region}
listen: 127.0.0.1:0
targets:
  - kind: mock
    name: mock
    url: {url}
    request_timeout: 5s
    accounts:
      prefix: test
      password: test-password
probes: [{}]
interval: {interval}
jitter: 0.1
run_timeout: 30s
",
        probes.display()
    )
}

/// The value of the series `series` (name with labels, exactly as exported).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The mock backend running in this test process on 127.0.0.1:0, with the
/// faults written in `faults_yaml` (a YAML list; empty for none).
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    handle: Option<chatprobe::backend::BackendHandle>,
    runtime: tokio::runtime::Runtime,
}

impl Backend {
    /// Start it.
    pub fn start(faults_yaml: &str) -> Backend {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = chatprobe::backend::BackendConfig::ephemeral();
        if !faults_yaml.is_empty() {
            config.faults = chatprobe::yaml::parse(Path::new("faults.yaml"), faults_yaml)
                .expect("faults parse");
        }
        let handle = runtime
            .block_on(chatprobe::backend::start(config))
            .expect("backend starts");
        Backend {
            url: format!("http://{}", handle.addr()),
            handle: Some(handle),
            runtime,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let stop =
                async { tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await };
            let _ = self.runtime.block_on(stop);
        }
    }
}

/// A probe file of `kind` named after it, with short timeouts for tests.
pub fn probe_file(kind: &str) -> String {
    let devices = if kind == "device_sync" { 2 } else { 1 };
    format!(
        "name: {kind}\nkind: {kind}\nstep_timeout: 2s\ndelivery_deadline: 3s\nlatency_objective: 2s\ngroup_size: 3\ndevices_per_account: {devices}\n"
    )
}

/// A scratch directory with a `probes/` holding a test probe file of each of `kinds`.
pub fn scratch_with_probes(tag: &str, kinds: &[&str]) -> Scratch {
    let scratch = Scratch::new(tag);
    std::fs::create_dir_all(scratch.0.join("probes")).unwrap();
    for kind in kinds {
        scratch.write(&format!("probes/{kind}.yaml"), &probe_file(kind));
    }
    scratch
}

/// `chatprobe demo` on a free port with a probe interval of 1 s and the faults of `scenario`.
pub fn start_demo(scenario: &Path) -> Running {
    let scenario = scenario.to_str().expect("scenario path is UTF-8");
    spawn(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "1s",
        "--scenario",
        scenario,
    ])
}
