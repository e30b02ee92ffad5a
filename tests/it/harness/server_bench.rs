//! The benchmark every real-server protocol shares: the shipped
//! `group_message` probe against the server and against the mock backend, in
//! one run: run latency sequentially and runs per second with 4 concurrent
//! probes (4 rooms). `tests/<protocol>_bench.rs` runs it for its server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatprobe::client::mock::MockService;
use chatprobe::client::{Account, ChatService};
use chatprobe::probe::{self, Probe, ProbeSetup, ProbeSpec};

use crate::harness::fixtures::repo_file;
use crate::harness::protocol::RealServer;

/// Runs measured sequentially, and by each concurrent probe.
const RUNS: usize = 30;
/// Concurrent probes (each with its own accounts and rooms).
const CONCURRENT: usize = 4;

fn shipped_spec() -> ProbeSpec {
    let path = repo_file("probes/group_message.yaml");
    chatprobe::config::load_probe(&path)
        .expect("shipped probe")
        .spec
}

fn probe(service: Arc<dyn ChatService>, prefix: &str) -> Box<dyn Probe> {
    let spec = shipped_spec();
    let accounts = (0..probe::accounts_needed(&spec))
        .map(|index| Account {
            user: format!("bench-{prefix}-{index}"),
            password: format!("bench-secret-{prefix}-{index}"),
        })
        .collect();
    probe::build(ProbeSetup {
        spec,
        service,
        accounts,
    })
}

/// Durations of `RUNS` runs after one warm-up run (logins), all passing.
async fn timed_runs(mut probe: Box<dyn Probe>) -> Vec<Duration> {
    assert!(probe.run().await.passed(), "warm-up run failed");
    let mut durations = Vec::new();
    for _ in 0..RUNS {
        let outcome = probe.run().await;
        assert!(outcome.passed(), "{:?}", outcome.failures);
        durations.push(outcome.duration);
    }
    probe.shutdown().await;
    durations
}

/// What one service measured.
struct Figures {
    mean: Duration,
    median: Duration,
    runs_per_second: f64,
}

async fn measure(service: Arc<dyn ChatService>, name: &str) -> Figures {
    let mut sequential = timed_runs(probe(Arc::clone(&service), &format!("{name}-seq"))).await;
    sequential.sort();
    let mean = sequential.iter().sum::<Duration>() / RUNS as u32;
    let median = sequential[RUNS / 2];
    let probes: Vec<_> = (0..CONCURRENT)
        .map(|index| probe(Arc::clone(&service), &format!("{name}-par{index}")))
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|probe| tokio::spawn(timed_runs(probe)))
        .collect();
    for task in tasks {
        task.await.expect("probe task");
    }
    // Each task also made one warm-up run and a shutdown; count only measured runs.
    let runs_per_second = (CONCURRENT * RUNS) as f64 / started.elapsed().as_secs_f64();
    Figures {
        mean,
        median,
        runs_per_second,
    }
}

/// Measures `group_message` against `S` and against the mock, and prints both.
pub async fn group_message_against_the_server_and_the_mock<S: RealServer>() {
    let Some(server) = S::start_server().await else {
        return;
    };
    let timeout = Duration::from_secs(10);
    let server_service = server.service("bench", timeout);
    let backend = chatprobe::backend::start(chatprobe::backend::BackendConfig::ephemeral())
        .await
        .expect("mock backend");
    let mock = MockService::new(&format!("http://{}", backend.addr()), "bench", timeout)
        .expect("mock client");

    let on_server = measure(server_service, S::TARGET).await;
    let on_mock = measure(Arc::new(mock), "mock").await;
    println!(
        "group_message, {RUNS} runs sequentially, then {CONCURRENT} probes x {RUNS} runs concurrently"
    );
    for (name, figures) in [(S::TARGET, &on_server), ("mock", &on_mock)] {
        println!(
            "{name:<8} run mean {:>8.1} ms  median {:>8.1} ms  {:>7.1} runs/s with {CONCURRENT} concurrent",
            figures.mean.as_secs_f64() * 1e3,
            figures.median.as_secs_f64() * 1e3,
            figures.runs_per_second
        );
    }
    println!(
        "ratio (mock / {}): latency {:.1}x faster, throughput {:.1}x higher",
        S::TARGET,
        on_server.mean.as_secs_f64() / on_mock.mean.as_secs_f64(),
        on_mock.runs_per_second / on_server.runs_per_second
    );
    let _ = backend.shutdown().await;
}
