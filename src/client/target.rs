//! From a configured target to its service client: the [`TargetProtocol`]
//! each client implements for its own config fields, and the
//! `protocols!` macro that turns the one list of protocols (in
//! `client/mod.rs`) into [`super::ProtocolConfig`].

use std::sync::Arc;

use super::ChatService;
use crate::config::TargetConfig;

/// Why a client could not be built from its config.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// A protocol's own fields of a target: a struct in the protocol's client
/// module, read from the target's map besides the shared fields.
///
/// It derives `Deserialize` (with `#[serde(deny_unknown_fields)]`), `Debug`,
/// `Clone`, `PartialEq` and `Eq`, and must not name a shared field (`name`,
/// `request_timeout`, `accounts`).
pub trait TargetProtocol {
    /// The `kind:` naming this protocol.
    const KIND: &'static str;

    /// The service client for `target` (whose protocol fields are `self`),
    /// acting from `region`.
    fn build(
        &self,
        target: &TargetConfig,
        region: &str,
    ) -> Result<Arc<dyn ChatService>, SetupError>;
}

/// Why the service client of a target could not be built.
#[derive(Debug, thiserror::Error)]
#[error("target `{target}`")]
pub struct BuildError {
    /// The target's name.
    pub target: String,
    /// What went wrong.
    #[source]
    pub source: SetupError,
}

/// The service client for `target`, acting from `region`.
pub fn build_service(
    target: &TargetConfig,
    region: &str,
) -> Result<Arc<dyn ChatService>, BuildError> {
    target
        .protocol
        .build(target, region)
        .map_err(|source| BuildError {
            target: target.name().to_string(),
            source,
        })
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

            /// The service client for `target` (whose protocol this is), acting from `region`.
            fn build(
                &self,
                target: &$crate::config::TargetConfig,
                region: &str,
            ) -> Result<std::sync::Arc<dyn $crate::client::ChatService>, $crate::client::SetupError> {
                match self {
                    $(ProtocolConfig::$variant(options) => {
                        $crate::client::TargetProtocol::build(options, target, region)
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
    use crate::config::{AccountsConfig, HttpUrl, Label};

    fn target(protocol: ProtocolConfig) -> TargetConfig {
        TargetConfig {
            name: Label("t".into()),
            request_timeout: Duration::from_secs(1),
            accounts: AccountsConfig {
                prefix: "p".into(),
                password: "pw".into(),
            },
            protocol,
        }
    }

    #[test]
    fn build_service_builds_each_protocols_client() {
        crate::client::init_tls();
        let url = HttpUrl("http://127.0.0.1:1".into());
        let protocols = [
            ProtocolConfig::Mock(MockTarget { url: url.clone() }),
            ProtocolConfig::Matrix(MatrixTarget {
                homeserver: url,
                register: false,
            }),
        ];
        for protocol in protocols {
            let built = build_service(&target(protocol.clone()), "eu-west");
            assert!(built.is_ok(), "{protocol:?}: {:?}", built.err());
        }
    }
}
