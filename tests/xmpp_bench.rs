//! Benchmark (ignored by default): the shipped `group_message` probe against
//! a real Prosody and against the mock backend, in one run: run latency
//! sequentially and runs per second with 4 concurrent probes (4 rooms).
//!
//! `cargo test --release --test xmpp_bench -- --ignored --nocapture`

mod common;
mod prosody;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatprobe::client::mock::MockService;
use chatprobe::client::xmpp::{Transport, XmppOptions, XmppService};
use chatprobe::client::{Account, ChatService};
use chatprobe::probe::{self, Probe, ProbeSetup, ProbeSpec};
use prosody::Prosody;

/// Runs measured sequentially, and by each concurrent probe.
const RUNS: usize = 30;
/// Concurrent probes (each with its own accounts and rooms).
const CONCURRENT: usize = 4;

fn shipped_spec() -> ProbeSpec {
    let path = common::fixtures::repo_file("probes/group_message.yaml");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn group_message_against_prosody_and_the_mock() {
    let Some(prosody) = Prosody::start().await else {
        return;
    };
    let timeout = Duration::from_secs(10);
    let xmpp = XmppService::new(XmppOptions {
        server: prosody.server.clone(),
        domain: prosody::DOMAIN.into(),
        muc_service: prosody::MUC_SERVICE.into(),
        transport: Transport::Plain,
        register: true,
        region: "bench".into(),
        request_timeout: timeout,
    })
    .expect("xmpp client");
    let backend = chatprobe::backend::start(chatprobe::backend::BackendConfig::ephemeral())
        .await
        .expect("mock backend");
    let mock = MockService::new(&format!("http://{}", backend.addr()), "bench", timeout)
        .expect("mock client");

    let on_prosody = measure(Arc::new(xmpp), "prosody").await;
    let on_mock = measure(Arc::new(mock), "mock").await;
    println!(
        "group_message, {RUNS} runs sequentially, then {CONCURRENT} probes x {RUNS} runs concurrently"
    );
    for (name, figures) in [("prosody", &on_prosody), ("mock", &on_mock)] {
        println!(
            "{name:<8} run mean {:>8.1} ms  median {:>8.1} ms  {:>7.1} runs/s with {CONCURRENT} concurrent",
            figures.mean.as_secs_f64() * 1e3,
            figures.median.as_secs_f64() * 1e3,
            figures.runs_per_second
        );
    }
    println!(
        "ratio (mock / prosody): latency {:.1}x faster, throughput {:.1}x higher",
        on_prosody.mean.as_secs_f64() / on_mock.mean.as_secs_f64(),
        on_mock.runs_per_second / on_prosody.runs_per_second
    );
    let _ = backend.shutdown().await;
}
