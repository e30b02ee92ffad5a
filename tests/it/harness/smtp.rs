//! SMTP servers for the notification tests: a real one, aiosmtpd (Debian's
//! `python3-aiosmtpd`) writing every accepted mail into a Maildir, started
//! on a port of 127.0.0.1 and stoppable and restartable on it, plain or
//! with STARTTLS or implicit TLS under a test's certificate, and asking
//! for a login if told to ([`Aiosmtpd`]);
//! a tiny scripted one in the test's own runtime that refuses chosen
//! recipients with a permanent 550 ([`ScriptedSmtp`]), which aiosmtpd
//! cannot easily do; and reading the mails both captured ([`Mail`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use super::certificate::TestCa;
use super::dir::TempDir;
use super::process::Process;

/// aiosmtpd's own command line, its `SMTP` class made to require a login
/// (PLAIN or LOGIN, over TLS only) checked against `$SMTP_LOGIN` and
/// `$SMTP_PASSWORD`: its command line has no option for it.
const WITH_LOGIN: &str = "\
import functools, os, aiosmtpd.main as main
from aiosmtpd.smtp import AuthResult, LoginPassword
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == os.environb[b'SMTP_LOGIN'] \\
        and data.password == os.environb[b'SMTP_PASSWORD']
    return AuthResult(success=ok)
main.SMTP = functools.partial(main.SMTP, auth_required=True, authenticator=check)
main.main()
";

/// The Python that has aiosmtpd: `CHATPROBE_AIOSMTPD_PYTHON` (written by
/// `tests/setup.sh`), else `/usr/bin/python3`, if it can import it.
pub fn python() -> Option<PathBuf> {
    let python = super::tool(
        "CHATPROBE_AIOSMTPD_PYTHON",
        "python3",
        "apt-get install python3-aiosmtpd (or bash tests/setup.sh)",
    )?;
    let candidates = [python, PathBuf::from("/usr/bin/python3")];
    let found = candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|output| output.status.success())
    });
    if found.is_none() {
        let install = "apt-get install python3-aiosmtpd (or bash tests/setup.sh)";
        if std::env::var_os("CHATPROBE_REQUIRE_TOOLS").is_some() {
            panic!("aiosmtpd is needed by this test and was not found; install it: {install}");
        }
        eprintln!("\n*** SKIPPED: aiosmtpd not found (install it: {install}) ***\n");
    }
    found
}

/// aiosmtpd on 127.0.0.1, delivering into a Maildir.
pub struct Aiosmtpd {
    python: PathBuf,
    process: Option<Process>,
    /// Its port.
    pub port: u16,
    maildir: PathBuf,
    /// Its TLS options.
    tls: Vec<OsString>,
    /// The login and password it asks for, if any.
    login: Option<(String, String)>,
    _dir: TempDir,
}

impl Aiosmtpd {
    /// A server on a free port, not started yet; `None` when aiosmtpd is missing.
    pub fn new() -> Option<Aiosmtpd> {
        let python = python()?;
        let dir = TempDir::new("maildir");
        let maildir = dir.join("mail");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("the Maildir can be made");
        }
        Some(Aiosmtpd {
            python,
            process: None,
            port: super::free_port(),
            maildir,
            tls: Vec::new(),
            login: None,
            _dir: dir,
        })
    }

    /// Offers STARTTLS with `ca`'s server certificate; mail only after it
    /// unless `required` is false (then it takes mail in clear too).
    pub fn starttls(mut self, ca: &TestCa, required: bool) -> Aiosmtpd {
        self.tls = vec!["--tlscert".into(), ca.certificate.clone().into()];
        self.tls.extend(["--tlskey".into(), ca.key.clone().into()]);
        if !required {
            self.tls.push("--no-requiretls".into());
        }
        self
    }

    /// Speaks TLS from the first byte (SMTPS) with `ca`'s server certificate.
    pub fn implicit_tls(mut self, ca: &TestCa) -> Aiosmtpd {
        self.tls = vec!["--smtpscert".into(), ca.certificate.clone().into()];
        self.tls
            .extend(["--smtpskey".into(), ca.key.clone().into()]);
        self
    }

    /// Takes mail only from a client logged in as `login` with `password` (over TLS).
    pub fn requiring_login(mut self, login: &str, password: &str) -> Aiosmtpd {
        self.login = Some((login.to_string(), password.to_string()));
        self
    }

    /// Starts it and waits until it takes connections.
    pub fn start(&mut self) {
        let mut command = Command::new(&self.python);
        match &self.login {
            Some((login, password)) => command
                .args(["-c", WITH_LOGIN])
                .env("SMTP_LOGIN", login)
                .env("SMTP_PASSWORD", password),
            None => command.args(["-m", "aiosmtpd"]),
        };
        command
            .args(["-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.tls)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir);
        let process = Process::spawn("aiosmtpd", &mut command);
        self.process = Some(process);
        let deadline = std::time::Instant::now() + super::process::PATIENCE;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect(address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen on {address}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops it (killed: as a server that went away).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Every mail it accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        read_maildir(&self.maildir.join("new"))
    }
}

/// The mails in the Maildir folder `new`.
fn read_maildir(new: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    let mut mails: Vec<Mail> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .map(|raw| Mail::parse(&String::from_utf8_lossy(&raw)))
        .collect();
    mails.sort_by_key(Mail::message_id);
    mails
}

/// One captured mail: its headers (unfolded) and its body (decoded).
#[derive(Debug, Clone)]
pub struct Mail {
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The text, quoted-printable undone.
    pub body: String,
}

impl Mail {
    /// Reads a mail as written to a file or received after `DATA`.
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_lowercase(), value.trim().to_string()));
            }
        }
        let quoted = headers.iter().any(|(name, value)| {
            name == "content-transfer-encoding" && value.eq_ignore_ascii_case("quoted-printable")
        });
        let body = match quoted {
            true => decode_quoted_printable(body),
            false => body.to_string(),
        };
        Mail { headers, body }
    }

    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    /// Its recipient: aiosmtpd's `X-RcptTo`, else `To`.
    pub fn to(&self) -> String {
        self.header("x-rcptto")
            .or_else(|| self.header("to"))
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_string()
    }

    /// Its `Message-ID`.
    pub fn message_id(&self) -> String {
        self.header("message-id").unwrap_or_default().to_string()
    }

    /// The first link in its text that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let at = self.body.find(prefix)?;
        let link: String = self.body[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(link)
    }
}

/// `text` with quoted-printable soft breaks and `=XX` escapes undone.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'=')
            .then(|| joined.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the scripted server saw.
#[derive(Debug, Default)]
struct Script {
    /// Recipients answered 550.
    refused: BTreeSet<String>,
    /// `RCPT TO` attempts, by recipient.
    attempts: BTreeMap<String, u32>,
    /// Accepted mails.
    mails: Vec<Mail>,
}

/// A scripted SMTP server on 127.0.0.1 in the test's runtime: accepts
/// every mail except to the recipients told to refuse (550 at `RCPT TO`).
#[derive(Clone)]
pub struct ScriptedSmtp {
    script: Arc<Mutex<Script>>,
    /// Its port.
    pub port: u16,
}

impl ScriptedSmtp {
    /// Starts it.
    pub async fn start() -> ScriptedSmtp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        let server = ScriptedSmtp {
            script: Arc::default(),
            port,
        };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().session(stream));
            }
        });
        server
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// From now on, answers 550 to mail for `address`.
    pub fn refuse(&self, address: &str) {
        self.lock().refused.insert(address.to_string());
    }

    /// `RCPT TO` attempts for `address` so far.
    pub fn attempts(&self, address: &str) -> u32 {
        self.lock().attempts.get(address).copied().unwrap_or(0)
    }

    /// The mails it accepted.
    pub fn mails(&self) -> Vec<Mail> {
        self.lock().mails.clone()
    }

    /// One SMTP session (bounded: the server is closed with the runtime).
    async fn session(self, stream: tokio::net::TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 scripted ESMTP\r\n").await;
        let mut recipients: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                "250-scripted\r\n250 8BITMIME".into()
            } else if upper.starts_with("MAIL FROM") {
                recipients.clear();
                "250 ok".into()
            } else if upper.starts_with("RCPT TO") {
                let address = line
                    .get(8..)
                    .unwrap_or_default()
                    .trim()
                    .trim_matches(['<', '>', ' ', ':'])
                    .to_string();
                let mut script = self.lock();
                *script.attempts.entry(address.clone()).or_default() += 1;
                if script.refused.contains(&address) {
                    "550 5.1.1 no such mailbox".into()
                } else {
                    recipients.push(address);
                    "250 ok".into()
                }
            } else if upper == "DATA" {
                let _ = write.write_all(b"354 go on\r\n").await;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push('\n');
                }
                self.lock().mails.push(Mail::parse(&data));
                "250 accepted".into()
            } else if upper == "QUIT" {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                "250 ok".into()
            };
            if write
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
