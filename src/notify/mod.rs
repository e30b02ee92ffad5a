//! "Notify me" by email, webhooks, and delivery that loses nothing.
//!
//! Visitors subscribe to incidents of the features they choose
//! ([`choices`]) with double opt-in: [`subscriptions`] keeps the address and
//! its choices, and queues one confirmation mail; nothing else goes to an
//! address until its confirmation link is followed. Links carry HMAC tokens
//! ([`tokens`]). Operators configure webhooks ([`config`], [`webhook`]).
//!
//! Every statement about an incident is stored with one outbox row per
//! subscriber and webhook that asked for it, in the same transaction
//! ([`outbox::record_statement`], through [`Notify::record_statement`]).
//! [`sender`] works through the outbox (mail built by [`mail`] and sent over
//! [`smtp`]), retrying, bouncing and giving up as it says; [`upkeep`]
//! measures the outbox and expires unconfirmed subscriptions. [`routes`]
//! serves the subscription endpoints, the pages their links open
//! ([`pages`]) and the operators' statement API ([`operator`]).

pub(crate) mod choices;
pub(crate) mod config;
pub(crate) mod mail;
pub(crate) mod operator;
pub(crate) mod outbox;
pub(crate) mod pages;
pub(crate) mod routes;
pub(crate) mod sender;
pub(crate) mod smtp;
pub(crate) mod subscriptions;
pub(crate) mod tokens;
pub(crate) mod upkeep;
pub(crate) mod webhook;

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::status_page::PublicWording;
use crate::metrics::NotifyMetrics;
use crate::reports::Reports;
use crate::reports::config::Limits;
use crate::reports::key::Keys;
use crate::reports::limits::RateLimits;
use crate::store::{Store, StoreError, secret};
use config::NotifyConfig;
use mail::Letterhead;
use operator::OperatorToken;
use outbox::{NewStatement, Recorded};
use sender::{Sender, WebhookSecret};
use smtp::Smtp;
use tokens::Tokens;

pub(crate) use crate::reports::unix_now;

/// Subscription requests one client may make per minute (a burst of as many).
const SUBSCRIBE_PER_CLIENT_PER_MINUTE: u32 = 5;
/// Subscription requests taken per second from everyone together.
const SUBSCRIBE_PER_SECOND: u32 = 50;

/// The notifications side of the status page.
pub(crate) struct Notify {
    /// Its config.
    pub(crate) config: NotifyConfig,
    /// The store of subscribers, statements and the outbox.
    pub(crate) store: Store,
    /// Makes and checks the links' tokens.
    pub(crate) tokens: Tokens,
    /// Woken when rows are queued.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// The reports side, whose client and origin rules subscriptions share.
    pub(crate) reports: Arc<Reports>,
    /// Rate limits on subscription requests.
    pub(crate) limits: RateLimits,
    /// Client keys for the rate limits (the reports' daily secrets).
    pub(crate) keys: Keys,
    /// The operators' token, if configured.
    pub(crate) operator: Option<OperatorToken>,
    /// The page's title.
    pub(crate) title: String,
    /// How features are named to subscribers.
    pub(crate) wording: PublicWording,
    /// Counts what is sent and what fails.
    pub(crate) metrics: NotifyMetrics,
}

impl Notify {
    /// The notifications of `config` on `store` (its token secret read or
    /// made there), sharing the reports' client rules.
    pub(crate) async fn open(
        config: NotifyConfig,
        store: Store,
        reports: Arc<Reports>,
        operator: Option<OperatorToken>,
        title: String,
        wording: PublicWording,
        metrics: NotifyMetrics,
    ) -> anyhow::Result<Notify> {
        let secret = secret::named(&store, tokens::SECRET_NAME)
            .await
            .context("reading the notification token secret from the store")?;
        let limits = RateLimits::new(&Limits {
            per_reporter_per_minute: SUBSCRIBE_PER_CLIENT_PER_MINUTE,
            per_second: SUBSCRIBE_PER_SECOND,
            ..Limits::default()
        });
        tracing::info!(
            "notify: publishing {:?} statements after {}; mail {}; {} webhooks",
            config.publish,
            humantime::format_duration(config.hold),
            config
                .smtp
                .as_ref()
                .map_or("off".to_string(), |smtp| format!(
                    "via {}:{} ({:?})",
                    smtp.host, smtp.port, smtp.tls
                )),
            config.webhooks.len()
        );
        Ok(Notify {
            config,
            store,
            tokens: Tokens::new(secret),
            wake: Arc::new(tokio::sync::Notify::new()),
            reports,
            limits,
            keys: Keys::new(None),
            operator,
            title,
            wording,
            metrics,
        })
    }

    /// Records `statement` and queues its notifications (one transaction),
    /// then wakes the sender: the operation an incident event calls.
    pub(crate) async fn record_statement(
        &self,
        statement: &NewStatement<'_>,
    ) -> Result<Recorded, StoreError> {
        let recorded =
            outbox::record_statement(&self.store, statement, &self.config.webhooks).await?;
        self.wake.notify_one();
        Ok(recorded)
    }

    /// The sender of this page's outbox (reading the SMTP password and the
    /// webhooks' secrets now).
    pub(crate) fn sender(&self) -> anyhow::Result<Sender> {
        let mail = match &self.config.smtp {
            Some(smtp_config) => {
                let transport = Smtp::new(smtp_config, self.config.smtp_password()?)
                    .context("setting up the SMTP transport")?;
                let letterhead = Letterhead {
                    base_url: self.config.base_url.clone(),
                    from: smtp_config.from.clone(),
                    title: self.title.clone(),
                };
                Some((letterhead, transport))
            }
            None => None,
        };
        let webhooks = self
            .config
            .webhooks
            .iter()
            .map(|hook| {
                Ok(WebhookSecret {
                    url: hook.url.clone(),
                    secret: hook.secret()?.into_bytes(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let connections = self.config.smtp.as_ref().map_or(4, |smtp| smtp.connections);
        Ok(Sender {
            store: self.store.clone(),
            mail,
            tokens: self.tokens.clone(),
            webhooks,
            poster: webhook::Poster::new().context("building the webhook client")?,
            title: self.title.clone(),
            concurrency: usize::try_from(connections).unwrap_or(4),
            metrics: self.metrics.clone(),
            wake: Arc::clone(&self.wake),
        })
    }
}

/// A fresh SQLite store in the temp folder, for the queries' unit tests
/// (removed when dropped).
#[cfg(test)]
pub(crate) struct TestStore {
    /// The store.
    pub(crate) store: Store,
    path: std::path::PathBuf,
}

#[cfg(test)]
impl TestStore {
    /// Opens one.
    pub(crate) async fn open() -> TestStore {
        let name = format!(
            "chatprobe-notify-{}-{}.db",
            std::process::id(),
            subscriptions::new_id()
        );
        let path = std::env::temp_dir().join(name);
        let location = crate::config::status_page::StoreLocation::Sqlite(path.clone());
        let metrics = crate::metrics::ReportMetrics::default();
        let store = Store::open(&location, metrics)
            .await
            .expect("a temp SQLite store opens");
        TestStore { store, path }
    }
}

#[cfg(test)]
impl Drop for TestStore {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}
