//! The durable outbox: statements and the notifications they carry, in the
//! store, so nothing is lost to a crash. [`record_statement`] writes a
//! statement and one outbox row per confirmed subscriber and webhook that
//! asked for it in one transaction; senders [`claim`] due rows under a
//! lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas never
//! take the same row), then remove each delivered one ([`delivered`]) or
//! put it back with a later `next_at` ([`retry`]). A sender killed mid-batch
//! leaves its rows leased until the lease runs out; then any replica takes
//! them again, so only mail whose delivery was under way can go twice.

use std::collections::BTreeMap;

use super::choices::{When, like_pattern};
use super::config::Webhook;
use crate::metrics::{Channel, Event};
use crate::status::Timestamp;
use crate::store::{Dialect, Store, StoreError, column};

/// Which kind of statement (`statements[].kind`, **contract**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Written by the page from what the probes saw.
    Drafted,
    /// Written by an operator.
    Operator,
    /// The page's statement that the incident ended.
    Resolved,
}

impl Kind {
    /// Its word in the store and the API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Drafted => "drafted",
            Kind::Operator => "operator",
            Kind::Resolved => "resolved",
        }
    }

    /// The kind `word` names.
    fn parse(word: &str) -> Option<Kind> {
        [Kind::Drafted, Kind::Operator, Kind::Resolved]
            .into_iter()
            .find(|kind| kind.as_str() == word)
    }
}

/// The incident a statement is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct IncidentRef {
    /// Its key: `PROBE@STARTED` (unix seconds), stable while it lasts.
    pub(crate) key: String,
    /// The probe (feature) that failed.
    pub(crate) probe: String,
    /// When it started.
    pub(crate) started_at: Timestamp,
    /// When it ended, if it has.
    pub(crate) ended_at: Option<Timestamp>,
    /// The regions it involves.
    pub(crate) regions: Vec<String>,
}

impl IncidentRef {
    /// The key of the incident of `probe` that started at `started_at`.
    pub(crate) fn key_of(probe: &str, started_at: Timestamp) -> String {
        format!("{probe}@{}", started_at.unix_seconds())
    }
}

/// A statement to record.
#[derive(Debug, Clone)]
pub(crate) struct NewStatement<'a> {
    /// What it is about.
    pub(crate) incident: &'a IncidentRef,
    /// The event it is (never [`Event::Confirm`]).
    pub(crate) event: Event,
    /// Who wrote it.
    pub(crate) kind: Kind,
    /// What it says.
    pub(crate) text: &'a str,
    /// When, unix seconds.
    pub(crate) at: i64,
}

/// A statement as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// Its id.
    pub(crate) id: i64,
    /// The incident's key.
    pub(crate) incident: String,
    /// The probe of the incident.
    pub(crate) probe: String,
    /// When.
    pub(crate) at: i64,
    /// Who wrote it.
    pub(crate) kind: Kind,
    /// The event it is.
    pub(crate) event: Event,
    /// What it says.
    pub(crate) text: String,
    /// The incident as it was then (JSON of [`IncidentRef`]).
    pub(crate) incident_json: String,
}

/// What [`record_statement`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// The statement's id.
    pub(crate) statement: i64,
    /// Notifications queued for it.
    pub(crate) notifications: u64,
}

/// Stores `statement` and, in the same transaction, queues it for every
/// confirmed, unbounced subscriber whose choices cover it and every webhook
/// of `webhooks` that wants it.
pub(crate) async fn record_statement(
    store: &Store,
    statement: &NewStatement<'_>,
    webhooks: &[Webhook],
) -> Result<Recorded, StoreError> {
    let id = super::subscriptions::new_id();
    let incident_json =
        serde_json::to_string(statement.incident).map_err(|error| StoreError::Corrupt {
            what: "an incident",
            message: error.to_string(),
        })?;
    let mut transaction = store
        .timed("starting a statement", store.pool().begin())
        .await?;
    let insert = sqlx::query(
        "INSERT INTO statements (id, incident, probe, at, kind, event, text, incident_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&statement.incident.key)
    .bind(&statement.incident.probe)
    .bind(statement.at)
    .bind(statement.kind.as_str())
    .bind(statement.event.as_str())
    .bind(statement.text)
    .bind(incident_json);
    store
        .timed("storing a statement", insert.execute(&mut *transaction))
        .await?;
    let mut notifications = 0;
    if let Some(when) = When::of_event(statement.event) {
        let fan_out = sqlx::query(
            "INSERT INTO outbox (channel, recipient, subject, event, created_at, attempts, next_at, \
             leased_until) SELECT 'email', CAST(id AS TEXT), $1, $2, $3, 0, $3, 0 FROM subscribers \
             WHERE confirmed_at IS NOT NULL AND bounced_at IS NULL \
             AND (features = '' OR features LIKE $4 ESCAPE '\\') AND events LIKE $5 ESCAPE '\\'",
        )
        .bind(id)
        .bind(statement.event.as_str())
        .bind(statement.at)
        .bind(like_pattern(&statement.incident.probe))
        .bind(like_pattern(when.as_str()));
        let done = store
            .timed("queueing mail", fan_out.execute(&mut *transaction))
            .await?;
        notifications += done.rows_affected();
    }
    for webhook in webhooks
        .iter()
        .filter(|webhook| webhook.wants(&statement.incident.probe, statement.event))
    {
        let insert = sqlx::query(
            "INSERT INTO outbox (channel, recipient, subject, event, created_at, attempts, next_at, \
             leased_until) VALUES ('webhook', $1, $2, $3, $4, 0, $4, 0) ON CONFLICT DO NOTHING",
        )
        .bind(&webhook.url)
        .bind(id)
        .bind(statement.event.as_str())
        .bind(statement.at);
        let done = store
            .timed("queueing a webhook", insert.execute(&mut *transaction))
            .await?;
        notifications += done.rows_affected();
    }
    store
        .timed("committing a statement", transaction.commit())
        .await?;
    Ok(Recorded {
        statement: id,
        notifications,
    })
}

/// The columns a statement is read with.
const STATEMENT_COLUMNS: &str = "id, incident, probe, at, kind, event, text, incident_json";

/// A statement from a row of [`STATEMENT_COLUMNS`].
fn statement_of(row: &sqlx::any::AnyRow) -> Result<Statement, StoreError> {
    let what = "reading a statement";
    let kind: String = column(row, 4, what)?;
    let event: String = column(row, 5, what)?;
    let corrupt = |message: String| StoreError::Corrupt {
        what: "a statement",
        message,
    };
    Ok(Statement {
        id: column(row, 0, what)?,
        incident: column(row, 1, what)?,
        probe: column(row, 2, what)?,
        at: column(row, 3, what)?,
        kind: Kind::parse(&kind).ok_or_else(|| corrupt(format!("kind `{kind}`")))?,
        event: event_named(&event).ok_or_else(|| corrupt(format!("event `{event}`")))?,
        text: column(row, 6, what)?,
        incident_json: column(row, 7, what)?,
    })
}

/// The event `word` names.
pub(crate) fn event_named(word: &str) -> Option<Event> {
    Event::ALL
        .iter()
        .copied()
        .find(|event| event.as_str() == word)
}

/// The statement `id`, if the store has it.
pub(crate) async fn statement(store: &Store, id: i64) -> Result<Option<Statement>, StoreError> {
    let sql = format!("SELECT {STATEMENT_COLUMNS} FROM statements WHERE id = $1");
    let select = sqlx::query(&sql).bind(id);
    let row = store
        .timed("reading a statement", select.fetch_optional(store.pool()))
        .await?;
    row.as_ref().map(statement_of).transpose()
}

/// How many incidents one timelines query asks for.
const TIMELINES_PER_QUERY: usize = 200;

/// Every statement of the incidents `keys`, oldest first, by incident key
/// (incidents without statements are left out): one query per
/// [`TIMELINES_PER_QUERY`] incidents, not one each.
pub(crate) async fn timelines(
    store: &Store,
    keys: &[String],
) -> Result<BTreeMap<String, Vec<Statement>>, StoreError> {
    let mut timelines: BTreeMap<String, Vec<Statement>> = BTreeMap::new();
    for chunk in keys.chunks(TIMELINES_PER_QUERY) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {STATEMENT_COLUMNS} FROM statements WHERE incident IN ({}) ORDER BY at, id",
            placeholders.join(", ")
        );
        let select = chunk
            .iter()
            .fold(sqlx::query(&sql), |select, key| select.bind(key));
        let rows = store
            .timed("reading timelines", select.fetch_all(store.pool()))
            .await?;
        for row in &rows {
            let statement = statement_of(row)?;
            timelines
                .entry(statement.incident.clone())
                .or_default()
                .push(statement);
        }
    }
    Ok(timelines)
}

/// One queued notification, as a sender holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Its channel.
    pub(crate) channel: Channel,
    /// The subscriber's id (email) or the webhook's URL.
    pub(crate) recipient: String,
    /// The statement's id, or for a confirmation the second it was asked for.
    pub(crate) subject: i64,
    /// The event.
    pub(crate) event: Event,
    /// When it was queued.
    pub(crate) created_at: i64,
    /// Attempts so far.
    pub(crate) attempts: i64,
}

/// Takes up to `limit` notifications due at `now` for `lease` seconds: no
/// other sender takes them until then (or until they are finished).
pub(crate) async fn claim(
    store: &Store,
    now: i64,
    lease: i64,
    limit: u32,
) -> Result<Vec<Queued>, StoreError> {
    let lock = match store.dialect() {
        Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        // One writer at a time: the UPDATE itself is the lock.
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET leased_until = $1 WHERE (channel, recipient, subject, event) IN \
         (SELECT channel, recipient, subject, event FROM outbox WHERE next_at <= $2 \
         AND leased_until <= $2 ORDER BY next_at LIMIT $3 {lock}) \
         RETURNING channel, recipient, subject, event, created_at, attempts"
    );
    let update = sqlx::query(&sql)
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit));
    let what = "claiming notifications";
    let rows = store.timed(what, update.fetch_all(store.pool())).await?;
    rows.iter()
        .map(|row| {
            let channel: String = column(row, 0, what)?;
            let event: String = column(row, 3, what)?;
            let corrupt = |message: String| StoreError::Corrupt {
                what: "a queued notification",
                message,
            };
            Ok(Queued {
                channel: Channel::ALL
                    .iter()
                    .copied()
                    .find(|known| known.as_str() == channel)
                    .ok_or_else(|| corrupt(format!("channel `{channel}`")))?,
                recipient: column(row, 1, what)?,
                subject: column(row, 2, what)?,
                event: event_named(&event).ok_or_else(|| corrupt(format!("event `{event}`")))?,
                created_at: column(row, 4, what)?,
                attempts: column(row, 5, what)?,
            })
        })
        .collect()
}

/// The `WHERE` clause naming one row, its parameters starting at `$first`.
fn row_key(first: u8) -> String {
    format!(
        "channel = ${} AND recipient = ${} AND subject = ${} AND event = ${}",
        first,
        first + 1,
        first + 2,
        first + 3
    )
}

/// Removes `queued`: delivered, or given up on.
pub(crate) async fn finish(store: &Store, queued: &Queued) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM outbox WHERE {}", row_key(1));
    let delete = sqlx::query(&sql)
        .bind(queued.channel.as_str())
        .bind(&queued.recipient)
        .bind(queued.subject)
        .bind(queued.event.as_str());
    store
        .timed("finishing a notification", delete.execute(store.pool()))
        .await?;
    Ok(())
}

/// Puts `queued` back, to be tried again at `next_at`.
pub(crate) async fn retry(store: &Store, queued: &Queued, next_at: i64) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE outbox SET attempts = attempts + 1, next_at = $1, leased_until = 0 WHERE {}",
        row_key(2)
    );
    let update = sqlx::query(&sql)
        .bind(next_at)
        .bind(queued.channel.as_str())
        .bind(&queued.recipient)
        .bind(queued.subject)
        .bind(queued.event.as_str());
    store
        .timed("putting a notification back", update.execute(store.pool()))
        .await?;
    Ok(())
}

/// How many notifications wait, and when the oldest was queued (`None`: none wait).
pub(crate) async fn depth(store: &Store) -> Result<(u64, Option<i64>), StoreError> {
    let what = "measuring the outbox";
    let select =
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT), CAST(MIN(created_at) AS BIGINT) FROM outbox");
    let row = store.timed(what, select.fetch_one(store.pool())).await?;
    let count: i64 = column(&row, 0, what)?;
    let oldest: Option<i64> = column(&row, 1, what)?;
    Ok((u64::try_from(count).unwrap_or(0), oldest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::TestStore;
    use crate::notify::choices::Choices;
    use crate::notify::config::SecretSource;
    use crate::notify::subscriptions;

    const T0: i64 = 1_765_000_000;

    /// Subscribes and confirms `email` with `features` and `events`; its id.
    async fn confirmed(store: &Store, email: &str, features: &[&str], events: &[&str]) -> i64 {
        let strings = |all: &[&str]| all.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let choices = Choices::new(&strings(features), &strings(events)).expect("valid");
        subscriptions::subscribe(store, email, &choices, T0)
            .await
            .expect("subscribed");
        let claimed = claim(store, T0, 0, 100).await.expect("a claim");
        let mut id = 0;
        for queued in claimed {
            let candidate: i64 = queued.recipient.parse().expect("an id");
            if subscriptions::find(store, candidate)
                .await
                .expect("a read")
                .is_some_and(|s| s.email == email)
            {
                id = candidate;
            }
            finish(store, &queued).await.expect("finished");
        }
        subscriptions::confirm(store, id, T0)
            .await
            .expect("confirmed");
        id
    }

    fn incident(probe: &str) -> IncidentRef {
        let started_at = Timestamp::from_unix_seconds(1_765_000_000);
        IncidentRef {
            key: IncidentRef::key_of(probe, started_at),
            probe: probe.into(),
            started_at,
            ended_at: None,
            regions: vec!["ap-south".into()],
        }
    }

    fn webhook(features: &[&str], events: &[Event]) -> Webhook {
        Webhook {
            url: format!("https://hooks.example/{}", features.join("-")),
            secret: SecretSource::Env("UNUSED".into()),
            features: features.iter().map(|f| f.to_string()).collect(),
            events: events.to_vec(),
        }
    }

    #[tokio::test]
    async fn a_statement_is_queued_for_exactly_those_who_asked_for_it() {
        let test = TestStore::open().await;
        let store = &test.store;
        let sending = confirmed(
            store,
            "sending@example.org",
            &["group_message"],
            &["opened"],
        )
        .await;
        let back = confirmed(store, "back@example.org", &[], &["resolved"]).await;
        let leaving = confirmed(
            store,
            "leaving@example.org",
            &["leave_group"],
            &["opened", "resolved"],
        )
        .await;
        let unconfirmed = Choices::new(&[], &["opened".into()]).expect("valid");
        subscriptions::subscribe(store, "unconfirmed@example.org", &unconfirmed, T0)
            .await
            .expect("subscribed");
        let webhooks = [
            webhook(
                &[],
                &[
                    Event::IncidentOpened,
                    Event::Statement,
                    Event::IncidentResolved,
                ],
            ),
            webhook(&["leave_group"], &[Event::IncidentOpened]),
        ];
        let group_message = incident("group_message");
        let opened = NewStatement {
            incident: &group_message,
            event: Event::IncidentOpened,
            kind: Kind::Operator,
            text: "Sends fail.",
            at: T0 + 100,
        };
        let recorded = record_statement(store, &opened, &webhooks)
            .await
            .expect("recorded");
        assert_eq!(
            recorded.notifications, 2,
            "`sending` and the webhook for all"
        );
        let resolved = NewStatement {
            event: Event::IncidentResolved,
            kind: Kind::Resolved,
            text: "Back.",
            at: T0 + 200,
            ..opened.clone()
        };
        assert_eq!(
            record_statement(store, &resolved, &webhooks)
                .await
                .expect("recorded")
                .notifications,
            2,
            "`back` and the webhook"
        );
        let claimed = claim(store, T0 + 300, 60, 100).await.expect("a claim");
        let mut to: Vec<(String, Event)> = claimed
            .iter()
            .map(|q| (q.recipient.clone(), q.event))
            .collect();
        to.sort();
        let mut wanted = vec![
            (sending.to_string(), Event::IncidentOpened),
            (back.to_string(), Event::IncidentResolved),
            (webhooks[0].url.clone(), Event::IncidentOpened),
            (webhooks[0].url.clone(), Event::IncidentResolved),
        ];
        // The unconfirmed address's confirmation is due too; nothing else is.
        wanted.extend(
            claimed
                .iter()
                .filter(|q| q.event == Event::Confirm)
                .map(|q| (q.recipient.clone(), q.event)),
        );
        wanted.sort();
        assert_eq!(to, wanted);
        assert!(
            !to.iter()
                .any(|(recipient, _)| *recipient == leaving.to_string())
        );
        let timeline = timelines(store, std::slice::from_ref(&group_message.key))
            .await
            .expect("timelines");
        let texts: Vec<(&str, Kind)> = timeline[&group_message.key]
            .iter()
            .map(|s| (s.text.as_str(), s.kind))
            .collect();
        assert_eq!(
            texts,
            [("Sends fail.", Kind::Operator), ("Back.", Kind::Resolved)]
        );
    }

    #[tokio::test]
    async fn a_claimed_row_is_held_for_its_lease_and_a_retried_one_waits_its_turn() {
        let test = TestStore::open().await;
        let store = &test.store;
        confirmed(store, "x@example.org", &[], &["opened"]).await;
        let hooks = [webhook(&[], &[Event::IncidentOpened])];
        let stated = incident("device_sync");
        let opened = NewStatement {
            incident: &stated,
            event: Event::IncidentOpened,
            kind: Kind::Operator,
            text: "Out of sync.",
            at: T0,
        };
        assert_eq!(
            record_statement(store, &opened, &hooks)
                .await
                .expect("recorded")
                .notifications,
            2
        );
        let first = claim(store, T0, 60, 1).await.expect("a claim");
        assert_eq!(first.len(), 1, "as many as asked");
        let second = claim(store, T0, 60, 10).await.expect("a claim");
        assert_eq!(second.len(), 1, "the other one: the first is leased");
        assert!(
            claim(store, T0 + 59, 60, 10)
                .await
                .expect("a claim")
                .is_empty(),
            "both leased"
        );
        retry(store, &first[0], T0 + 100).await.expect("put back");
        finish(store, &second[0]).await.expect("finished");
        assert!(
            claim(store, T0 + 99, 60, 10)
                .await
                .expect("a claim")
                .is_empty(),
            "not before next_at"
        );
        let again = claim(store, T0 + 100, 60, 10).await.expect("a claim");
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].attempts, &again[0].recipient),
            (1, &first[0].recipient)
        );
        assert_eq!(depth(store).await.ok(), Some((1, Some(T0))));
    }
}
