//! The mails: a confirmation (its link, and nothing else until it is
//! followed) and a notification (a statement, the page's link). Every mail
//! carries `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058
//! one-click), an unsubscribe and a manage link in its text, all starting
//! with `notify.base_url` and each with its HMAC token, and a `Message-ID`
//! made of (subscriber, subject, event), so a mail sent again after a crash
//! is recognisably the same mail.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};

use super::config::Mailbox;
use super::outbox::Statement;
use super::subscriptions::Subscriber;
use super::tokens::{Purpose, Tokens};
use crate::metrics::Event;
use crate::status::Timestamp;

/// What every mail shares: where links point, who it is from, the page's title.
#[derive(Debug, Clone)]
pub(crate) struct Letterhead {
    /// `notify.base_url`, no trailing `/`.
    pub(crate) base_url: String,
    /// `smtp.from`.
    pub(crate) from: Mailbox,
    /// The page's title.
    pub(crate) title: String,
}

/// Why a mail could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building a mail: {0}")]
pub(crate) struct BuildError(String);

impl Letterhead {
    /// The domain `Message-ID`s end in: the base URL's host.
    fn domain(&self) -> String {
        reqwest::Url::parse(&self.base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_else(|| "chatprobe.invalid".to_string())
    }

    /// `BASE/PATH?token=T` for `purpose`.
    fn link(&self, tokens: &Tokens, purpose: Purpose, subscriber: &Subscriber) -> String {
        let path = match purpose {
            Purpose::Confirm => "confirm",
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Manage => "manage",
        };
        let token = tokens.make(purpose, subscriber.id, &subscriber.email);
        format!("{}/{path}?token={token}", self.base_url)
    }

    /// The confirmation mail to `subscriber`, asked for at `asked_at`.
    pub(crate) fn confirmation(
        &self,
        tokens: &Tokens,
        subscriber: &Subscriber,
        asked_at: i64,
    ) -> Result<Message, BuildError> {
        let confirm = self.link(tokens, Purpose::Confirm, subscriber);
        let text = format!(
            "Someone, hopefully you, asked {title} to mail this address about problems with the \
             service.\n\nTo confirm, open this link within 24 hours:\n\n{confirm}\n\nIf it was not \
             you, ignore this mail: without a confirmation nothing more is ever sent here, and \
             the address is forgotten after 24 hours.\n",
            title = self.title
        );
        let subject = format!("Confirm your subscription to {}", self.title);
        self.mail(
            tokens,
            subscriber,
            (asked_at, Event::Confirm),
            &subject,
            text,
        )
    }

    /// The notification of `statement` to `subscriber`.
    pub(crate) fn notification(
        &self,
        tokens: &Tokens,
        subscriber: &Subscriber,
        statement: &Statement,
    ) -> Result<Message, BuildError> {
        let headline = match statement.event {
            Event::IncidentResolved => "back online",
            Event::IncidentOpened => "a problem started",
            Event::Statement | Event::Confirm => "an update",
        };
        let subject = format!("{}: {headline}", self.title);
        let at = u64::try_from(statement.at).map(Timestamp::from_unix_seconds);
        let when = at.map(Timestamp::rfc3339).unwrap_or_default();
        let text = format!(
            "{text}\n\n({when})\n\nThe status page: {base}/\n",
            text = statement.text,
            base = self.base_url
        );
        self.mail(
            tokens,
            subscriber,
            (statement.id, statement.event),
            &subject,
            text,
        )
    }

    /// A mail to `subscriber` about `(subject_id, event)` with `subject`
    /// and `text`, the unsubscribe and manage links appended.
    fn mail(
        &self,
        tokens: &Tokens,
        subscriber: &Subscriber,
        (subject_id, event): (i64, Event),
        subject: &str,
        text: String,
    ) -> Result<Message, BuildError> {
        let unsubscribe = self.link(tokens, Purpose::Unsubscribe, subscriber);
        let manage = self.link(tokens, Purpose::Manage, subscriber);
        let body =
            format!("{text}\n-- \nChoose what you hear of: {manage}\nUnsubscribe: {unsubscribe}\n");
        let to = subscriber
            .email
            .parse::<lettre::message::Mailbox>()
            .map_err(|error| {
                BuildError(format!(
                    "the address of subscriber {}: {error}",
                    subscriber.id
                ))
            })?;
        let message_id = format!(
            "<{:016x}.{subject_id:x}.{}@{}>",
            subscriber.id,
            event.as_str(),
            self.domain()
        );
        Message::builder()
            .from(self.from.0.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id))
            .raw_header(raw("List-Unsubscribe", format!("<{unsubscribe}>")))
            .raw_header(raw(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(raw("Auto-Submitted", "auto-generated".into()))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|error| BuildError(error.to_string()))
    }
}

/// A header of `name` (ASCII) holding `value`.
fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::choices::Choices;
    use crate::notify::outbox::Kind;

    fn letterhead() -> Letterhead {
        Letterhead {
            base_url: "https://status.example".into(),
            from: Mailbox("Status <status@example.com>".parse().expect("an address")),
            title: "Example status".into(),
        }
    }

    fn subscriber() -> Subscriber {
        Subscriber {
            id: 0x2a,
            email: "user@example.org".into(),
            choices: Choices::new(&[], &[]).expect("defaults"),
            confirmed_at: Some(1),
            created_at: 1,
        }
    }

    /// The mail as sent, its folded headers and quoted-printable body undone.
    fn formatted(message: &Message) -> String {
        let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let mut decoded = String::new();
        let mut rest = body.replace("=\r\n", "");
        while let Some(at) = rest.find('=') {
            decoded.push_str(&rest[..at]);
            let code = rest
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            decoded.push(code.map_or('=', char::from));
            rest = rest[at + if code.is_some() { 3 } else { 1 }..].to_string();
        }
        decoded.push_str(&rest);
        format!("{head}\r\n\r\n{decoded}")
    }

    #[test]
    fn a_notification_carries_one_click_unsubscribe_links_and_a_stable_message_id() {
        let tokens = Tokens::new(b"k".to_vec());
        let statement = Statement {
            id: 0x99,
            incident: "group_message@1".into(),
            probe: "group_message".into(),
            at: 1_700_000_000,
            kind: Kind::Resolved,
            event: Event::IncidentResolved,
            text: "Sending messages works again.".into(),
            incident_json: "{}".into(),
        };
        let mail = letterhead()
            .notification(&tokens, &subscriber(), &statement)
            .expect("a mail");
        let text = formatted(&mail);
        let unsubscribe = format!(
            "https://status.example/unsubscribe?token={}",
            tokens.make(Purpose::Unsubscribe, 0x2a, "user@example.org")
        );
        assert!(
            text.contains(&format!("List-Unsubscribe: <{unsubscribe}>")),
            "{text}"
        );
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <000000000000002a.99.incident_resolved@status.example>"),
            "{text}"
        );
        assert!(
            text.contains("https://status.example/manage?token="),
            "{text}"
        );
        assert!(text.contains("Sending messages works again."), "{text}");
        assert!(
            text.contains("Subject: Example status: back online"),
            "{text}"
        );
    }

    #[test]
    fn a_confirmation_links_to_confirm_and_can_be_unsubscribed_too() {
        let tokens = Tokens::new(b"k".to_vec());
        let mail = letterhead()
            .confirmation(&tokens, &subscriber(), 1_700_000_000)
            .expect("a mail");
        let text = formatted(&mail);
        assert!(
            text.contains("https://status.example/confirm?token="),
            "{text}"
        );
        assert!(
            text.contains("List-Unsubscribe: <https://status.example/unsubscribe?token="),
            "{text}"
        );
        assert!(text.contains(".6553f100.confirm@status.example>"), "{text}");
    }
}
