//! The agent run in-process, as `chatprobe agent` runs it but with a
//! shutdown future and a reload stream the test controls: a reload moves the
//! endpoints, and the agent returns `Ok` once its shutdown resolves.

use crate::harness::backend::Backend;
use crate::harness::dir::TempDir;
use crate::harness::fixtures::AgentConfig;
use crate::harness::http::poll_get;
use chatprobe::shutdown::DRAIN;
use std::net::SocketAddr;

/// A config of `config` with its endpoints on `port`.
fn listening_on(config: &str, port: u16) -> String {
    config.replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
}

/// Poll `path` on `addr` until it answers 200, off the agent's runtime thread.
async fn wait_for_ok(addr: SocketAddr, path: &'static str) -> u16 {
    tokio::task::spawn_blocking(move || poll_get(addr, path, |status, _| status == 200).0)
        .await
        .expect("the polling task finishes")
}

#[test]
fn reload_moves_the_endpoints_and_shutdown_stops_the_agent() {
    let backend = Backend::start();
    let dir = TempDir::new("agent-in-process");
    let config = AgentConfig::write(&dir, "eu-west", &backend.url, "1s", &["group_message"]);
    let first_port = crate::harness::free_port();
    let second_port = (0..10)
        .map(|_| crate::harness::free_port())
        .find(|port| *port != first_port)
        .expect("a second free port");
    config.rewrite(&listening_on(&config.text, first_port));
    let runtime = chatprobe::cmd::wiring::probe_runtime().expect("the probe runtime starts");

    runtime.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (reload, mut reloads) = tokio::sync::mpsc::unbounded_channel::<()>();
        let agent = chatprobe::cmd::agent::run(
            &config.path,
            async {
                let _ = stopped.await;
            },
            futures_util::stream::poll_fn(move |cx| reloads.poll_recv(cx)),
        );
        let test = async {
            let first = SocketAddr::from(([127, 0, 0, 1], first_port));
            assert_eq!(wait_for_ok(first, "/readyz").await, 200);
            config.rewrite(&listening_on(&config.text, second_port));
            reload.send(()).expect("the agent takes reloads");
            let second = SocketAddr::from(([127, 0, 0, 1], second_port));
            assert_eq!(wait_for_ok(second, "/healthz").await, 200);
            stop.send(()).expect("the agent waits for its shutdown");
        };
        tokio::pin!(agent);
        tokio::select! {
            result = &mut agent => panic!("the agent stopped on its own: {result:?}"),
            () = test => {}
        }
        // Only a safety net: the agent itself stops within the drain.
        let result = tokio::time::timeout(3 * DRAIN, agent)
            .await
            .expect("the agent stops once its shutdown resolves");
        assert!(result.is_ok(), "{result:?}");
    });
}
