//! The XML the client sends and reads: MUC joins and forms, affiliations,
//! XEP-0402 bookmarks, MAM queries, disco, and error stanzas as
//! [`ClientError`]s. Payloads are built as plain elements (xmpp-parsers has
//! no typed `muc#owner` / `muc#admin` forms).

use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;
use xmpp_parsers::stanza_error::{DefinedCondition, StanzaError};

use crate::client::{ClientError, GroupSettings};

/// XEP-0045 namespaces.
pub(super) const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub(super) const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0402 bookmarks node (and namespace).
pub(super) const NS_BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
pub(super) const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub(super) const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const NS_DATA: &str = "jabber:x:data";
/// XEP-0313 message archive management.
pub(super) const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0359 unique and stable stanza ids.
pub(super) const NS_SID: &str = "urn:xmpp:sid:0";
pub(super) const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub(super) const NS_PING: &str = "urn:xmpp:ping";
pub(super) const NS_REGISTER: &str = "jabber:iq:register";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// The `jabber:client` namespace of stanzas inside other elements.
const NS_CLIENT: &str = "jabber:client";

/// An element `name` in `ns` with `attrs` and `children`.
pub(super) fn element(
    name: &str,
    ns: &str,
    attrs: &[(&'static str, &str)],
    children: impl IntoIterator<Item = Element>,
) -> Element {
    let mut builder = Element::builder(name, ns);
    for (key, value) in attrs {
        let key = NcName::try_from(*key).expect("attribute names are literal NCNames");
        builder = builder.attr(key, *value);
    }
    builder.append_all(children).build()
}

/// An element holding only `text`.
fn text_element(name: &str, ns: &str, text: &str) -> Element {
    let mut element = element(name, ns, &[], []);
    element.append_text(text);
    element
}

/// The `<x xmlns='…muc'/>` of a join, asking for no history (what a device
/// missed it reads by catch-up sync, not as pushed history).
pub(super) fn muc_join() -> Element {
    let history = element("history", NS_MUC, &[("maxstanzas", "0")], []);
    element("x", NS_MUC, &[], [history])
}

/// A submitted data form of `form_type` with `fields` (name, value).
fn submitted_form(form_type: &str, fields: &[(&str, &str)]) -> Element {
    let field = |var: &str, value: &str| {
        let value = text_element("value", NS_DATA, value);
        element("field", NS_DATA, &[("var", var)], [value])
    };
    let mut all = vec![field("FORM_TYPE", form_type)];
    all.extend(fields.iter().map(|(var, value)| field(var, value)));
    element("x", NS_DATA, &[("type", "submit")], all)
}

/// The room configuration every probe room gets: members-only, persistent
/// (so affiliations outlive an empty moment), real JIDs visible to members
/// (they are the user ids), archived (for catch-up sync), not public.
pub(super) fn room_config(settings: &GroupSettings) -> Element {
    let form = submitted_form(
        "http://jabber.org/protocol/muc#roomconfig",
        &[
            ("muc#roomconfig_roomname", &settings.name),
            ("muc#roomconfig_roomdesc", &settings.notice),
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_publicroom", "0"),
            ("muc#roomconfig_whois", "anyone"),
            ("muc#roomconfig_enablearchiving", "1"),
        ],
    );
    element("query", NS_MUC_OWNER, &[], [form])
}

/// Destroys the room (its last owner leaving).
pub(super) fn destroy_room() -> Element {
    let destroy = element("destroy", NS_MUC_OWNER, &[], []);
    element("query", NS_MUC_OWNER, &[], [destroy])
}

/// Gives `user` (a bare JID) `affiliation`.
pub(super) fn set_affiliation(user: &str, affiliation: &str) -> Element {
    let attrs = [("jid", user), ("affiliation", affiliation)];
    let item = element("item", NS_MUC_ADMIN, &attrs, []);
    element("query", NS_MUC_ADMIN, &[], [item])
}

/// Asks for the list of users with `affiliation`.
pub(super) fn affiliation_list(affiliation: &str) -> Element {
    let item = element("item", NS_MUC_ADMIN, &[("affiliation", affiliation)], []);
    element("query", NS_MUC_ADMIN, &[], [item])
}

/// The bare JIDs of a `muc#admin` list answer.
pub(super) fn affiliated_users(answer: Option<&Element>) -> Vec<String> {
    answer
        .into_iter()
        .flat_map(Element::children)
        .filter_map(|item| item.attr("jid").map(str::to_owned))
        .collect()
}

/// A mediated invitation (XEP-0045 §7.8.2) of `user` to the room.
pub(super) fn invitation(user: &str) -> Element {
    let invite = element("invite", NS_MUC_USER, &[("to", user)], []);
    element("x", NS_MUC_USER, &[], [invite])
}

/// Publishes a bookmark (autojoin) of `room` with the account's `nick`,
/// private to the account, kept as long as the account has it.
pub(super) fn publish_bookmark(room: &str, nick: &str) -> Element {
    let conference = element(
        "conference",
        NS_BOOKMARKS,
        &[("autojoin", "true")],
        [text_element("nick", NS_BOOKMARKS, nick)],
    );
    let item = element("item", NS_PUBSUB, &[("id", room)], [conference]);
    let publish = element("publish", NS_PUBSUB, &[("node", NS_BOOKMARKS)], [item]);
    let options = submitted_form(
        "http://jabber.org/protocol/pubsub#publish-options",
        &[
            ("pubsub#persist_items", "true"),
            ("pubsub#max_items", "max"),
            ("pubsub#send_last_published_item", "never"),
            ("pubsub#access_model", "whitelist"),
        ],
    );
    let options = element("publish-options", NS_PUBSUB, &[], [options]);
    element("pubsub", NS_PUBSUB, &[], [publish, options])
}

/// Removes the bookmark of `room`, telling the account's other devices.
pub(super) fn retract_bookmark(room: &str) -> Element {
    let item = element("item", NS_PUBSUB, &[("id", room)], []);
    let retract = element(
        "retract",
        NS_PUBSUB,
        &[("node", NS_BOOKMARKS), ("notify", "true")],
        [item],
    );
    element("pubsub", NS_PUBSUB, &[], [retract])
}

/// Asks for every bookmark of the account.
pub(super) fn bookmark_items() -> Element {
    let items = element("items", NS_PUBSUB, &[("node", NS_BOOKMARKS)], []);
    element("pubsub", NS_PUBSUB, &[], [items])
}

/// The rooms of a bookmarks answer (or notification `items`) that autojoin.
pub(super) fn bookmarked_rooms(items: &Element) -> Vec<String> {
    items
        .children()
        .filter(|item| item.name() == "item")
        .filter(|item| {
            item.children()
                .find(|conference| conference.is("conference", NS_BOOKMARKS))
                .is_some_and(|conference| matches!(conference.attr("autojoin"), Some("true" | "1")))
        })
        .filter_map(|item| item.attr("id").map(str::to_owned))
        .collect()
}

/// A MAM query `query_id` of everything after archive id `after` (or since
/// `start`, an XEP-0082 date-time, when there is no id yet), `max` a page.
pub(super) fn mam_query(query_id: &str, after: MamFrom<'_>, max: usize) -> Element {
    let mut children = Vec::new();
    let mut rsm = vec![text_element("max", NS_RSM, &max.to_string())];
    match after {
        MamFrom::After(id) => rsm.push(text_element("after", NS_RSM, id)),
        MamFrom::Start(start) => children.push(submitted_form(NS_MAM, &[("start", start)])),
    }
    children.push(element("set", NS_RSM, &[], rsm));
    element("query", NS_MAM, &[("queryid", query_id)], children)
}

/// Where a MAM query starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum MamFrom<'a> {
    /// After this archive (stanza) id.
    After(&'a str),
    /// At this date-time.
    Start(&'a str),
}

/// What a MAM `<fin/>` says: whether the archive is exhausted, and the last id.
pub(super) fn mam_fin(answer: Option<&Element>) -> (bool, Option<String>) {
    let Some(fin) = answer.filter(|fin| fin.is("fin", NS_MAM)) else {
        return (true, None);
    };
    let complete = matches!(fin.attr("complete"), Some("true" | "1"));
    let last = fin
        .get_child("set", NS_RSM)
        .and_then(|set| set.get_child("last", NS_RSM))
        .map(Element::text);
    (complete, last)
}

/// A MAM result (`<result queryid id><forwarded><message/></forwarded>`):
/// its query id, archive id and the archived message element.
pub(super) fn mam_result(payload: &Element) -> Option<(&str, &str, &Element)> {
    if !payload.is("result", NS_MAM) {
        return None;
    }
    let message = payload
        .get_child("forwarded", NS_FORWARD)?
        .get_child("message", NS_CLIENT)?;
    Some((payload.attr("queryid")?, payload.attr("id")?, message))
}

/// The room's name and description from its `muc#roominfo` disco form.
pub(super) fn room_settings(info: Option<&Element>) -> GroupSettings {
    let mut settings = GroupSettings::default();
    let fields = info
        .into_iter()
        .flat_map(Element::children)
        .filter(|form| form.is("x", NS_DATA))
        .flat_map(Element::children);
    for field in fields {
        let value = || {
            field
                .get_child("value", NS_DATA)
                .map(Element::text)
                .unwrap_or_default()
        };
        match field.attr("var") {
            Some("muc#roomconfig_roomname") => settings.name = value(),
            Some("muc#roominfo_description") => settings.notice = value(),
            _ => {}
        }
    }
    settings
}

/// An empty `disco#info` query.
pub(super) fn disco_info() -> Element {
    element("query", NS_DISCO_INFO, &[], [])
}

/// In-band registration of `user` with `password`.
pub(super) fn register(user: &str, password: &str) -> Element {
    element(
        "query",
        NS_REGISTER,
        &[],
        [
            text_element("username", NS_REGISTER, user),
            text_element("password", NS_REGISTER, password),
        ],
    )
}

/// An error stanza as a client error: its condition as the HTTP status
/// XEP-0086 gives it (so a refusal is `ClientError::Status` like any
/// service's, 403 and 404 meaning "not a member"), with the condition and
/// text as the message.
pub(super) fn stanza_error(error: &StanzaError) -> ClientError {
    let condition = &error.defined_condition;
    let text = error
        .texts
        .values()
        .next()
        .map(|text| format!(": {text}"))
        .unwrap_or_default();
    ClientError::Status {
        status: legacy_code(condition),
        message: format!("{}{text}", condition_name(condition)),
    }
}

/// The XEP-0086 legacy error code of a condition.
fn legacy_code(condition: &DefinedCondition) -> u16 {
    use DefinedCondition::*;
    match condition {
        BadRequest | JidMalformed | UnexpectedRequest => 400,
        NotAuthorized => 401,
        Forbidden | PolicyViolation => 403,
        ItemNotFound | RecipientUnavailable | RemoteServerNotFound => 404,
        NotAllowed => 405,
        NotAcceptable => 406,
        RegistrationRequired | SubscriptionRequired => 407,
        Conflict => 409,
        Gone { .. } | Redirect { .. } => 302,
        FeatureNotImplemented => 501,
        ServiceUnavailable => 503,
        RemoteServerTimeout => 504,
        InternalServerError | ResourceConstraint | UndefinedCondition => 500,
    }
}

/// The condition's element name, e.g. `item-not-found`.
fn condition_name(condition: &DefinedCondition) -> String {
    let debug = format!("{condition:?}");
    let name = debug.split([' ', '{']).next().unwrap_or_default();
    let mut kebab = String::new();
    for (index, letter) in name.chars().enumerate() {
        if letter.is_ascii_uppercase() && index > 0 {
            kebab.push('-');
        }
        kebab.push(letter.to_ascii_lowercase());
    }
    kebab
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::stanza_error::ErrorType;

    #[test]
    fn error_stanzas_become_statuses_by_their_legacy_code() {
        let error = StanzaError::new(ErrorType::Auth, DefinedCondition::Forbidden, "en", "no");
        assert!(matches!(
            stanza_error(&error),
            ClientError::Status { status: 403, ref message } if message == "forbidden: no"
        ));
        let missing = StanzaError::new(ErrorType::Cancel, DefinedCondition::ItemNotFound, "en", "");
        assert!(matches!(
            stanza_error(&missing),
            ClientError::Status { status: 404, ref message } if message.starts_with("item-not-found")
        ));
    }

    #[test]
    fn room_settings_come_from_the_roominfo_form() {
        let answer: Element = r#"<query xmlns='http://jabber.org/protocol/disco#info'>
            <identity category='conference' type='text' name='ignored'/>
            <x xmlns='jabber:x:data' type='result'>
              <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roominfo</value></field>
              <field var='muc#roomconfig_roomname'><value>probe room</value></field>
              <field var='muc#roominfo_description'><value>a notice</value></field>
            </x></query>"#
            .parse()
            .expect("test XML parses");
        assert_eq!(
            room_settings(Some(&answer)),
            GroupSettings {
                name: "probe room".into(),
                notice: "a notice".into()
            }
        );
    }

    #[test]
    fn only_autojoin_bookmarks_are_rooms() {
        let items: Element = r#"<items xmlns='http://jabber.org/protocol/pubsub' node='urn:xmpp:bookmarks:1'>
              <item id='a@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item>
              <item id='b@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1'/></item>
            </items>"#
            .parse()
            .expect("test XML parses");
        assert_eq!(bookmarked_rooms(&items), vec!["a@conference.localhost"]);
    }
}
