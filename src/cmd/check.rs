//! `chatprobe check --config FILE`: validate the agent config and every probe
//! file it names, printing each error with its file, line and field.

use std::path::Path;
use std::process::ExitCode;

use crate::config::AgentConfig;

/// Validate `config`; exit status 0 when it and every probe file are valid.
pub fn run(config: &Path) -> ExitCode {
    match AgentConfig::load(config) {
        Ok(loaded) => {
            println!("{}", summary(&loaded));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{}: {} error(s)", config.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}

/// One line saying what a valid config would run.
fn summary(loaded: &AgentConfig) -> String {
    let targets: Vec<&str> = loaded
        .targets
        .placed()
        .map(|placed| placed.target.name())
        .collect();
    let probes: Vec<&str> = loaded.probes.iter().map(|p| p.spec.name.as_str()).collect();
    let files: Vec<String> = loaded
        .targets
        .files()
        .map(|path| path.display().to_string())
        .collect();
    let files = if loaded.targets.has_patterns() {
        format!(", target files: {}", files.join(", "))
    } else {
        String::new()
    };
    format!(
        "{}: ok (region {}, targets: {}, probes: {}{files})",
        loaded.path.display(),
        loaded.region,
        targets.join(", "),
        probes.join(", ")
    )
}
