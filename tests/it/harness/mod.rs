//! The one harness of the integration tests: temporary directories
//! ([`dir`]), child processes ([`process`]), the `chatprobe` binary
//! ([`binary`]), fixtures and test configs ([`fixtures`], files under
//! `tests/data/`), HTTP ([`http`]), the in-process mock backend
//! ([`backend`]), probes built in-process ([`probes`]), real servers run as
//! child processes ([`server`]): Synapse ([`synapse`]), Prosody
//! ([`prosody`]) and PostgreSQL ([`postgres`]), SMTP servers ([`smtp`]:
//! aiosmtpd, also over TLS or asking for a login, and a scripted one), a
//! test's own CA and server certificate ([`certificate`]), a webhook
//! receiver ([`webhook`]), the tests every real-server
//! protocol shares ([`protocol`]) and their benchmark ([`server_bench`]),
//! headless Chromium ([`browser`]) and Chromium driven as a user drives it
//! ([`webdriver`]), and finding and starting outside tools.

pub mod backend;
pub mod binary;
pub mod browser;
pub mod certificate;
pub mod dir;
pub mod fixtures;
pub mod http;
pub mod postgres;
pub mod probes;
pub mod process;
pub mod prometheus;
pub mod prosody;
pub mod protocol;
pub mod server;
pub mod server_bench;
pub mod smtp;
pub mod synapse;
pub mod webdriver;
pub mod webhook;

use std::path::PathBuf;

/// A port on 127.0.0.1 that was free a moment ago, for servers that cannot
/// report the port they bound.
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("an ephemeral port is available");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Finds an outside tool for a test: the path in `env_var` (written by
/// `tests/setup.sh` into `target/tools.env`), else `binary` on `PATH`.
///
/// Under the full suite (`CHATPROBE_REQUIRE_TOOLS=1`, set by `tests/run.sh`) a
/// missing tool fails the test with `install` as the fix; under plain
/// `cargo test` the test is skipped, loudly.
pub fn tool(env_var: &str, binary: &str, install: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env_var)
        .map(PathBuf::from)
        .filter(|path| path.is_file());
    let found = from_env.or_else(|| find_on_path(binary));
    if found.is_none() {
        if std::env::var_os("CHATPROBE_REQUIRE_TOOLS").is_some() {
            panic!("`{binary}` is needed by this test and was not found; install it: {install}");
        }
        eprintln!(
            "\n*** SKIPPED: `{binary}` not found (set {env_var} or install it: {install}); \
             `bash tests/run.sh` installs it and runs this test ***\n"
        );
    }
    found
}

fn find_on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}
