//! The senders: work through the outbox until shut down, claiming due
//! notifications under a lease ([`outbox::claim`]) as delivery slots free
//! up and delivering at most [`Sender::concurrency`] at a time (mail over
//! the pooled SMTP connections, webhooks over HTTP); a delivered one is removed,
//! a temporary failure is put back with exponential backoff, one still
//! failing 24 hours after it was queued is given up, and a permanent SMTP
//! refusal counts a bounce against the address ([`subscriptions::bounce`]).
//! With a slot free it also waits for new rows (woken by whoever queued
//! them) or [`POLL`], for rows other replicas queued.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::mail::Letterhead;
use super::outbox::{self, Queued, Statement};
use super::smtp::{Sent, Smtp};
use super::subscriptions;
use super::tokens::Tokens;
use super::unix_now;
use super::webhook::{self, Poster};
use crate::metrics::{Channel, Event, Failure, NotifyMetrics};
use crate::store::{Store, StoreError};

/// How long a claimed notification is held before another sender may take
/// it (a sender killed mid-batch holds its rows no longer than this).
pub(crate) const LEASE_SECONDS: i64 = 60;
/// How often the outbox is looked at when nobody woke the sender.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// Notifications given up on this long after they were queued.
pub(crate) const GIVE_UP_AFTER: i64 = 24 * 3600;
/// The first retry's wait; each later one doubles it, up to [`LONGEST_BACKOFF`].
const FIRST_BACKOFF: i64 = 5;
/// The longest wait between two attempts.
const LONGEST_BACKOFF: i64 = 600;

/// A webhook as the sender knows it: its URL and secret.
#[derive(Clone)]
pub(crate) struct WebhookSecret {
    /// Where it is posted.
    pub(crate) url: String,
    /// What its posts are signed with.
    pub(crate) secret: Vec<u8>,
}

/// Everything a sender needs.
pub(crate) struct Sender {
    /// The store holding the outbox.
    pub(crate) store: Store,
    /// Mail's sender and links, with the SMTP transport (`None`: no mail configured).
    pub(crate) mail: Option<(Letterhead, Smtp)>,
    /// Makes the links' tokens.
    pub(crate) tokens: Tokens,
    /// The configured webhooks.
    pub(crate) webhooks: Vec<WebhookSecret>,
    /// Posts to them.
    pub(crate) poster: Poster,
    /// The page's title (in webhook texts).
    pub(crate) title: String,
    /// Deliveries at once.
    pub(crate) concurrency: usize,
    /// Counts what is sent and what fails.
    pub(crate) metrics: NotifyMetrics,
    /// Woken when rows are queued.
    pub(crate) wake: Arc<tokio::sync::Notify>,
}

/// The wait before attempt `attempts + 1`: 5 s, 10 s, 20 s ... up to 10 minutes.
pub(crate) fn backoff(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    FIRST_BACKOFF
        .saturating_mul(1_i64 << doublings)
        .min(LONGEST_BACKOFF)
}

/// A server's `words` with every mail address in them replaced by
/// `<address>`: servers often quote the recipient, and logs hold none.
pub(crate) fn without_addresses(words: &str) -> String {
    words
        .split(' ')
        .map(|word| match word.contains('@') {
            true => "<address>",
            false => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Statements read so far, by id (a recorded statement never changes), so
/// that the mails of one statement read it once.
#[derive(Default)]
struct Statements {
    read: BTreeMap<i64, Option<Statement>>,
}

impl Statements {
    /// Statements kept at most; beyond, the cache starts afresh.
    const KEPT: usize = 256;

    /// The statement `id` (`None`: there is none).
    async fn get(&mut self, store: &Store, id: i64) -> Result<Option<Statement>, StoreError> {
        if let Some(statement) = self.read.get(&id) {
            return Ok(statement.clone());
        }
        let statement = outbox::statement(store, id).await?;
        if self.read.len() >= Self::KEPT {
            self.read.clear();
        }
        self.read.insert(id, statement.clone());
        Ok(statement)
    }
}

/// What to do with one queued notification.
enum Outcome {
    /// Delivered: remove it.
    Delivered,
    /// Nothing to deliver any more (unsubscribed, bounced): remove it quietly.
    Moot,
    /// Failed for now: put it back.
    Later(Failure, String),
    /// Failed for good: remove it (a mail's address counts a bounce).
    Refused(Failure, String),
}

impl Sender {
    /// Runs until the task is dropped, keeping [`Sender::concurrency`]
    /// deliveries going: rows are claimed as slots free up, so a slow mail
    /// holds up its own slot only, and each row is sent right after its
    /// claim, well within the lease.
    pub(crate) async fn run(self) {
        let sender = Arc::new(self);
        let mut statements = Statements::default();
        let mut running = JoinSet::new();
        loop {
            let free = sender.concurrency.saturating_sub(running.len());
            if free > 0
                && let Err(error) = sender.start(free, &mut statements, &mut running).await
            {
                tracing::warn!("notify: cannot read the outbox: {error}");
                if running.is_empty() {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            }
            if running.is_empty() {
                sender.idle().await;
                continue;
            }
            let finished = match running.len() < sender.concurrency {
                true => tokio::select! {
                    finished = running.join_next() => finished,
                    () = sender.idle() => None,
                },
                false => running.join_next().await,
            };
            if let Some(Err(error)) = finished {
                tracing::error!("notify: a delivery task failed: {error}");
            }
        }
    }

    /// Claims up to `free` due rows and starts delivering each. A row
    /// whose statement cannot be read now stays leased, to be claimed
    /// again once its lease runs out.
    async fn start(
        self: &Arc<Self>,
        free: usize,
        statements: &mut Statements,
        running: &mut JoinSet<()>,
    ) -> Result<(), StoreError> {
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let claimed = outbox::claim(&self.store, unix_now(), LEASE_SECONDS, limit).await?;
        for queued in claimed {
            let statement = match queued.event {
                Event::Confirm => None,
                _ => match statements.get(&self.store, queued.subject).await {
                    Ok(statement) => statement,
                    Err(error) => {
                        tracing::warn!("notify: cannot read a statement: {error}");
                        continue;
                    }
                },
            };
            let sender = Arc::clone(self);
            running.spawn(async move {
                if let Err(error) = sender.deliver_one(&queued, statement.as_ref()).await {
                    // The row stays leased: it is tried again once the lease runs out.
                    tracing::warn!("notify: store: {error}");
                }
            });
        }
        Ok(())
    }

    /// Waits for new rows or [`POLL`].
    async fn idle(&self) {
        let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
    }

    /// Delivers `queued` (about `statement`, unless a confirmation) and
    /// records what became of it.
    async fn deliver_one(
        &self,
        queued: &Queued,
        statement: Option<&Statement>,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        if now - queued.created_at > GIVE_UP_AFTER {
            self.metrics.failed(queued.channel, Failure::Expired);
            tracing::warn!(
                "notify: gave up a {} {} after {} attempts over 24 hours",
                queued.channel,
                queued.event,
                queued.attempts
            );
            return outbox::finish(&self.store, queued).await;
        }
        let outcome = match queued.channel {
            Channel::Email => self.mail(queued, statement).await?,
            Channel::Webhook => self.post(queued, statement).await,
        };
        match outcome {
            Outcome::Delivered => {
                outbox::finish(&self.store, queued).await?;
                self.metrics.sent(queued.channel, queued.event);
            }
            Outcome::Moot => outbox::finish(&self.store, queued).await?,
            Outcome::Later(failure, words) => {
                self.metrics.failed(queued.channel, failure);
                tracing::info!(
                    "notify: a {} {} failed ({failure}: {}); retrying in {} s",
                    queued.channel,
                    queued.event,
                    without_addresses(&words),
                    backoff(queued.attempts)
                );
                outbox::retry(&self.store, queued, now + backoff(queued.attempts)).await?;
            }
            Outcome::Refused(failure, words) => {
                self.metrics.failed(queued.channel, failure);
                tracing::warn!(
                    "notify: a {} {} was refused for good ({})",
                    queued.channel,
                    queued.event,
                    without_addresses(&words)
                );
                outbox::finish(&self.store, queued).await?;
                if failure == Failure::Bounced {
                    self.bounce(queued, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Counts a bounce against the subscriber of `queued`.
    async fn bounce(&self, queued: &Queued, now: i64) -> Result<(), StoreError> {
        let Ok(id) = queued.recipient.parse::<i64>() else {
            return Ok(());
        };
        if subscriptions::bounce(&self.store, id, now).await? {
            tracing::warn!(
                "notify: subscriber {id:016x} bounced {} times: no more mail to it",
                subscriptions::BOUNCES_TO_STOP
            );
        }
        Ok(())
    }

    /// Mails `queued`.
    async fn mail(
        &self,
        queued: &Queued,
        statement: Option<&Statement>,
    ) -> Result<Outcome, StoreError> {
        let Some((letterhead, smtp)) = &self.mail else {
            return Ok(Outcome::Later(
                Failure::Unreachable,
                "no smtp server is configured".into(),
            ));
        };
        let Ok(id) = queued.recipient.parse::<i64>() else {
            return Ok(Outcome::Moot);
        };
        let Some(subscriber) = subscriptions::find(&self.store, id).await? else {
            return Ok(Outcome::Moot);
        };
        let message = match (queued.event, statement) {
            (Event::Confirm, _) => {
                letterhead.confirmation(&self.tokens, &subscriber, queued.subject)
            }
            // Nothing but its confirmation ever goes to an unconfirmed address.
            (_, _) if subscriber.confirmed_at.is_none() => return Ok(Outcome::Moot),
            (_, Some(statement)) => letterhead.notification(&self.tokens, &subscriber, statement),
            (_, None) => return Ok(Outcome::Moot),
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => return Ok(Outcome::Refused(Failure::Rejected, error.to_string())),
        };
        Ok(match smtp.send(message).await {
            Sent::Delivered => Outcome::Delivered,
            Sent::Later(failure, words) => Outcome::Later(failure, words),
            Sent::Refused(words) => Outcome::Refused(Failure::Bounced, words),
        })
    }

    /// Posts `queued` to its webhook.
    async fn post(&self, queued: &Queued, statement: Option<&Statement>) -> Outcome {
        let Some(hook) = self
            .webhooks
            .iter()
            .find(|hook| hook.url == queued.recipient)
        else {
            return Outcome::Refused(
                Failure::Rejected,
                "the webhook is no longer configured".into(),
            );
        };
        let Some(statement) = statement else {
            return Outcome::Moot;
        };
        let body = match webhook::body(statement, &self.title) {
            Ok(body) => body,
            Err(error) => return Outcome::Refused(Failure::Rejected, error.to_string()),
        };
        let id = webhook::delivery_id(statement, &hook.url);
        match self.poster.post(&hook.url, &hook.secret, &id, body).await {
            Sent::Delivered => Outcome::Delivered,
            Sent::Later(failure, words) => Outcome::Later(failure, words),
            Sent::Refused(words) => Outcome::Refused(Failure::Rejected, words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_answers_hold_no_address() {
        assert_eq!(
            without_addresses("permanent error (550): 5.1.1 <a@example.org>: no such mailbox"),
            "permanent error (550): 5.1.1 <address> no such mailbox"
        );
    }

    #[test]
    fn backoff_doubles_from_five_seconds_to_ten_minutes() {
        let waits: Vec<i64> = (0..10).map(backoff).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(backoff(i64::MAX), 600);
        assert_eq!(backoff(-3), 5);
    }
}
