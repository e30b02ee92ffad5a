//! A real Synapse homeserver for tests: configured by `configure.sh` in a
//! fresh directory, listening on a free 127.0.0.1 port, killed on drop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chatprobe::client::ChatService;
use chatprobe::client::matrix::{MatrixOptions, MatrixService};

use crate::harness::dir::TempDir;
use crate::harness::fixtures::repo_file;
use crate::harness::protocol::RealServer;
use crate::harness::server::ServerChild;

/// How long Synapse may take to answer `/_matrix/client/versions` after start.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// A running Synapse child process and its directory.
pub struct Synapse {
    process: ServerChild,
    /// The homeserver's base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
}

/// The `synapse_homeserver` to run: `CHATPROBE_SYNAPSE` (from
/// `target/tools.env`), else the one `tests/synapse/install.sh` installs,
/// else `synapse_homeserver` on `PATH`; `None` (test skipped) when none exists.
pub fn binary() -> Option<PathBuf> {
    let installed = repo_file("target/synapse-venv/bin/synapse_homeserver");
    if std::env::var_os("CHATPROBE_SYNAPSE").is_none() && installed.is_file() {
        return Some(installed);
    }
    super::tool(
        "CHATPROBE_SYNAPSE",
        "synapse_homeserver",
        "bash tests/synapse/install.sh",
    )
}

impl Synapse {
    /// Configures and starts Synapse, waiting until it answers; `None` when
    /// Synapse is not installed (and tools are not required).
    pub async fn start() -> Option<Synapse> {
        Synapse::start_with("").await
    }

    /// Like [`Synapse::start`], with `overrides` (YAML) replacing top-level
    /// settings of the generated config (Synapse merges its config files).
    pub async fn start_with(overrides: &str) -> Option<Synapse> {
        let binary = binary()?;
        let port = super::free_port();
        let dir = TempDir::new(&format!("synapse-{port}"));
        configure(&binary, dir.path(), port);
        let overrides_path = dir.join("overrides.yaml");
        std::fs::write(&overrides_path, overrides).expect("write Synapse config overrides");
        let mut command = Command::new(&binary);
        command
            .arg("--config-path")
            .arg(dir.join("homeserver.yaml"))
            .arg("--config-path")
            .arg(&overrides_path);
        let process = ServerChild::spawn("Synapse", dir, command, &["homeserver.log"]);
        let mut synapse = Synapse {
            process,
            url: format!("http://127.0.0.1:{port}"),
        };
        synapse.wait_until_ready().await;
        Some(synapse)
    }
}

/// Writes the homeserver config (see `configure.sh`).
fn configure(binary: &Path, dir: &Path, port: u16) {
    let script = repo_file("tests/synapse/configure.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg(port.to_string())
        .arg(binary)
        .output()
        .expect("run tests/synapse/configure.sh");
    assert!(
        output.status.success(),
        "configure.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Matrix client of `url` acting from `region`.
pub fn service(url: &str, region: &str, request_timeout: Duration) -> Arc<dyn ChatService> {
    let options = MatrixOptions {
        homeserver_url: url.to_owned(),
        region: region.into(),
        request_timeout,
        register: true,
    };
    Arc::new(MatrixService::new(options).expect("service builds"))
}

impl RealServer for Synapse {
    const TARGET: &'static str = "synapse";
    const PROTOCOL: &'static str = "matrix";
    const SHIPPED_ADDRESS_LINE: &'static str = "homeserver: http://127.0.0.1:8008";
    const SHIPPED_ADDRESS: &'static str = "http://127.0.0.1:8008";
    const SETTINGS_IN_ONE_EVENT: bool = false;
    const LISTED_GROUPS: &'static str = "joined rooms";

    fn start_server() -> impl Future<Output = Option<Self>> {
        Synapse::start()
    }

    fn child(&self) -> &ServerChild {
        &self.process
    }

    fn child_mut(&mut self) -> &mut ServerChild {
        &mut self.process
    }

    /// Polls `/_matrix/client/versions` until it answers, bounded by [`START_DEADLINE`].
    async fn wait_until_ready(&mut self) {
        chatprobe::client::init_tls();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("build HTTP client");
        let versions = format!("{}/_matrix/client/versions", self.url);
        let answers = || async {
            matches!(http.get(&versions).send().await, Ok(response) if response.status().is_success())
        };
        self.process
            .wait_until_ready(
                START_DEADLINE,
                Duration::from_millis(200),
                "answer",
                answers,
            )
            .await;
    }

    fn address(&self) -> &str {
        &self.url
    }

    fn service(&self, region: &str, request_timeout: Duration) -> Arc<dyn ChatService> {
        service(&self.url, region, request_timeout)
    }

    fn user_id_prefix(user: &str) -> String {
        format!("@{user}:")
    }
}
