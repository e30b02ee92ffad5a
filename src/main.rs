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
    /// Load benchmarks: `chatprobe bench <what>`.
    Bench {
        #[command(subcommand)]
        target: chatprobe::bench::BenchTarget,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Backend { config, faults } => {
            run_async(chatprobe::backend::run(&config, faults.as_ref()))
        }
        Command::Bench { target } => run_async(chatprobe::bench::run(target)),
    };
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
