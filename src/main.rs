//! The `chatprobe` command line: one subcommand per job (see design and README).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use chatprobe::logging::{self, LogFormat};

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

/// The subcommands (**contract**: names and options are documented in the README).
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
        #[arg(long, default_value = chatprobe::config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Interval of every probe.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// A faults file (times relative to start).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Validate the agent config and every probe file; errors name file, line and field.
    Check {
        /// The agent config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Load benchmarks: `chatprobe bench <what>`.
    Bench {
        #[command(subcommand)]
        target: chatprobe::bench::BenchTarget,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Backend { config, faults } => {
            exit_code(run_async(chatprobe::backend::run(&config, faults.as_ref())))
        }
        Command::Bench { target } => exit_code(run_async(chatprobe::bench::run(target))),
        Command::Agent { config } => chatprobe::agent::main(&config),
        Command::Once { config } => chatprobe::once::main(&config),
        Command::Demo {
            listen,
            interval,
            scenario,
        } => chatprobe::demo::main(chatprobe::demo::DemoOptions {
            listen,
            interval,
            scenario,
        }),
        Command::Check { config } => chatprobe::check::run(&config),
    }
}

/// Exit status of a command's result; an error is printed first.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run one async entry point on a fresh multi-threaded runtime.
fn run_async<E>(future: impl std::future::Future<Output = Result<(), E>>) -> anyhow::Result<()>
where
    E: Into<anyhow::Error>,
{
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(future).map_err(Into::into)
}
