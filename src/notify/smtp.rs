//! The SMTP side: a pool of `lettre` SMTP connections over rustls
//! (STARTTLS required, implicit TLS, or plain only towards loopback, as the
//! config checked; the server's certificate checked against the public
//! roots or the configured CA file alone), logging in with the configured
//! credentials (never logged), and what an answer means for the mail:
//! delivered, try again later, or never.
//!
//! The pool is ours, not lettre's, for one reason: its sockets are opened
//! with `TCP_NODELAY`. lettre writes a mail's text and its closing `.` in
//! two writes; with Nagle's algorithm on, the second waits for the
//! server's delayed acknowledgement of the first, 40 ms on Linux, so a
//! connection carried about 20 mails a second whatever the server could
//! take.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_rustls::TlsConnector;

use super::config::{SmtpConfig, SmtpTls};
use crate::metrics::Failure;

/// The longest one SMTP command may take to be answered.
pub(crate) const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle connection this old is closed rather than used (servers drop
/// idle clients after a few minutes).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Permanent answers about the login, not the address: the server's or the
/// config's fault, so the mail is tried again rather than the address bounced.
const LOGIN_CODES: [u16; 4] = [530, 534, 535, 538];

/// Connections to the SMTP server, at most `connections` open and in use
/// at once, each reused while the server keeps it.
#[derive(Clone)]
pub(crate) struct Smtp {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Smtp { .. }")
    }
}

/// How a connection is secured once open.
enum Security {
    /// `STARTTLS`, required, with lettre's TLS settings.
    Starttls(TlsParameters),
    /// TLS from the first byte (`SMTPS`).
    Implicit(TlsConnector, ServerName<'static>),
    /// None (loopback only, as the config checked).
    Plain,
}

/// The pool behind [`Smtp`].
struct Pool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// One permit a connection in use.
    slots: Semaphore,
    /// Open connections not in use, with when each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The server took it.
    Delivered,
    /// Not now: try again later (why, and the server's words).
    Later(Failure, String),
    /// Never: refused for good (the server's words): for a mail, the address bounced.
    Refused(String),
}

/// Why a mail did not go.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// The server's answer, or lettre's word on the conversation.
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// No connection to the server.
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake of implicit TLS failed (an untrusted certificate).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// No step of the conversation may take longer.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl Smtp {
    /// The connections `config` describes, logging in with `password`.
    pub(crate) fn new(config: &SmtpConfig, password: Option<String>) -> anyhow::Result<Smtp> {
        let security = match config.tls {
            SmtpTls::Starttls => Security::Starttls(tls_parameters(config)?),
            SmtpTls::Tls => Security::Implicit(
                tls_connector(config)?,
                ServerName::try_from(config.host.clone())?,
            ),
            SmtpTls::Plain => Security::Plain,
        };
        let credentials = match (&config.username, password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
            _ => None,
        };
        let slots = usize::try_from(config.connections).unwrap_or(1).max(1);
        Ok(Smtp {
            pool: Arc::new(Pool {
                host: config.host.clone(),
                port: config.port,
                security,
                credentials,
                hello: ClientId::default(),
                slots: Semaphore::new(slots),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends `message`, within [`SMTP_TIMEOUT`] for each command (and
    /// four of them for the whole mail, connecting included).
    pub(crate) async fn send(&self, message: Message) -> Sent {
        let whole = SMTP_TIMEOUT * 4;
        let sent = tokio::time::timeout(whole, self.pool.send(&message)).await;
        match sent.unwrap_or(Err(SendError::Timeout(whole))) {
            Ok(()) => Sent::Delivered,
            Err(error) => classify(&error),
        }
    }
}

impl Pool {
    /// Sends `message` over an idle connection that still answers, or a new one.
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let Ok(_slot) = self.slots.acquire().await else {
            unreachable!("the pool's semaphore is never closed");
        };
        let mut connection = match self.reusable().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let sent = connection
            .send(message.envelope(), &message.formatted())
            .await;
        // A refusal leaves the conversation usable; a broken one is closed.
        if connection.has_broken() {
            connection.abort().await;
        } else {
            self.idle.lock().await.push((connection, Instant::now()));
        }
        sent.map(|_| ()).map_err(SendError::from)
    }

    /// An idle connection, used recently and still answering (`NOOP`);
    /// the others are closed.
    async fn reusable(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut connection, last_used) = self.idle.lock().await.pop()?;
            let fresh = last_used.elapsed() < IDLE_LIMIT;
            if fresh && matches!(step(connection.test_connected()).await, Ok(true)) {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    /// A new connection: connected, greeted, secured and logged in.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = step(TcpStream::connect((self.host.as_str(), self.port)))
            .await?
            .map_err(SendError::Connect)?;
        tcp.set_nodelay(true).map_err(SendError::Connect)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = step(connector.connect(name.clone(), tcp))
                    .await?
                    .map_err(SendError::Handshake)?;
                Box::new(ImplicitTls(tls))
            }
            Security::Starttls(_) | Security::Plain => Box::new(tcp),
        };
        let mut connection = step(AsyncSmtpConnection::connect_with_transport(
            stream,
            &self.hello,
        ))
        .await??;
        if let Security::Starttls(parameters) = &self.security {
            step(connection.starttls(parameters.clone(), &self.hello)).await??;
        }
        if let Some(credentials) = &self.credentials {
            step(connection.auth(DEFAULT_MECHANISMS, credentials)).await??;
        }
        Ok(connection)
    }
}

/// `future`, given at most [`SMTP_TIMEOUT`].
async fn step<T>(future: impl Future<Output = T>) -> Result<T, SendError> {
    tokio::time::timeout(SMTP_TIMEOUT, future)
        .await
        .map_err(|_| SendError::Timeout(SMTP_TIMEOUT))
}

/// A connection under implicit TLS, as lettre takes a stream.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The TLS client of implicit TLS: the CA file's certificates alone when
/// one is configured, else the public roots (as lettre's STARTTLS).
fn tls_connector(config: &SmtpConfig) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::{ClientConfig, RootCertStore, crypto};
    let mut roots = RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                roots.add(certificate?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(client)))
}

/// How the server's certificate is checked: against the CA file alone
/// when one is configured, else the public roots.
fn tls_parameters(config: &SmtpConfig) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(ca_certificates(path).map_err(anyhow::Error::msg)?);
    }
    Ok(builder.build_rustls()?)
}

/// The CA certificates of the PEM file at `path` (at least one), or why not.
pub(crate) fn ca_certificates(path: &Path) -> Result<Certificate, String> {
    let pem =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let holds_one = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
    match Certificate::from_pem(&pem) {
        Ok(certificates) if holds_one => Ok(certificates),
        _ => Err(format!(
            "{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        )),
    }
}

/// What a failed mail means for it.
fn classify(error: &SendError) -> Sent {
    let words = error.to_string();
    let error = match error {
        SendError::Smtp(error) => error,
        SendError::Timeout(_) => return Sent::Later(Failure::Timeout, words),
        SendError::Connect(_) | SendError::Handshake(_) => {
            return Sent::Later(Failure::Unreachable, words);
        }
    };
    let code = error.status().map(u16::from);
    if error.is_timeout() {
        return Sent::Later(Failure::Timeout, words);
    }
    if error.is_permanent() {
        return match code {
            Some(code) if LOGIN_CODES.contains(&code) => Sent::Later(Failure::Temporary, words),
            _ => Sent::Refused(words),
        };
    }
    if error.is_transient() {
        return Sent::Later(Failure::Temporary, words);
    }
    Sent::Later(Failure::Unreachable, words)
}
