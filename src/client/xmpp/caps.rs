//! What the client tells the server it supports (XEP-0115 entity
//! capabilities): among it `urn:xmpp:bookmarks:1+notify`, which is how the
//! server knows to send each device the account's bookmark changes.

use xmpp_parsers::caps::{self, Caps};
use xmpp_parsers::disco::{DiscoInfoResult, Identity};
use xmpp_parsers::hashes::Algo;
use xmpp_parsers::minidom::Element;

use super::stanzas::{NS_BOOKMARKS, NS_DISCO_INFO, NS_MUC, NS_PING};

/// The caps node naming this client.
const NODE: &str = "https://github.com/chatprobe/chatprobe";

/// This client's disco#info.
fn info(node: Option<&str>) -> DiscoInfoResult {
    let features = [
        NS_DISCO_INFO.to_owned(),
        NS_MUC.to_owned(),
        NS_PING.to_owned(),
        NS_BOOKMARKS.to_owned(),
        format!("{NS_BOOKMARKS}+notify"),
    ];
    DiscoInfoResult {
        node: node.map(str::to_owned),
        identities: vec![Identity::new("client", "bot", "en", "chatprobe")],
        features: features.into_iter().collect(),
        extensions: Vec::new(),
    }
}

/// The answer to a disco#info request (for `node`, when the server asks
/// about the caps node).
pub(super) fn disco_answer(node: Option<&str>) -> Element {
    info(node).into()
}

/// The `<c/>` element every announced presence carries.
pub(super) fn presence_caps() -> Option<Element> {
    let hash = caps::hash_caps(&caps::compute_disco(&info(None)), Algo::Sha_1).ok()?;
    Some(Caps::new(NODE, hash).into())
}
