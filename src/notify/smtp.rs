//! The SMTP side: a pooled `lettre` transport over rustls (STARTTLS
//! required, implicit TLS, or plain only towards loopback, as the config
//! checked; the server's certificate checked against the public roots or
//! the configured CA file alone), logging in with the configured
//! credentials (never logged), and what an answer means for the mail:
//! delivered, try again later, or never.

use std::path::Path;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::config::{SmtpConfig, SmtpTls};
use crate::metrics::Failure;

/// The longest one SMTP command may take to be answered.
pub(crate) const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Permanent answers about the login, not the address: the server's or the
/// config's fault, so the mail is tried again rather than the address bounced.
const LOGIN_CODES: [u16; 4] = [530, 534, 535, 538];

/// A pooled connection to the SMTP server.
#[derive(Clone)]
pub(crate) struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Smtp { .. }")
    }
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

impl Smtp {
    /// The transport `config` describes, logging in with `password`.
    pub(crate) fn new(config: &SmtpConfig, password: Option<String>) -> anyhow::Result<Smtp> {
        let host = config.host.as_str();
        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters(config)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(config)?),
            SmtpTls::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .tls(tls)
            .port(config.port)
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(config.connections));
        if let (Some(user), Some(password)) = (&config.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Smtp {
            transport: builder.build(),
        })
    }

    /// Sends `message`, within [`SMTP_TIMEOUT`] for each command (and
    /// four of them for the whole mail, connecting included).
    pub(crate) async fn send(&self, message: Message) -> Sent {
        let whole = SMTP_TIMEOUT * 4;
        match tokio::time::timeout(whole, self.transport.send(message)).await {
            Ok(Ok(_)) => Sent::Delivered,
            Ok(Err(error)) => classify(&error),
            Err(_) => Sent::Later(Failure::Timeout, format!("no answer within {whole:?}")),
        }
    }
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

/// What an SMTP error means for the mail.
fn classify(error: &lettre::transport::smtp::Error) -> Sent {
    let words = error.to_string();
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
