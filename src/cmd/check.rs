//! `chatprobe check --config FILE`: validate the agent config and every probe
//! file it names; `chatprobe check --status-page FILE`: validate the status
//! page's config. Every error is printed, each with its file, line and field.

use std::path::Path;
use std::process::ExitCode;

use crate::config::AgentConfig;
use crate::config::status_page::StatusPageConfig;
use crate::status_page::StatusPageOptions;
use crate::status_page::prometheus::{Auth, Secret};
use crate::yaml::FileError;

/// What `chatprobe check` validates.
#[derive(Debug, Clone, Copy)]
pub enum Checked<'p> {
    /// An agent config and its probe and target files.
    Agent(&'p Path),
    /// A status page config.
    StatusPage(&'p Path),
}

/// Validate `checked`; exit status 0 when it is valid, with one line saying
/// what it would run, else every error.
pub fn run(checked: Checked) -> ExitCode {
    let (path, loaded) = match checked {
        Checked::Agent(path) => (path, AgentConfig::load(path).map(|c| summary(&c))),
        Checked::StatusPage(path) => {
            let loaded = StatusPageConfig::load(path);
            let options = loaded.map(super::status_page::options);
            (
                path,
                options.map(|options| status_page_summary(path, &options)),
            )
        }
    };
    report(path, loaded)
}

/// Prints the summary of a valid file, or each error and their count.
fn report(path: &Path, loaded: Result<String, Vec<FileError>>) -> ExitCode {
    match loaded {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}

/// One line saying what a valid status page config would serve; a
/// credential is named by where it comes from, never shown.
fn status_page_summary(path: &Path, options: &StatusPageOptions) -> String {
    let from = |secret: &Secret| match secret {
        Secret::Env(name) => format!("environment variable `{name}`"),
        Secret::File(file) => format!("file {}", file.display()),
    };
    let auth = match &options.auth {
        Auth::None => String::new(),
        Auth::Bearer(secret) => format!(" (bearer token from {})", from(secret)),
        Auth::Basic(secret) => format!(" (basic auth from {})", from(secret)),
    };
    let features: Vec<String> = options
        .public
        .features
        .iter()
        .map(|(probe, feature)| format!("{probe} \"{}\"", feature.name))
        .collect();
    let regions: Vec<String> = options
        .public
        .regions
        .iter()
        .map(|(region, name)| format!("{region} \"{name}\""))
        .collect();
    let operators = match &options.operator_token {
        Some(secret) => format!(", operator token from {}", secret.source()),
        None => String::new(),
    };
    let reports = &options.reports;
    let problems: Vec<&str> = reports.problems.iter().map(|p| p.id.0.as_str()).collect();
    let reports = format!(
        ", reports: {} (window {}, at least {} reporters)",
        problems.join(" "),
        humantime::format_duration(reports.window),
        reports.min_reporters
    );
    format!(
        "{}: ok (prometheus {}{auth}, listen {}, title \"{}\", store {}, features: {}, regions: {}{reports}{operators})",
        path.display(),
        options.prometheus,
        options.listen,
        options.title,
        options.store,
        features.join(", "),
        if regions.is_empty() {
            "by their labels".to_string()
        } else {
            regions.join(", ")
        },
    )
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
