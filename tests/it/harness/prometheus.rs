//! Prometheus (and other outside tools) for end-to-end tests: started with
//! `--flag=value` arguments on 127.0.0.1, scraping the agents given.

use std::path::Path;
use std::process::Command;

use super::dir::TempDir;
use super::fixtures::filled_fixture;
use super::free_port;
use super::process::Process;

/// Starts an outside tool with `--flag=value` arguments.
pub fn start_tool(name: &str, binary: &Path, flags: &[(&str, String)]) -> Process {
    let mut command = Command::new(binary);
    for (flag, value) in flags {
        command.arg(format!("--{flag}={value}"));
    }
    Process::spawn(name, &mut command)
}

/// `static_configs` entries for agents given as (region, address).
pub fn scrape_targets(agents: &[(&str, String)]) -> String {
    agents
        .iter()
        .map(|(region, addr)| {
            format!("      - targets: [\"{addr}\"]\n        labels: {{region: {region}}}\n")
        })
        .collect()
}

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _process: Process,
}

impl Prometheus {
    /// Prometheus at `binary` with the config `yml`, its data in `dir`.
    pub fn start(binary: &Path, dir: &TempDir, yml: &str) -> Prometheus {
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.write("prometheus.yml", yml);
        let process = start_tool(
            "prometheus",
            binary,
            &[
                ("config.file", config.display().to_string()),
                ("storage.tsdb.path", dir.join("tsdb").display().to_string()),
                ("web.listen-address", addr.clone()),
            ],
        );
        Prometheus {
            url: format!("http://{addr}"),
            _process: process,
        }
    }

    /// Prometheus scraping `agents` (region, address) every `interval`
    /// (e.g. `1s`), with no rules at all.
    pub fn scraping(
        binary: &Path,
        dir: &TempDir,
        agents: &[(&str, String)],
        interval: &str,
    ) -> Prometheus {
        let yml = filled_fixture(
            "prometheus-scrape.yml",
            &[("interval", interval), ("targets", &scrape_targets(agents))],
        );
        Prometheus::start(binary, dir, &yml)
    }
}
