//! The `chatprobe` binary under test: its long-running commands (`backend`,
//! `agent`, `demo`, `status-page`) as child processes that say where they listen, and its
//! one-shot commands (`once`, `check`) run to completion.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;

use super::dir::TempDir;
use super::fixtures::expected_errors;
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
        Running::start_with_env(name, args, &[], target)
    }

    /// [`Running::start`] with `env` set for it alone.
    fn start_with_env(name: &str, args: &[&OsStr], env: &[(&str, &str)], target: &str) -> Running {
        let mut command = command();
        command.args(args).envs(env.iter().copied());
        let mut process = Process::spawn(name, &mut command);
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
    let flags = ["--prometheus", prometheus_url, "--listen", "127.0.0.1:0"];
    let own_store = !extra.contains(&OsStr::new("--store"));
    let dir = own_store.then(|| TempDir::new("status-page-store"));
    let store = dir
        .as_ref()
        .map(|dir| format!("sqlite:{}", dir.join("status.db").display()));
    let mut extra = extra.to_vec();
    if let Some(store) = &store {
        extra.extend([OsStr::new("--store"), OsStr::new(store)]);
    }
    let mut running = status_page(&flags.map(OsStr::new), &extra);
    running._dir = dir;
    running
}

/// `chatprobe status-page --config CONFIG` plus `extra` arguments (the
/// config must listen on a free port); answers once it listens.
pub fn start_status_page_with_config(config: &Path, extra: &[&OsStr]) -> Running {
    status_page(&[OsStr::new("--config"), config.as_os_str()], extra)
}

/// `chatprobe status-page --config CONFIG` with `env` set for it (e.g.
/// `PGSSLMODE`); answers once it listens.
pub fn start_status_page_with_env(config: &Path, env: &[(&str, &str)]) -> Running {
    let args = [
        OsStr::new("status-page"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    Running::start_with_env("status-page", &args, env, HTTP_TARGET)
}

/// `chatprobe status-page` with `flags`, then `extra`.
fn status_page(flags: &[&OsStr], extra: &[&OsStr]) -> Running {
    let mut args = vec![OsStr::new("status-page")];
    args.extend(flags);
    args.extend(extra);
    Running::start("status-page", &args, HTTP_TARGET)
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
    run_args(&[
        OsStr::new(subcommand),
        OsStr::new("--config"),
        config.as_os_str(),
    ])
}

/// Runs `chatprobe ARGS` (plain log format) to completion.
pub fn run_args(args: &[&OsStr]) -> Finished {
    let output = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run chatprobe {args:?}: {error}"));
    Finished {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Finished {
    /// Asserts that `chatprobe check` failed on the fixture at `path` with
    /// exactly the errors its `# error: TEXT` comments name: one an annotated
    /// line, in line order, each at `path:LINE:` and holding its `TEXT`.
    pub fn assert_errors_of(&self, path: &Path) {
        assert!(!self.success, "{} passed: {}", path.display(), self.stdout);
        let expected = expected_errors(path);
        let reported: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| line.starts_with("error: "))
            .collect();
        assert_eq!(
            reported.len(),
            expected.len(),
            "{}: expected {expected:?}, got:\n{}",
            path.display(),
            self.stderr
        );
        for ((line, text), shown) in expected.iter().zip(&reported) {
            let place = format!("error: {}:{line}:", path.display());
            assert!(shown.starts_with(&place), "not at {place}: {shown}");
            assert!(shown.contains(text.as_str()), "no `{text}` in: {shown}");
        }
        let count = format!("{}: {} error(s)", path.display(), expected.len());
        assert!(self.stderr.contains(&count), "{}", self.stderr);
    }
}
