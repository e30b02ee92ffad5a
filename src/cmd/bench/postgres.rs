//! A PostgreSQL server for a benchmark: a fresh cluster made with `initdb`
//! in a temp folder, served by `postgres` on a free port of 127.0.0.1 (no
//! Unix socket, trust authentication for [`USER`]), run as the unprivileged
//! `postgres` user when the benchmark runs as root (PostgreSQL refuses to
//! run as root). Its settings are the server's defaults (fsync and
//! synchronous commits on), but for the address. Stopped and removed when
//! dropped.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::status_page::free_port;
use super::targets::wait_until;

/// The database user the store connects as.
const USER: &str = "chatprobe";
/// Where Debian installs the server's binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_BINARIES: &str = "/usr/lib/postgresql";
/// Longest wait for the server to take connections.
const STARTUP: Duration = Duration::from_secs(60);

/// A running PostgreSQL.
pub(super) struct Postgres {
    child: Child,
    folder: PathBuf,
    /// Its port on 127.0.0.1.
    port: u16,
    /// Its `--version`.
    pub(super) version: String,
}

impl Postgres {
    /// Makes a cluster and starts it; `bin` is the folder of `initdb` and
    /// `postgres` (default: `$CHATPROBE_POSTGRES_BIN`, else Debian's newest).
    pub(super) async fn start(bin: Option<&Path>) -> anyhow::Result<Postgres> {
        let bin = match bin {
            Some(bin) => bin.to_path_buf(),
            None => binaries()?,
        };
        let folder =
            std::env::temp_dir().join(format!("chatprobe-bench-pg-{}", std::process::id()));
        let data = folder.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let owner = unprivileged()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&folder, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["--auth=trust", "--encoding=UTF8", "-U", USER, "-D"])
            .arg(&data);
        run_as(&mut initdb, owner);
        let made = initdb.output().context("running initdb")?;
        ensure!(
            made.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let version = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()?;
        let port = free_port()?;
        let log = std::fs::File::create(folder.join("postgres.log"))?;
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .stdout(Stdio::null())
            .stderr(log);
        run_as(&mut server, owner);
        let child = server.spawn().context("starting postgres")?;
        let postgres = Postgres {
            child,
            folder,
            port,
            version: String::from_utf8_lossy(&version.stdout).trim().to_owned(),
        };
        let log = postgres.folder.join("postgres.log");
        wait_until("PostgreSQL ready", STARTUP, || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("FATAL") {
                bail!("PostgreSQL did not start: {text}");
            }
            Ok(text.contains("database system is ready to accept connections"))
        })
        .await?;
        Ok(postgres)
    }

    /// The store URL of its `postgres` database.
    pub(super) fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Ends only the server this benchmark started.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// The folder of `initdb` and `postgres`: `$CHATPROBE_POSTGRES_BIN`, else
/// Debian's newest.
fn binaries() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CHATPROBE_POSTGRES_BIN").map(PathBuf::from) {
        return Ok(bin);
    }
    let versions = std::fs::read_dir(DEBIAN_BINARIES).with_context(|| {
        format!("no PostgreSQL in {DEBIAN_BINARIES}: apt-get install postgresql, or --postgres-bin")
    })?;
    let mut found: Vec<PathBuf> = versions
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .with_context(|| format!("no initdb under {DEBIAN_BINARIES}"))
}

/// The `postgres` system user's ids, when the benchmark runs as root.
fn unprivileged() -> anyhow::Result<Option<(u32, u32)>> {
    let id = |args: &[&str]| -> anyhow::Result<u32> {
        let output = Command::new("id")
            .args(args)
            .output()
            .context("running id")?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.trim()
            .parse()
            .with_context(|| format!("`id {}` said `{}`", args.join(" "), text.trim()))
    };
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    Ok(Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?)))
}

/// Makes `command` run as `owner` (uid, gid), when set.
fn run_as(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}
