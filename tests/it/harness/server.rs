//! A real server a test runs (Synapse, Prosody): its child process in its own
//! temporary directory, output in `stdout.log` there, waited on until it
//! answers, restartable in place (same directory, same data), killed on drop
//! before the directory goes.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::dir::TempDir;

/// A server's child process and its directory.
pub struct ServerChild {
    name: &'static str,
    command: Command,
    child: Option<Child>,
    dir: TempDir,
    logs: &'static [&'static str],
}

impl ServerChild {
    /// Starts `command` named `name` in `dir`, stdout and stderr into
    /// `stdout.log`; `logs` are the files (in `dir`) [`ServerChild::log_tail`] shows.
    pub fn spawn(
        name: &'static str,
        dir: TempDir,
        command: Command,
        logs: &'static [&'static str],
    ) -> ServerChild {
        let mut server = ServerChild {
            name,
            command,
            child: None,
            dir,
            logs,
        };
        server.restart();
        server
    }

    /// Kills the server if it runs and starts its command again in the same
    /// directory (its data kept), output appended to `stdout.log`. Wait for
    /// it with [`ServerChild::wait_until_ready`].
    pub fn restart(&mut self) {
        self.stop();
        let name = self.name;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .unwrap_or_else(|error| panic!("open {name} stdout log: {error}"));
        let child = self
            .command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        self.child = Some(child);
    }

    /// Polls `ready` every `poll` until it is true; panics with the logs when
    /// the server exits first or `deadline` passes (it did not `what`).
    pub async fn wait_until_ready<Ready>(
        &mut self,
        deadline: Duration,
        poll: Duration,
        what: &str,
        ready: impl Fn() -> Ready,
    ) where
        Ready: Future<Output = bool>,
    {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited during start ({status}):\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if ready().await {
                return;
            }
            tokio::time::sleep(poll).await;
        }
        panic!(
            "{} did not {what} within {deadline:?}:\n{}",
            self.name,
            self.log_tail()
        );
    }

    /// Kills the server (a stopped server for connection-failure tests).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the server's logs, for failure messages.
    pub fn log_tail(&self) -> String {
        std::iter::once("stdout.log")
            .chain(self.logs.iter().copied())
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("--- {name}\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        // Before the directory goes (when the fields drop).
        self.stop();
    }
}
