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
    /// Print the version and exit.
    Version,
    /// Validate the agent config and every probe file; errors name file, line and field.
    Check {
        /// The agent config file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Version => {
            println!("chatprobe {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => chatprobe::check::run(&config),
    }
}
