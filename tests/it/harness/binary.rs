//! The `chatprobe` binary under test: its long-running commands (`backend`,
//! `agent`, `demo`, `status-page`) as child processes that say where they listen, and its
//! one-shot commands (`once`, `check`) run to completion.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;

use super::dir::TempDir;
use super::http::{http_get, poll_get};
use super::process::Process;

/// The logging target of the agent's and demo's HTTP endpoints.
const HTTP_TARGET: &str = "\"target\":\"chatprobe::endpoints\"";
/// The logging target of the mock backend.
const BACKEND_TARGET: &str = "\"target\":\"chatprobe::backend\"";

/// `chatprobe --log-format json`, ready for a subcommand.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatprobe"));
    command.args(["--log-format", "json"]);
    command
}

/// A long-running `chatprobe` command and the address it listens on.
pub struct Running {
    process: Process,
    /// Where it listens (from its `listening on ADDR` log line).
    pub addr: SocketAddr,
    /// A directory of its own (a status page's store), removed after it stops.
    _dir: Option<TempDir>,
}

impl Running {
    /// Starts `chatprobe --log-format json ARGS` as `name` and waits for the
    /// `listening on` line logged under `target`.
    fn start(name: &str, args: &[&OsStr], target: &str) -> Running {
        let mut process = Process::spawn(name, command().args(args));
        let addr = process.listening_addr(target);
        Running {
            process,
            addr,
            _dir: None,
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET path` on it: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    /// Polls `GET path` until `accept` says yes (bounded); the last answer.
    pub fn poll(&self, path: &str, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
        poll_get(self.addr, path, accept)
    }
}

impl Deref for Running {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// `chatprobe backend --config CONFIG` plus `extra` arguments; answers once it listens.
pub fn start_backend(config: &Path, extra: &[&str]) -> Running {
    let mut args = vec![
        OsStr::new("backend"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    Running::start("backend", &args, BACKEND_TARGET)
}

/// `chatprobe agent --config CONFIG`, named after its config file; answers
/// once its endpoints listen.
pub fn start_agent(config: &Path) -> Running {
    let name = config.file_stem().unwrap_or_default().to_string_lossy();
    let args = [
        OsStr::new("agent"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    Running::start(&name, &args, HTTP_TARGET)
}

/// `chatprobe demo` on a free port with a probe interval of 1 s and the
/// faults of `scenario`; answers once its endpoints listen.
pub fn start_demo(scenario: &Path) -> Running {
    let args = [
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "1s",
        "--scenario",
    ];
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.push(scenario.as_os_str());
    Running::start("demo", &args, HTTP_TARGET)
}

/// `chatprobe status-page --prometheus URL --listen 127.0.0.1:0` plus
/// `extra` arguments; answers once it listens. Without a `--store` in
/// `extra`, its reports are kept in a directory of its own, removed with it.
pub fn start_status_page(prometheus_url: &str, extra: &[&OsStr]) -> Running {
    let mut args: Vec<&OsStr> = [
        "status-page",
        "--prometheus",
        prometheus_url,
        "--listen",
        "127.0.0.1:0",
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    args.extend(extra);
    let own_store = !extra.contains(&OsStr::new("--store"));
    let dir = own_store.then(|| TempDir::new("status-page-store"));
    let store = dir
        .as_ref()
        .map(|dir| format!("sqlite:{}", dir.join("status.db").display()));
    if let Some(store) = &store {
        args.extend([OsStr::new("--store"), OsStr::new(store)]);
    }
    let mut running = Running::start("status-page", &args, HTTP_TARGET);
    running._dir = dir;
    running
}

/// What a one-shot command did.
pub struct Finished {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `chatprobe SUBCOMMAND --config CONFIG` (plain log format) to completion.
pub fn run(subcommand: &str, config: &Path) -> Finished {
    let output = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args([subcommand, "--config"])
        .arg(config)
        .output()
        .unwrap_or_else(|error| panic!("cannot run chatprobe {subcommand}: {error}"));
    Finished {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
