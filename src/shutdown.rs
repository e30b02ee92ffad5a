//! How long a command may take to stop, and the one place process signals
//! become futures: SIGINT/SIGTERM a shutdown future, SIGHUP a stream of
//! reload requests. Commands take these as arguments, so a test can stop
//! them in-process with a future of its own.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::Stream;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Longest time from a stop signal to exit.
pub const DRAIN: Duration = Duration::from_secs(5);

/// How long HTTP endpoints may finish answering when they stop or move.
pub(crate) const ENDPOINTS_GRACE: Duration = Duration::from_millis(500);

/// How long probes may finish their runs and clean up when their scheduler
/// stops: the drain, less the endpoints' grace that follows it.
pub(crate) const PROBE_DRAIN: Duration = DRAIN.saturating_sub(ENDPOINTS_GRACE);

/// A future resolving on the first SIGINT or SIGTERM. The handlers are
/// installed now (inside a runtime), so a signal arriving before the future
/// is first polled still stops the command instead of killing the process.
pub fn stop_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A stream yielding once per SIGHUP; the handler is installed now.
pub fn reload_signal() -> anyhow::Result<impl Stream<Item = ()> + Send + 'static> {
    let hangup = install(SignalKind::hangup(), "SIGHUP")?;
    Ok(futures_util::stream::unfold(hangup, |mut hangup| async {
        hangup.recv().await.map(|()| ((), hangup))
    }))
}

fn install(kind: SignalKind, name: &str) -> anyhow::Result<Signal> {
    signal(kind).with_context(|| format!("installing the {name} handler"))
}
