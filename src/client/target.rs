//! From a configured target to its service client: the [`TargetProtocol`]
//! each client implements for its own config fields, and the
//! `protocols!` macro that turns the one list of protocols (in
//! `client/mod.rs`) into [`super::ProtocolConfig`].

use std::sync::Arc;
use std::time::Duration;

use super::ChatService;

/// What every protocol's client is built with besides its own fields: the
/// target's shared fields that concern the connection, and the agent's region.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The agent's region (sent with every request).
    pub(crate) region: &'a str,
    /// Longest wait for one request or push connection attempt.
    pub(crate) request_timeout: Duration,
}

/// Why a client could not be built from its config.
pub(crate) type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// A protocol's own fields of a target: a struct in the protocol's client
/// module, read from the target's map besides the shared fields.
///
/// It derives `Deserialize` (with `#[serde(deny_unknown_fields)]`), `Debug`,
/// `Clone`, `PartialEq` and `Eq`, and must not name a shared field (`name`,
/// `request_timeout`, `accounts`).
pub(crate) trait TargetProtocol {
    /// The `kind:` naming this protocol.
    const KIND: &'static str;

    /// The service client for a target whose protocol fields are `self`.
    fn build(&self, reach: Reach<'_>) -> Result<Arc<dyn ChatService>, SetupError>;
}

/// Defines `ProtocolConfig`, one variant a protocol (`Variant(OptionsType)`,
/// where the type implements [`TargetProtocol`]), with the list of kinds, how
/// a kind's fields are read and how its client is built.
macro_rules! protocols {
    ($($(#[$doc:meta])* $variant:ident($options:ty),)+) => {
        /// The protocol a target's `kind` names, with that protocol's own fields.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum ProtocolConfig {
            $($(#[$doc])* $variant($options),)+
        }

        impl ProtocolConfig {
            /// Every `kind` a target may name.
            pub const KINDS: &'static [&'static str] =
                &[$(<$options as $crate::client::TargetProtocol>::KIND),+];

            /// Reads the fields of the protocol `kind` names from `fields`.
            pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                fields: D,
            ) -> Result<Self, D::Error> {
                $(if kind == <$options as $crate::client::TargetProtocol>::KIND {
                    return <$options as serde::Deserialize>::deserialize(fields)
                        .map(ProtocolConfig::$variant);
                })+
                Err(serde::de::Error::unknown_variant(kind, Self::KINDS))
            }

            /// The service client of a target of this protocol.
            pub fn build(
                &self,
                reach: $crate::client::Reach<'_>,
            ) -> Result<std::sync::Arc<dyn $crate::client::ChatService>, $crate::client::SetupError> {
                match self {
                    $(ProtocolConfig::$variant(options) => {
                        $crate::client::TargetProtocol::build(options, reach)
                    })+
                }
            }
        }
    };
}

pub(super) use protocols;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::ProtocolConfig;
    use crate::client::matrix::MatrixTarget;
    use crate::client::mock::MockTarget;
    use crate::client::xmpp::{Transport, XmppTarget};
    use crate::yaml::values::{HttpUrl, PlainHttpUrl};

    #[test]
    fn each_protocol_builds_its_client() {
        crate::client::init_tls();
        let protocols = [
            ProtocolConfig::Mock(MockTarget {
                url: PlainHttpUrl("http://127.0.0.1:1".into()),
            }),
            ProtocolConfig::Matrix(MatrixTarget {
                homeserver: HttpUrl("http://127.0.0.1:1".into()),
                register: false,
            }),
            ProtocolConfig::Xmpp(XmppTarget {
                server: "127.0.0.1:1".into(),
                domain: "localhost".into(),
                muc_service: "conference.localhost".into(),
                register: false,
                tls: Transport::Plain,
            }),
        ];
        let reach = Reach {
            region: "eu-west",
            request_timeout: Duration::from_secs(1),
        };
        for protocol in protocols {
            let built = protocol.build(reach);
            assert!(built.is_ok(), "{protocol:?}: {:?}", built.err());
        }
    }
}
