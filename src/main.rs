//! The `chatprobe` command line: one subcommand per job (see `docs/configuration.md`).
#![forbid(unsafe_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitCode, Termination};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::runtime::Runtime;

use chatprobe::cmd::demo::DemoOptions;
use chatprobe::cmd::{agent, backend, bench, check, demo, once, status_page, wiring};
use chatprobe::logging::{self, LogFormat};
use chatprobe::shutdown;

/// Synthetic group-chat prober.
#[derive(Debug, Parser)]
#[command(name = "chatprobe", version, about)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands (**contract**: names and options are documented in `docs/configuration.md`).
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock group-chat service with fault injection.
    Backend {
        /// Backend config file (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Faults file (YAML list), added to the config's faults.
        #[arg(long)]
        faults: Option<PathBuf>,
    },
    /// Run the agent: every probe on schedule, endpoints on `listen`.
    Agent {
        /// The agent config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run every probe once, print a table, exit 0 only if all passed.
    Once {
        /// The agent config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Mock backend and agents for eu-west, us-east and ap-south in one process.
    Demo {
        /// Where /metrics and the status page are served.
        #[arg(long, default_value_t = chatprobe::config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Interval of every probe.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// A faults file (times relative to start).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Validate the agent config and every probe file, or the status page's
    /// config; every error, each naming its file, line and field.
    Check {
        /// The agent config file.
        #[arg(
            long,
            required_unless_present = "status_page",
            conflicts_with = "status_page"
        )]
        config: Option<PathBuf>,
        /// The status page's config file.
        #[arg(long, value_name = "FILE")]
        status_page: Option<PathBuf>,
    },
    /// The fleet's status page, built from Prometheus' query API.
    StatusPage(Box<status_page::StatusPageArgs>),
    /// Load benchmarks: `chatprobe bench <what>`.
    Bench {
        #[command(subcommand)]
        target: bench::BenchTarget,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Backend { config, faults } => on_runtime(Runtime::new(), async {
            let shutdown = shutdown::stop_signal()?;
            Ok(backend::run(&config, faults.as_deref(), shutdown).await?)
        }),
        Command::Bench { target } => on_runtime(Runtime::new(), bench::run(target)),
        Command::Agent { config } => on_runtime(wiring::probe_runtime(), async {
            let shutdown = shutdown::stop_signal()?;
            let reloads = shutdown::reload_signal()?;
            agent::run(&config, shutdown, reloads).await
        }),
        Command::Once { config } => on_runtime(wiring::probe_runtime(), once::run(&config)),
        Command::Demo {
            listen,
            interval,
            scenario,
        } => on_runtime(Runtime::new(), async {
            let options = DemoOptions {
                listen,
                interval,
                scenario,
            };
            demo::run(options, shutdown::stop_signal()?).await
        }),
        Command::StatusPage(args) => on_runtime(status_page::runtime(), async {
            status_page::run(*args, shutdown::stop_signal()?).await
        }),
        Command::Check {
            config,
            status_page,
        } => match (&config, &status_page) {
            (_, Some(path)) => check::run(check::Checked::StatusPage(path)),
            (Some(path), None) => check::run(check::Checked::Agent(path)),
            (None, None) => {
                eprintln!("error: give --config FILE or --status-page FILE");
                ExitCode::FAILURE
            }
        },
    }
}

/// Run `command` on `runtime` (the backend, the demo, benchmarks and the
/// status page on all cores, the agent and `once` on the probe runtime: see
/// `docs/architecture.md`, "Design notes"); its exit status is the command's own, or success, and an
/// error is printed and fails.
fn on_runtime<T: Termination>(
    runtime: std::io::Result<Runtime>,
    command: impl Future<Output = anyhow::Result<T>>,
) -> ExitCode {
    let result = runtime
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(command));
    match result {
        Ok(finished) => finished.report(),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
