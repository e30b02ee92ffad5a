//! A test's own certificate authority, made with `openssl`: a CA
//! certificate and a server certificate it signed for `127.0.0.1` (the
//! address the tests' servers listen on), with the server's key; all under
//! a temp dir removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::dir::TempDir;

/// A CA and the server certificate it signed for 127.0.0.1.
pub struct TestCa {
    /// The CA's certificate (PEM): what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (PEM), issued by the CA for IP 127.0.0.1.
    pub certificate: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    /// A fresh CA named `name` and its server certificate; `None` when
    /// openssl is not installed.
    pub fn make(name: &str) -> Option<TestCa> {
        let openssl = super::tool("CHATPROBE_OPENSSL", "openssl", "apt-get install openssl")?;
        let dir = TempDir::new(&format!("ca-{name}"));
        let (ca, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (certificate, key) = (dir.join("server.crt"), dir.join("server.key"));
        let subject = format!("/CN=chatprobe test CA {name}");
        run(&openssl, &["-subj", &subject], &ca_key, &ca);
        let signed = [
            "-subj",
            "/CN=127.0.0.1",
            "-CA",
            path_text(&ca),
            "-CAkey",
            path_text(&ca_key),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ];
        run(&openssl, &signed, &key, &certificate);
        Some(TestCa {
            ca,
            certificate,
            key,
            _dir: dir,
        })
    }
}

/// `path` as text (the temp dir's paths are UTF-8).
fn path_text(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// `openssl req -x509` of a new P-256 key written to `key`, the
/// certificate to `out`, with `extra` arguments (subject, issuer, extensions).
fn run(openssl: &Path, extra: &[&str], key: &Path, out: &Path) {
    let made = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(extra)
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(out)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}
