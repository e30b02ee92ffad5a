//! The `notify:` section of the status page's config: where links in mails
//! point (`base_url`), how drafted statements are published (`publish`,
//! `hold`), the SMTP server mails leave through (`smtp`) and the webhooks
//! every event is posted to (`webhooks`). Every key but `base_url` has a
//! default; each value is checked where it is read (an error names its line
//! and field), and what spans fields (plain SMTP only towards loopback, one
//! password source) once the section is read. Secrets are read at start
//! ([`NotifyConfig::smtp_password`], [`Webhook::secret`]) and never shown.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::metrics::Event;
pub(crate) use crate::reports::config::SecretSource;
use crate::yaml::values::{HttpUrl, Label, ScalarVisitor, checked_scalar};

/// The `notify:` section, checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "NotifySection")]
pub(crate) struct NotifyConfig {
    /// The page's public address: every link in a mail starts with it (no trailing `/`).
    pub(crate) base_url: String,
    /// Whether drafted statements are published by themselves.
    pub(crate) publish: Publish,
    /// How long an incident is open before its drafted statement is published.
    pub(crate) hold: Duration,
    /// The SMTP server, when mail is configured.
    pub(crate) smtp: Option<SmtpConfig>,
    /// The webhooks every matching event is posted to.
    pub(crate) webhooks: Vec<Webhook>,
}

/// `publish`: `auto` (drafts go out after `hold`) or `manual` (an operator publishes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Publish {
    /// Drafted statements are published once their incident is `hold` old.
    #[default]
    Auto,
    /// Drafted statements wait for an operator.
    Manual,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SmtpTls {
    /// Plain TCP upgraded with STARTTLS (required, never skipped): port 587.
    #[default]
    Starttls,
    /// TLS from the first byte: port 465.
    Tls,
    /// No TLS at all: only towards a server on loopback.
    Plain,
}

/// `notify.smtp`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmtpConfig {
    /// The server's host name or address.
    pub(crate) host: String,
    /// Its port.
    pub(crate) port: u16,
    /// How the connection is secured.
    pub(crate) tls: SmtpTls,
    /// The `From:` of every mail.
    pub(crate) from: Mailbox,
    /// The user to log in as, if the server wants a login.
    pub(crate) username: Option<String>,
    /// Where the password comes from (with `username`).
    pub(crate) password: Option<SecretSource>,
    /// Connections kept open to the server: mails sent at the same time.
    pub(crate) connections: u32,
    /// CA certificates (PEM) that alone are trusted for the server's
    /// certificate; `None`: the usual public roots.
    pub(crate) ca_file: Option<PathBuf>,
}

/// A webhook subscriber (`notify.webhooks[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WebhookSection")]
pub(crate) struct Webhook {
    /// Where events are posted.
    pub(crate) url: String,
    /// Where the signing secret comes from.
    pub(crate) secret: SecretSource,
    /// The probes (features) whose incidents it hears of; empty: all.
    pub(crate) features: Vec<String>,
    /// The events it hears of.
    pub(crate) events: Vec<Event>,
}

/// An event a webhook can hear of: every [`Event`] but `confirm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WebhookEvent(pub(crate) Event);

impl TryFrom<String> for WebhookEvent {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Event::ALL
            .iter()
            .copied()
            .filter(|event| *event != Event::Confirm)
            .find(|event| event.as_str() == value)
            .map(WebhookEvent)
            .ok_or_else(|| {
                format!(
                    "`{value}` is not an event: incident_opened, statement or incident_resolved"
                )
            })
    }
}

/// One of `env` and `file`, named `field` in the error when both are given.
fn one_of(
    field: &str,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<SecretSource>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!("give one of `{field}_env` and `{field}_file`")),
        (Some(variable), None) => Ok(Some(SecretSource::Env(variable))),
        (None, Some(path)) => Ok(Some(SecretSource::File(path))),
        (None, None) => Ok(None),
    }
}

/// The secret `source` holds, read now (named `what` in errors; the value never is).
pub(crate) fn read_secret(source: &SecretSource, what: &str) -> anyhow::Result<String> {
    let text = match source {
        SecretSource::Env(variable) => {
            std::env::var(variable).with_context(|| format!("reading {what} from ${variable}"))?
        }
        SecretSource::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} from {}", path.display()))?,
    };
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!secret.is_empty(), "{what} is empty");
    Ok(secret)
}

/// A mail address as `from` takes it (`Status <status@example.com>` or a bare address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mailbox(pub(crate) lettre::message::Mailbox);

impl TryFrom<String> for Mailbox {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value
            .parse::<lettre::message::Mailbox>()
            .map(Mailbox)
            .map_err(|error| format!("`{value}` is not a mail address: {error}"))
    }
}

/// `HOST:PORT` of the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerAddress {
    host: String,
    port: u16,
}

impl TryFrom<String> for ServerAddress {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let invalid = || format!("`{value}` must be HOST:PORT (`smtp.example.com:587`)");
        let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !host_ok || port == 0 {
            return Err(invalid());
        }
        Ok(ServerAddress {
            host: host.to_string(),
            port,
        })
    }
}

checked_scalar!(Mailbox, ServerAddress, WebhookEvent);

/// Whether `host` is this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifySection {
    base_url: HttpUrl,
    #[serde(default)]
    publish: Publish,
    #[serde(default, with = "humantime_serde")]
    hold: Duration,
    #[serde(default)]
    smtp: Option<SmtpSection>,
    #[serde(default)]
    webhooks: Vec<Webhook>,
}

/// `notify.smtp` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSection {
    server: ServerAddress,
    #[serde(default)]
    tls: SmtpTls,
    from: Mailbox,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default = "default_connections")]
    connections: u32,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// Connections to the SMTP server unless `connections` says otherwise.
fn default_connections() -> u32 {
    4
}

/// The most connections `connections` may ask for.
const MOST_CONNECTIONS: u32 = 64;

/// `notify.webhooks[]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSection {
    url: HttpUrl,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    features: Vec<Label>,
    #[serde(default = "every_event")]
    events: Vec<WebhookEvent>,
}

/// Every event: what a webhook hears of unless `events` says otherwise.
fn every_event() -> Vec<WebhookEvent> {
    Event::ALL
        .iter()
        .copied()
        .filter(|event| *event != Event::Confirm)
        .map(WebhookEvent)
        .collect()
}

/// The longest `hold`: a day.
const LONGEST_HOLD: Duration = Duration::from_secs(24 * 3600);

impl TryFrom<NotifySection> for NotifyConfig {
    type Error = String;

    fn try_from(section: NotifySection) -> Result<Self, String> {
        if section.hold > LONGEST_HOLD {
            return Err("`hold` must be at most 24h".into());
        }
        let base_url = section.base_url.0.trim_end_matches('/').to_string();
        if base_url.contains(['?', '#']) {
            return Err("`base_url` must hold no `?` query or `#` fragment".into());
        }
        Ok(NotifyConfig {
            base_url,
            publish: section.publish,
            hold: section.hold,
            smtp: section.smtp.map(SmtpConfig::try_from).transpose()?,
            webhooks: section.webhooks,
        })
    }
}

impl TryFrom<SmtpSection> for SmtpConfig {
    type Error = String;

    fn try_from(section: SmtpSection) -> Result<Self, String> {
        let host = section.server.host;
        if section.tls == SmtpTls::Plain && !is_loopback(&host) {
            return Err(format!(
                "smtp.tls `plain` sends mail and passwords unencrypted: it is allowed only towards \
                 a server on loopback, not `{host}` (use `starttls` or `tls`)"
            ));
        }
        let password = one_of("smtp.password", section.password_env, section.password_file)?;
        if password.is_some() != section.username.is_some() {
            return Err(
                "smtp: give `username` and one of `password_env`, `password_file` together".into(),
            );
        }
        if !(1..=MOST_CONNECTIONS).contains(&section.connections) {
            return Err(format!("smtp.connections must be 1 to {MOST_CONNECTIONS}"));
        }
        if section.tls == SmtpTls::Plain && section.ca_file.is_some() {
            return Err(
                "smtp.ca_file is for `starttls` or `tls`: `plain` has no certificate".into(),
            );
        }
        Ok(SmtpConfig {
            host,
            port: section.server.port,
            tls: section.tls,
            from: section.from,
            username: section.username,
            password,
            connections: section.connections,
            ca_file: section.ca_file,
        })
    }
}

impl TryFrom<WebhookSection> for Webhook {
    type Error = String;

    fn try_from(section: WebhookSection) -> Result<Self, String> {
        let secret = one_of("secret", section.secret_env, section.secret_file)?
            .ok_or("a webhook needs `secret_env` or `secret_file`: its posts are signed")?;
        if section.events.is_empty() {
            return Err("a webhook's `events` must name at least one event".into());
        }
        Ok(Webhook {
            url: section.url.0,
            secret,
            features: section.features.into_iter().map(|label| label.0).collect(),
            events: section.events.into_iter().map(|event| event.0).collect(),
        })
    }
}

impl Webhook {
    /// Its signing secret, read now.
    pub(crate) fn secret(&self) -> anyhow::Result<String> {
        read_secret(&self.secret, &format!("the secret of webhook {}", self.url))
    }

    /// Whether it hears of `event` about `probe`.
    pub(crate) fn wants(&self, probe: &str, event: Event) -> bool {
        self.events.contains(&event)
            && (self.features.is_empty() || self.features.iter().any(|f| f == probe))
    }
}

impl NotifyConfig {
    /// The section with its secret files and CA file taken from the config's folder (`resolve`).
    pub(crate) fn placed(mut self, resolve: impl Fn(&std::path::Path) -> PathBuf) -> NotifyConfig {
        let place = |source: &mut SecretSource| {
            if let SecretSource::File(path) = source {
                *path = resolve(path);
            }
        };
        if let Some(smtp) = self.smtp.as_mut() {
            if let Some(password) = smtp.password.as_mut() {
                place(password);
            }
            smtp.ca_file = smtp.ca_file.as_deref().map(&resolve);
        }
        for webhook in &mut self.webhooks {
            place(&mut webhook.secret);
        }
        self
    }

    /// The SMTP password, read now (`None` without a login).
    pub(crate) fn smtp_password(&self) -> anyhow::Result<Option<String>> {
        let source = self.smtp.as_ref().and_then(|smtp| smtp.password.as_ref());
        source
            .map(|source| read_secret(source, "smtp.password"))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        crate::yaml::parse::<NotifyConfig>(std::path::Path::new("n.yaml"), text)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_fill_everything_but_the_base_url() {
        let config = parse("base_url: https://status.example/\n").expect("valid");
        assert_eq!(config.base_url, "https://status.example");
        assert_eq!(config.publish, Publish::Auto);
        assert_eq!(config.hold, Duration::ZERO);
        assert_eq!(config.smtp, None);
        assert!(config.webhooks.is_empty());
        let error = parse("publish: auto\n").expect_err("base_url is needed");
        assert!(error.contains("base_url"), "{error}");
    }

    #[test]
    fn a_full_section_reads_back() {
        let config = parse(
            "base_url: https://status.example\npublish: manual\nhold: 2m\n\
             smtp: {server: 'smtp.example:587', from: 'Status <s@example.com>', username: u, password_env: P}\n\
             webhooks:\n  - {url: 'https://hooks.example/x', secret_file: /run/s, features: [group_message], events: [incident_opened]}\n",
        )
        .expect("valid");
        assert_eq!(config.publish, Publish::Manual);
        assert_eq!(config.hold, Duration::from_secs(120));
        let smtp = config.smtp.expect("smtp");
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("smtp.example", 587, SmtpTls::Starttls)
        );
        assert_eq!(smtp.password, Some(SecretSource::Env("P".into())));
        assert_eq!(smtp.connections, 4);
        let hook = &config.webhooks[0];
        assert!(hook.wants("group_message", Event::IncidentOpened));
        assert!(!hook.wants("group_message", Event::IncidentResolved));
        assert!(!hook.wants("leave_group", Event::IncidentOpened));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let base = "base_url: http://127.0.0.1:9465\n";
        for (section, wanted) in [
            (
                "smtp: {server: 'mail.example:25', tls: plain, from: a@b.example}",
                "loopback",
            ),
            (
                "smtp: {server: 'mail.example', from: a@b.example}",
                "HOST:PORT",
            ),
            (
                "smtp: {server: 'mail.example:25', tls: none, from: a@b.example}",
                "tls",
            ),
            (
                "smtp: {server: 'mail.example:25', from: 'not an address'}",
                "from",
            ),
            (
                "smtp: {server: 'mail.example:25', from: a@b.example, username: u}",
                "username",
            ),
            (
                "smtp: {server: 'mail.example:25', from: a@b.example, username: u, password_env: A, password_file: /b}",
                "password",
            ),
            (
                "smtp: {server: 'mail.example:25', from: a@b.example, connections: 0}",
                "connections",
            ),
            (
                "smtp: {server: '127.0.0.1:25', tls: plain, from: a@b.example, ca_file: ca.pem}",
                "ca_file",
            ),
            ("webhooks: [{url: 'https://h.example'}]", "secret"),
            ("webhooks: [{url: 'ftp://h.example', secret_env: S}]", "url"),
            (
                "webhooks: [{url: 'https://h.example', secret_env: S, events: [opened]}]",
                "events",
            ),
            (
                "webhooks: [{url: 'https://h.example', secret_env: S, features: ['a b']}]",
                "features",
            ),
            ("hold: 2d", "hold"),
            ("publish: sometimes", "publish"),
            ("surprise: 1", "surprise"),
        ] {
            let error = parse(&format!("{base}{section}\n")).expect_err(section);
            assert!(error.contains(wanted), "{section}: {error}");
        }
        assert!(
            parse(&format!(
                "{base}smtp: {{server: '127.0.0.1:2525', tls: plain, from: a@b.example}}\n"
            ))
            .is_ok()
        );
        assert!(
            parse(&format!(
                "{base}smtp: {{server: 'localhost:2525', tls: plain, from: a@b.example}}\n"
            ))
            .is_ok()
        );
        assert!(
            parse(&format!(
                "{base}smtp: {{server: '[::1]:2525', tls: plain, from: a@b.example}}\n"
            ))
            .is_ok()
        );
    }
}
