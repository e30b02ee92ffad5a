//! `chatprobe bench <what>`: load benchmarks that print throughput numbers.
//! One file per thing measured; each is a variant of [`BenchTarget`].

mod agent;
pub mod backend;
mod notify;
mod postgres;
mod proc;
mod reports;
pub mod soak;
mod status_page;
mod targets;

use clap::Subcommand;

/// What to benchmark.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchTarget {
    /// The mock backend: push fan-out or the group_message workload over real sockets.
    Backend(backend::BackendBenchArgs),
    /// The agent: memory of N push-connected devices, CPU per probe run, latency measurement error.
    Agent(agent::AgentBenchArgs),
    /// A healthy soak: backend and three regions of every shipped probe; runs and false failures.
    Soak(soak::SoakArgs),
    /// One agent, many mock targets from a target file: CPU and memory in steady state, and following the file shrinking.
    Targets(targets::TargetsBenchArgs),
    /// The fleet status page at fleet scale: synthetic agents, a real Prometheus, each endpoint's time, RSS and the load on Prometheus.
    StatusPage(status_page::StatusPageBenchArgs),
    /// "Notify me" at scale: N confirmed subscribers, an incident ends; seconds until a real SMTP server took the last mail.
    Notify(notify::NotifyBenchArgs),
    /// "Report a problem" under load: reports accepted per second and their latency from concurrent clients, then the page's RSS and render times with a million reports stored.
    Reports(reports::ReportsBenchArgs),
}

/// Run the chosen benchmark and print its numbers on stdout.
pub async fn run(target: BenchTarget) -> anyhow::Result<()> {
    match target {
        BenchTarget::Backend(args) => backend::run(args).await,
        BenchTarget::Agent(args) => agent::run(args).await,
        BenchTarget::Soak(args) => soak::run(args).await,
        BenchTarget::Targets(args) => targets::run(args).await,
        BenchTarget::StatusPage(args) => status_page::run(args).await,
        BenchTarget::Notify(args) => notify::run(args).await,
        BenchTarget::Reports(args) => reports::run(args).await,
    }
}
