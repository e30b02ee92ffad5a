//! The subscribers' queries on the store, each written once for both
//! databases: subscribing (double opt-in: the confirmation mail queued in
//! the outbox in the same transaction, at most one an hour per address),
//! confirming, changing the choices, unsubscribing, counting bounces, and
//! expiring what was never confirmed. A subscriber is its address and its
//! choices, nothing else about them.

use rand::Rng as _;

use super::choices::Choices;
use crate::metrics::{Channel, Event};
use crate::store::{Store, StoreError, column};

/// How long an unconfirmed subscription waits for its confirmation.
pub(crate) const UNCONFIRMED_FOR: i64 = 24 * 3600;
/// The least time between two confirmation mails to one address.
pub(crate) const CONFIRMATION_EVERY: i64 = 3600;
/// Permanent failures after which an address is not mailed again.
pub(crate) const BOUNCES_TO_STOP: i64 = 3;

/// A subscriber as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscriber {
    /// Its id (in tokens and `Message-ID`s, never enough alone).
    pub(crate) id: i64,
    /// Its address.
    pub(crate) email: String,
    /// What it asked to hear of.
    pub(crate) choices: Choices,
    /// When it confirmed, if it did.
    pub(crate) confirmed_at: Option<i64>,
    /// When it subscribed.
    pub(crate) created_at: i64,
}

/// What a subscription request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscribed {
    /// A confirmation mail is queued.
    ConfirmationQueued,
    /// The address waits for a confirmation sent within the hour: none more.
    AlreadyAsked,
    /// The address is confirmed already: nothing is sent.
    AlreadyConfirmed,
}

/// A new id: random, positive, never 0.
pub(crate) fn new_id() -> i64 {
    rand::rng().random_range(1..=i64::MAX)
}

/// Queues the confirmation mail of subscriber `id`, asked at `now`.
async fn queue_confirmation(
    store: &Store,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let insert = sqlx::query(
        "INSERT INTO outbox (channel, recipient, subject, event, created_at, attempts, next_at, \
         leased_until) VALUES ($1, $2, $3, $4, $3, 0, $3, 0) ON CONFLICT DO NOTHING",
    )
    .bind(Channel::Email.as_str())
    .bind(id.to_string())
    .bind(now)
    .bind(Event::Confirm.as_str());
    store
        .timed(
            "queueing a confirmation",
            insert.execute(&mut **transaction),
        )
        .await?;
    Ok(())
}

/// Subscribes `email` with `choices` at `now`: a new address gets a
/// confirmation mail; an unconfirmed one gets another (with its new
/// choices) only if the last is an hour old; a confirmed one nothing.
pub(crate) async fn subscribe(
    store: &Store,
    email: &str,
    choices: &Choices,
    now: i64,
) -> Result<Subscribed, StoreError> {
    let mut transaction = store
        .timed("starting a subscription", store.pool().begin())
        .await?;
    forget_expired(store, &mut transaction, now, Some(email)).await?;
    let id = new_id();
    let insert = sqlx::query(
        "INSERT INTO subscribers (id, email, features, events, created_at, confirmation_at, \
         confirmed_at, bounces, bounced_at) VALUES ($1, $2, $3, $4, $5, $5, NULL, 0, NULL) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(id)
    .bind(email)
    .bind(choices.features_column())
    .bind(choices.events_column())
    .bind(now);
    let inserted = store
        .timed("adding a subscriber", insert.execute(&mut *transaction))
        .await?;
    let outcome = if inserted.rows_affected() == 1 {
        queue_confirmation(store, &mut transaction, id, now).await?;
        Subscribed::ConfirmationQueued
    } else {
        ask_again(store, &mut transaction, email, choices, now).await?
    };
    store
        .timed("committing a subscription", transaction.commit())
        .await?;
    Ok(outcome)
}

/// Adds each of `emails` as a subscriber with `choices`, confirmed at
/// `now`, in one transaction (an address the store has is left as it is);
/// how many were added. Filling a store in bulk, as `chatprobe bench
/// notify` does: no confirmation mail is queued.
pub(crate) async fn add_confirmed(
    store: &Store,
    emails: &[String],
    choices: &Choices,
    now: i64,
) -> Result<u64, StoreError> {
    let mut transaction = store
        .timed("starting to add subscribers", store.pool().begin())
        .await?;
    let (features, events) = (choices.features_column(), choices.events_column());
    let mut added = 0;
    for email in emails {
        let insert = sqlx::query(
            "INSERT INTO subscribers (id, email, features, events, created_at, confirmation_at, \
             confirmed_at, bounces, bounced_at) VALUES ($1, $2, $3, $4, $5, $5, $5, 0, NULL) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(new_id())
        .bind(email)
        .bind(&features)
        .bind(&events)
        .bind(now);
        let done = store
            .timed("adding a subscriber", insert.execute(&mut *transaction))
            .await?;
        added += done.rows_affected();
    }
    store
        .timed("committing subscribers", transaction.commit())
        .await?;
    Ok(added)
}

/// [`subscribe`] for an address the store has.
async fn ask_again(
    store: &Store,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    email: &str,
    choices: &Choices,
    now: i64,
) -> Result<Subscribed, StoreError> {
    let what = "asking for a confirmation again";
    let update = sqlx::query(
        "UPDATE subscribers SET confirmation_at = $1, features = $2, events = $3 \
         WHERE email = $4 AND confirmed_at IS NULL AND confirmation_at <= $5 RETURNING id",
    )
    .bind(now)
    .bind(choices.features_column())
    .bind(choices.events_column())
    .bind(email)
    .bind(now - CONFIRMATION_EVERY);
    if let Some(row) = store
        .timed(what, update.fetch_optional(&mut **transaction))
        .await?
    {
        queue_confirmation(store, transaction, column(&row, 0, what)?, now).await?;
        return Ok(Subscribed::ConfirmationQueued);
    }
    let select = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM subscribers WHERE email = $1 AND confirmed_at IS NOT NULL",
    )
    .bind(email);
    let row = store
        .timed(what, select.fetch_one(&mut **transaction))
        .await?;
    let confirmed: i64 = column(&row, 0, what)?;
    Ok(match confirmed {
        0 => Subscribed::AlreadyAsked,
        _ => Subscribed::AlreadyConfirmed,
    })
}

/// Removes the unconfirmed subscribers (of `email` only, when given) older
/// than [`UNCONFIRMED_FOR`] at `now`, and their queued mail.
async fn forget_expired(
    store: &Store,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: i64,
    email: Option<&str>,
) -> Result<u64, StoreError> {
    let cutoff = now - UNCONFIRMED_FOR;
    let outbox = sqlx::query(
        "DELETE FROM outbox WHERE channel = 'email' AND recipient IN (SELECT CAST(id AS TEXT) \
         FROM subscribers WHERE confirmed_at IS NULL AND created_at < $1 AND ($2 = '' OR email = $2))",
    )
    .bind(cutoff)
    .bind(email.unwrap_or(""));
    store
        .timed("expiring confirmations", outbox.execute(&mut **transaction))
        .await?;
    let subscribers = sqlx::query(
        "DELETE FROM subscribers WHERE confirmed_at IS NULL AND created_at < $1 \
         AND ($2 = '' OR email = $2)",
    )
    .bind(cutoff)
    .bind(email.unwrap_or(""));
    let done = store
        .timed(
            "expiring subscribers",
            subscribers.execute(&mut **transaction),
        )
        .await?;
    Ok(done.rows_affected())
}

/// Removes every unconfirmed subscription past [`UNCONFIRMED_FOR`] at `now`.
pub(crate) async fn expire(store: &Store, now: i64) -> Result<u64, StoreError> {
    let mut transaction = store
        .timed("starting to expire", store.pool().begin())
        .await?;
    let expired = forget_expired(store, &mut transaction, now, None).await?;
    store
        .timed("committing expiry", transaction.commit())
        .await?;
    Ok(expired)
}

/// The subscriber `id`, if the store has it (and it has not bounced).
pub(crate) async fn find(store: &Store, id: i64) -> Result<Option<Subscriber>, StoreError> {
    let what = "reading a subscriber";
    let select = sqlx::query(
        "SELECT id, email, features, events, confirmed_at, created_at FROM subscribers \
         WHERE id = $1 AND bounced_at IS NULL",
    )
    .bind(id);
    let Some(row) = store
        .timed(what, select.fetch_optional(store.pool()))
        .await?
    else {
        return Ok(None);
    };
    let features: String = column(&row, 2, what)?;
    let events: String = column(&row, 3, what)?;
    Ok(Some(Subscriber {
        id: column(&row, 0, what)?,
        email: column(&row, 1, what)?,
        choices: Choices::from_columns(&features, &events).map_err(|message| {
            StoreError::Corrupt {
                what: "a subscriber's choices",
                message,
            }
        })?,
        confirmed_at: column(&row, 4, what)?,
        created_at: column(&row, 5, what)?,
    }))
}

/// Confirms subscriber `id` at `now`: `false` if it was confirmed already.
pub(crate) async fn confirm(store: &Store, id: i64, now: i64) -> Result<bool, StoreError> {
    let update = sqlx::query(
        "UPDATE subscribers SET confirmed_at = $1 WHERE id = $2 AND confirmed_at IS NULL",
    )
    .bind(now)
    .bind(id);
    let done = store
        .timed("confirming a subscriber", update.execute(store.pool()))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the choices of subscriber `id`.
pub(crate) async fn choose(store: &Store, id: i64, choices: &Choices) -> Result<(), StoreError> {
    let update = sqlx::query("UPDATE subscribers SET features = $1, events = $2 WHERE id = $3")
        .bind(choices.features_column())
        .bind(choices.events_column())
        .bind(id);
    store
        .timed("changing a subscription", update.execute(store.pool()))
        .await?;
    Ok(())
}

/// Removes subscriber `id` and every mail still queued for it.
pub(crate) async fn unsubscribe(store: &Store, id: i64) -> Result<(), StoreError> {
    let mut transaction = store
        .timed("starting to unsubscribe", store.pool().begin())
        .await?;
    drop_queued_mail(store, &mut transaction, id).await?;
    let delete = sqlx::query("DELETE FROM subscribers WHERE id = $1").bind(id);
    store
        .timed("unsubscribing", delete.execute(&mut *transaction))
        .await?;
    store
        .timed("committing an unsubscribe", transaction.commit())
        .await
}

/// Removes the mail queued for subscriber `id`.
async fn drop_queued_mail(
    store: &Store,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<(), StoreError> {
    let delete = sqlx::query("DELETE FROM outbox WHERE channel = 'email' AND recipient = $1")
        .bind(id.to_string());
    store
        .timed("dropping queued mail", delete.execute(&mut **transaction))
        .await?;
    Ok(())
}

/// Counts a permanent failure of mail to subscriber `id` at `now`; at the
/// [`BOUNCES_TO_STOP`]th the address is marked bounced, its queued mail
/// dropped, and it is mailed no more. Whether that happened now.
pub(crate) async fn bounce(store: &Store, id: i64, now: i64) -> Result<bool, StoreError> {
    let what = "counting a bounce";
    let mut transaction = store.timed(what, store.pool().begin()).await?;
    let update = sqlx::query(
        "UPDATE subscribers SET bounces = bounces + 1, bounced_at = CASE WHEN bounces + 1 >= $1 \
         THEN $2 ELSE bounced_at END WHERE id = $3 RETURNING bounces",
    )
    .bind(BOUNCES_TO_STOP)
    .bind(now)
    .bind(id);
    let row = store
        .timed(what, update.fetch_optional(&mut *transaction))
        .await?;
    let bounces: i64 = match row {
        Some(row) => column(&row, 0, what)?,
        None => 0,
    };
    let stopped = bounces == BOUNCES_TO_STOP;
    if stopped {
        drop_queued_mail(store, &mut transaction, id).await?;
    }
    store.timed(what, transaction.commit()).await?;
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::TestStore;
    use crate::notify::outbox;

    const T0: i64 = 1_765_000_000;

    fn choices(events: &[&str]) -> Choices {
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        Choices::new(&[], &events).expect("valid")
    }

    async fn queued_confirmations(store: &Store, now: i64) -> usize {
        let claimed = outbox::claim(store, now, 1, 100).await.expect("a claim");
        claimed.iter().filter(|q| q.event == Event::Confirm).count()
    }

    #[tokio::test]
    async fn subscribers_added_in_bulk_are_confirmed_and_queue_nothing() {
        let test = TestStore::open().await;
        let store = &test.store;
        let emails: Vec<String> = ["a@example.org", "b@example.org", "a@example.org"]
            .map(String::from)
            .to_vec();
        let added = add_confirmed(store, &emails, &choices(&["resolved"]), T0).await;
        assert_eq!(added.ok(), Some(2), "the repeated address once");
        assert_eq!(queued_confirmations(store, T0).await, 0);
        assert_eq!(
            subscribe(store, "b@example.org", &choices(&["opened"]), T0 + 1)
                .await
                .ok(),
            Some(Subscribed::AlreadyConfirmed)
        );
    }

    #[tokio::test]
    async fn one_confirmation_an_hour_none_when_confirmed_and_forgotten_after_a_day() {
        let test = TestStore::open().await;
        let store = &test.store;
        let resolved = choices(&["resolved"]);
        assert_eq!(
            subscribe(store, "a@example.org", &resolved, T0).await.ok(),
            Some(Subscribed::ConfirmationQueued)
        );
        assert_eq!(
            subscribe(store, "a@example.org", &resolved, T0 + 60)
                .await
                .ok(),
            Some(Subscribed::AlreadyAsked)
        );
        assert_eq!(queued_confirmations(store, T0 + 60).await, 1);
        assert_eq!(
            subscribe(
                store,
                "a@example.org",
                &choices(&["opened"]),
                T0 + CONFIRMATION_EVERY
            )
            .await
            .ok(),
            Some(Subscribed::ConfirmationQueued)
        );
        // The lease of the first claim ran out: both confirmations are there.
        assert_eq!(
            queued_confirmations(store, T0 + CONFIRMATION_EVERY + 2).await,
            2
        );
        assert_eq!(expire(store, T0 + UNCONFIRMED_FOR).await.ok(), Some(0));
        assert_eq!(expire(store, T0 + UNCONFIRMED_FOR + 1).await.ok(), Some(1));
        let (depth, _) = outbox::depth(store).await.expect("a depth");
        assert_eq!(depth, 0, "its mail went with it");

        assert_eq!(
            subscribe(store, "b@example.org", &resolved, T0).await.ok(),
            Some(Subscribed::ConfirmationQueued)
        );
        let id = outbox::claim(store, T0 + 10, 1, 10).await.expect("a claim")[0]
            .recipient
            .parse::<i64>()
            .expect("an id");
        let found = find(store, id).await.expect("a read").expect("b is there");
        assert_eq!(
            (found.email.as_str(), found.confirmed_at),
            ("b@example.org", None)
        );
        assert_eq!(confirm(store, id, T0 + 20).await.ok(), Some(true));
        assert_eq!(confirm(store, id, T0 + 30).await.ok(), Some(false));
        assert_eq!(
            subscribe(
                store,
                "b@example.org",
                &resolved,
                T0 + 2 * CONFIRMATION_EVERY
            )
            .await
            .ok(),
            Some(Subscribed::AlreadyConfirmed)
        );
        assert_eq!(
            expire(store, T0 + 2 * UNCONFIRMED_FOR).await.ok(),
            Some(0),
            "a confirmed address stays"
        );
    }

    #[tokio::test]
    async fn the_third_bounce_stops_mail_and_unsubscribing_forgets_the_address() {
        let test = TestStore::open().await;
        let store = &test.store;
        subscribe(store, "c@example.org", &choices(&[]), T0)
            .await
            .expect("subscribed");
        let id = outbox::claim(store, T0, 1, 10).await.expect("a claim")[0]
            .recipient
            .parse::<i64>()
            .expect("an id");
        confirm(store, id, T0).await.expect("confirmed");
        assert_eq!(bounce(store, id, T0).await.ok(), Some(false));
        assert_eq!(bounce(store, id, T0).await.ok(), Some(false));
        assert_eq!(bounce(store, id, T0).await.ok(), Some(true));
        assert_eq!(
            find(store, id).await.ok(),
            Some(None),
            "a bounced address is not mailed"
        );
        subscribe(store, "d@example.org", &choices(&[]), T0)
            .await
            .expect("subscribed");
        let claimed = outbox::claim(store, T0 + 5, 1, 10).await.expect("a claim");
        let d = claimed
            .iter()
            .find(|q| q.recipient != id.to_string())
            .expect("d's confirmation");
        let d_id: i64 = d.recipient.parse().expect("an id");
        unsubscribe(store, d_id).await.expect("unsubscribed");
        assert_eq!(find(store, d_id).await.ok(), Some(None));
        assert_eq!(
            outbox::depth(store).await.ok().map(|(depth, _)| depth),
            Some(0)
        );
    }
}
