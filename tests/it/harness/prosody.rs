//! A real Prosody server for tests: a config made for probing in a fresh
//! directory, client port on a free 127.0.0.1 port (plain TCP, no
//! server-to-server), killed on drop.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chatprobe::client::ChatService;
use chatprobe::client::xmpp::{Transport, XmppOptions, XmppService};

use crate::harness::dir::TempDir;
use crate::harness::protocol::RealServer;
use crate::harness::server::ServerChild;

/// How long Prosody may take to accept connections after start.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The accounts' domain of every test server.
pub const DOMAIN: &str = "localhost";
/// Its MUC service.
pub const MUC_SERVICE: &str = "conference.localhost";

/// A running Prosody child process and its directory.
pub struct Prosody {
    process: ServerChild,
    /// `127.0.0.1:PORT` of the client port.
    pub server: String,
}

/// The `prosody` to run: `CHATPROBE_PROSODY` (from `target/tools.env`), else
/// `prosody` on `PATH`; `None` (test skipped) when none exists.
pub fn binary() -> Option<PathBuf> {
    super::tool(
        "CHATPROBE_PROSODY",
        "prosody",
        "apt-get install prosody (or bash tests/setup.sh)",
    )
}

/// The server config: loopback only, plain client connections with plain
/// authentication allowed, open in-band registration without throttling,
/// PEP (bookmarks), and a MUC service with archives.
fn config(dir: &TempDir, port: u16) -> String {
    let path = dir.path().display();
    format!(
        r#"run_as_root = true
daemonize = false
pidfile = "{path}/prosody.pid"
data_path = "{path}/data"
log = {{ info = "{path}/prosody.log"; error = "{path}/prosody.err" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "register"; "pep"; "ping" }}
modules_disabled = {{ "s2s"; "offline"; "tls" }}
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
registration_throttle_max = 100000
max_archive_query_results = 100

VirtualHost "{DOMAIN}"

Component "{MUC_SERVICE}" "muc"
    modules_enabled = {{ "muc_mam" }}
    muc_room_default_history_length = 0
"#
    )
}

impl Prosody {
    /// Configures and starts Prosody, waiting until it accepts connections;
    /// `None` when Prosody is not installed (and tools are not required).
    pub async fn start() -> Option<Prosody> {
        let binary = binary()?;
        let port = super::free_port();
        let dir = TempDir::new(&format!("prosody-{port}"));
        std::fs::create_dir_all(dir.join("data")).expect("create Prosody data directory");
        let config_path = dir.join("prosody.cfg.lua");
        std::fs::write(&config_path, config(&dir, port)).expect("write Prosody config");
        let mut command = Command::new(&binary);
        command.arg("-F").arg("--config").arg(&config_path);
        let process = ServerChild::spawn("Prosody", dir, command, &["prosody.log", "prosody.err"]);
        let mut prosody = Prosody {
            process,
            server: format!("127.0.0.1:{port}"),
        };
        prosody.wait_until_ready().await;
        Some(prosody)
    }
}

/// True when the client port at `server` answers a stream header with one of its own.
async fn answers_streams(server: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut socket) = tokio::net::TcpStream::connect(server).await else {
        return false;
    };
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    if socket.write_all(header.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut answer)).await;
    matches!(read, Ok(Ok(length)) if String::from_utf8_lossy(&answer[..length]).contains("stream"))
}

/// An XMPP client of `server` (`host:port`) acting from `region`.
pub fn service(server: &str, region: &str, request_timeout: Duration) -> Arc<dyn ChatService> {
    let options = XmppOptions {
        server: server.to_owned(),
        domain: DOMAIN.into(),
        muc_service: MUC_SERVICE.into(),
        transport: Transport::Plain,
        register: true,
        region: region.into(),
        request_timeout,
    };
    Arc::new(XmppService::new(options).expect("service builds"))
}

impl RealServer for Prosody {
    const TARGET: &'static str = "prosody";
    const PROTOCOL: &'static str = "xmpp";
    const SHIPPED_ADDRESS_LINE: &'static str = "server: 127.0.0.1:5222";
    const SHIPPED_ADDRESS: &'static str = "127.0.0.1:5222";
    const SETTINGS_IN_ONE_EVENT: bool = true;
    const LISTED_GROUPS: &'static str = "bookmarked rooms";

    fn start_server() -> impl Future<Output = Option<Self>> {
        Prosody::start()
    }

    fn child(&self) -> &ServerChild {
        &self.process
    }

    fn child_mut(&mut self) -> &mut ServerChild {
        &mut self.process
    }

    /// Polls the client port until it answers a stream, bounded by [`START_DEADLINE`].
    async fn wait_until_ready(&mut self) {
        let server = self.server.clone();
        self.process
            .wait_until_ready(
                START_DEADLINE,
                Duration::from_millis(100),
                "accept connections",
                || answers_streams(&server),
            )
            .await;
    }

    fn address(&self) -> &str {
        &self.server
    }

    fn service(&self, region: &str, request_timeout: Duration) -> Arc<dyn ChatService> {
        service(&self.server, region, request_timeout)
    }

    fn user_id_prefix(user: &str) -> String {
        format!("{user}@")
    }
}
