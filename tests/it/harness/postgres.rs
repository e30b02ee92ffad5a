//! A real PostgreSQL for tests, from Debian's `postgresql` package: a
//! cluster made with `initdb` in a temp dir, served by `postgres` on a free
//! port of 127.0.0.1 (no Unix socket, trust authentication for the test's
//! own user), run as the unprivileged `postgres` user when the test runs as
//! root (PostgreSQL refuses to run as root), killed when dropped; or one
//! that takes TLS connections only ([`Postgres::start_tls`], a server
//! certificate of a test CA, [`super::certificate::TestCa`]).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::dir::TempDir;
use super::process::Process;

/// Where Debian installs the server's binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_BINARIES: &str = "/usr/lib/postgresql";

/// The database user the tests connect as.
const USER: &str = "chatprobe";

/// The folder holding `initdb` and `postgres`: `CHATPROBE_POSTGRES_BIN`
/// (written by `tests/setup.sh`), else Debian's newest; `None` (the test
/// skips, or fails under the full suite) when there is none.
pub fn binaries() -> Option<PathBuf> {
    let from_env = std::env::var_os("CHATPROBE_POSTGRES_BIN").map(PathBuf::from);
    let debian = || {
        let versions = std::fs::read_dir(DEBIAN_BINARIES).ok()?;
        let mut found: Vec<PathBuf> = versions
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        found.sort();
        found.pop()
    };
    let found = from_env
        .filter(|bin| bin.join("initdb").is_file())
        .or_else(debian);
    if found.is_none() {
        // Reports the missing tool as every other harness does.
        let tool = super::tool(
            "CHATPROBE_POSTGRES_INITDB",
            "initdb",
            "apt-get install postgresql (or bash tests/setup.sh)",
        );
        return tool.and_then(|initdb| initdb.parent().map(Path::to_path_buf));
    }
    found
}

/// The `postgres` system user's ids, when the test runs as root.
fn unprivileged() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A running PostgreSQL server.
pub struct Postgres {
    process: Option<Process>,
    bin: PathBuf,
    data: PathBuf,
    owner: Option<(u32, u32)>,
    /// Settings given to `postgres` beside the common ones.
    settings: Vec<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl Postgres {
    /// A fresh cluster, started; `None` when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let mut server = Postgres::initdb()?;
        server.resume();
        Some(server)
    }

    /// A fresh cluster that takes TLS connections only (`hostssl` alone in
    /// `pg_hba.conf`), started; `None` when PostgreSQL or openssl is not installed.
    pub fn start_tls() -> Option<Postgres> {
        let ca = super::certificate::TestCa::make("postgres")?;
        let mut server = Postgres::initdb()?;
        let (key, certificate) = (
            server.data.join("server.key"),
            server.data.join("server.crt"),
        );
        std::fs::copy(&ca.key, &key).expect("the server key is copied");
        std::fs::copy(&ca.certificate, &certificate).expect("the server certificate is copied");
        let hba = server.data.join("pg_hba.conf");
        std::fs::write(&hba, "hostssl all all 127.0.0.1/32 trust\n")
            .expect("pg_hba.conf is written");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("the key is private");
        if let Some((uid, gid)) = server.owner {
            for file in [&key, &certificate, &hba] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid))
                    .expect("the file is handed to postgres");
            }
        }
        server.settings = vec!["ssl=on".into()];
        server.resume();
        Some(server)
    }

    /// A fresh cluster, not started.
    fn initdb() -> Option<Postgres> {
        let bin = binaries()?;
        let dir = TempDir::new("postgres");
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("the data folder can be made");
        let owner = unprivileged();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                .expect("the data folder can be handed to postgres");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "-U",
                USER,
                "-D",
            ])
            .arg(&data);
        run_as(&mut initdb, owner);
        let output = initdb.output().expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Postgres {
            process: None,
            bin,
            data,
            owner,
            settings: Vec::new(),
            port: super::free_port(),
            _dir: dir,
        })
    }

    /// The store URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server at once (no shutdown: as a crash would).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the server again on the same data and port, and waits until it takes connections.
    pub fn resume(&mut self) {
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
            ]);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        run_as(&mut command, self.owner);
        let mut process = Process::spawn("postgres", &mut command);
        let ready = process
            .wait_for_line(|line| line.contains("database system is ready to accept connections"));
        assert!(
            ready.is_some(),
            "PostgreSQL did not become ready:\n{}",
            process.log()
        );
        self.process = Some(process);
    }
}

/// Makes `command` run as `owner` (uid, gid), when set.
fn run_as(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}
