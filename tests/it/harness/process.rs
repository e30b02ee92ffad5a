//! A child process of a test: its output collected line by line (and copied
//! to the test's stderr with its name in front, so a failing test shows it),
//! killed and reaped when dropped, also when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Generous bound for a line a test waits for on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The lines a child wrote so far (stdout and stderr), and a signal for each new one.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Output {
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running child process.
pub struct Process {
    name: String,
    child: Child,
    output: Arc<Output>,
}

impl Process {
    /// Starts `command` named `name`, with stdin closed and its output collected.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let output = Arc::new(Output::default());
        if let Some(stdout) = child.stdout.take() {
            collect(name, stdout, Arc::clone(&output));
        }
        if let Some(stderr) = child.stderr.take() {
            collect(name, stderr, Arc::clone(&output));
        }
        Process {
            name: name.to_string(),
            child,
            output,
        }
    }

    /// The first output line matching `wanted`, waiting up to [`PATIENCE`];
    /// fails the test if the process exits first.
    pub fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = self.output.lines();
        loop {
            if let Some(line) = lines.iter().find(|line| wanted(line)) {
                return Some(line.clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                drop(lines);
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by every new line; the bound notices an exit without output.
            let wait = left.min(Duration::from_millis(100));
            lines = match self.output.added.wait_timeout(lines, wait) {
                Ok((lines, _)) => lines,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The address of its first `listening on ADDR` line that also contains
    /// `marker` (e.g. the logging target), waiting up to [`PATIENCE`].
    pub fn listening_addr(&mut self, marker: &str) -> SocketAddr {
        let line = self
            .wait_for_line(|line| line.contains(marker) && listening_addr_in(line).is_some())
            .unwrap_or_else(|| {
                panic!(
                    "{} logged no `listening on ADDR` with {marker:?} within {PATIENCE:?}:\n{}",
                    self.name,
                    self.log()
                )
            });
        listening_addr_in(&line).expect("the line was chosen for its address")
    }

    /// How many output lines so far match `wanted`.
    pub fn count_lines(&self, wanted: impl Fn(&str) -> bool) -> usize {
        self.output
            .lines()
            .iter()
            .filter(|line| wanted(line))
            .count()
    }

    /// Everything it wrote so far.
    pub fn log(&self) -> String {
        self.output.lines().join("\n")
    }

    /// Sends a signal (`TERM`, `HUP`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.name);
    }

    /// Sends `signal` and asserts it then exits successfully within 15 s
    /// (its output in the message otherwise).
    pub fn stop_cleanly(&mut self, signal: &str) {
        self.signal(signal);
        let (status, _) = self
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{}: no exit after SIG{signal}:\n{}", self.name, self.log()));
        assert!(status.success(), "{}: {status}:\n{}", self.name, self.log());
    }

    /// Waits up to `limit` for it to exit: its status and how long that took.
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a child's output into `output` and copies it to stderr.
fn collect(name: &str, stream: impl Read + Send + 'static, output: Arc<Output>) {
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
            output.lines().push(line);
            output.added.notify_all();
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
