//! The registry of probe kinds. Each kind's own file declares a [`KindDef`]:
//! its name, main operation, shipped probe file, validation rules, how many
//! accounts it needs and its steps. The table in `probe/mod.rs`
//! ([`probe_kinds!`]) lists every kind once; the kinds' names, the shipped
//! probes and the tests' lists of kinds all derive from it.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, DeserializeSeed, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::ProbeKind;
use super::context::Steps;
use super::spec::{ProbeSpec, SpecError};
use crate::outcome::Operation;

/// What a probe kind's file declares about it (its `KIND` constant).
pub(super) struct KindDef {
    /// The kind's name in probe files; its shipped probe is named after it
    /// (**contract**).
    pub(crate) name: &'static str,
    /// The operation the kind is about: a run cut off by `run_timeout` is
    /// reported as a `timeout` on it.
    pub(crate) main_operation: Operation,
    /// The text of the shipped probe file, `probes/<name>.yaml` (built into
    /// the binary with `include_str!`).
    pub(crate) shipped: &'static str,
    /// The kind's own rules, checked after the common ones of
    /// [`ProbeSpec::validate`].
    pub(crate) validate: fn(&ProbeSpec) -> Result<(), SpecError>,
    /// How many accounts a probe of the spec acts as.
    pub(crate) accounts_needed: fn(&ProbeSpec) -> usize,
    /// Message deliveries one healthy run of the spec waits for (its
    /// outcome's `messages_expected`).
    pub(crate) messages_expected: fn(&ProbeSpec) -> u64,
    /// The operation on which the kind reports a message that did not
    /// arrive; `None` for kinds that send no messages.
    pub(crate) delivery_operation: Option<Operation>,
    /// Whether each run creates a fresh group (emptied by `cleanup`), rather
    /// than keeping one between healthy runs.
    pub(crate) fresh_group_per_run: bool,
    /// A fresh instance of the kind's steps, for one probe.
    pub(crate) steps: fn() -> Box<dyn Steps>,
    /// What the public status page calls the feature the kind checks, in
    /// words its users know (the default of `public.features`).
    pub(crate) public: PublicWords,
}

/// A feature of the chat service as its users know it: a name, and one line
/// saying what works when it is operational.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublicWords {
    /// The feature's name (`Leaving groups`).
    pub(crate) name: &'static str,
    /// One line saying what it means.
    pub(crate) description: &'static str,
}

/// Declares the registry of probe kinds: the [`ProbeKind`] enum, its `ALL`
/// list and the [`KindDef`] of each, one line a kind: `Variant => module`,
/// where `module::KIND` is the kind's definition.
macro_rules! probe_kinds {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)+) => {
        /// The kinds of probe (**contract** names: shipped probes are named
        /// after them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProbeKind {
            $($(#[$doc])* $variant,)+
        }

        impl ProbeKind {
            /// Every kind, in registry order.
            pub const ALL: &'static [ProbeKind] = &[$(ProbeKind::$variant,)+];

            /// Every kind's name, in registry order.
            const NAMES: &'static [&'static str] = &[$($module::KIND.name,)+];

            /// What the kind's file declares about it.
            fn def(self) -> &'static KindDef {
                match self {
                    $(ProbeKind::$variant => &$module::KIND,)+
                }
            }
        }
    };
}

/// The rule of kinds with no rules of their own.
pub(super) fn no_rules(_spec: &ProbeSpec) -> Result<(), SpecError> {
    Ok(())
}

/// One account per group member.
pub(super) fn one_per_member(spec: &ProbeSpec) -> usize {
    spec.group_size
}

/// For kinds that send no messages.
pub(super) fn no_messages(_spec: &ProbeSpec) -> u64 {
    0
}

impl ProbeKind {
    /// The kind's name as written in probe files.
    pub fn as_str(self) -> &'static str {
        self.def().name
    }

    /// The kind named `name` in probe files.
    pub(crate) fn from_name(name: &str) -> Option<ProbeKind> {
        ProbeKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
    }

    /// The operation a whole-run timeout is reported on: the one the kind is about.
    pub fn main_operation(self) -> Operation {
        self.def().main_operation
    }

    /// Where the kind's shipped probe file lives, relative to the repository:
    /// `probes/<name>.yaml`.
    pub fn shipped_path(self) -> PathBuf {
        PathBuf::from(format!("probes/{}.yaml", self.as_str()))
    }

    /// The text of the kind's shipped probe file, as built into the binary.
    pub fn shipped_text(self) -> &'static str {
        self.def().shipped
    }

    /// The kind's own validation rules.
    pub(super) fn validate(self, spec: &ProbeSpec) -> Result<(), SpecError> {
        (self.def().validate)(spec)
    }

    /// How many accounts a probe of `spec` (of this kind) acts as.
    pub(super) fn accounts_needed(self, spec: &ProbeSpec) -> usize {
        (self.def().accounts_needed)(spec)
    }

    /// Message deliveries one healthy run of `spec` (of this kind) waits for.
    pub(super) fn messages_expected(self, spec: &ProbeSpec) -> u64 {
        (self.def().messages_expected)(spec)
    }

    /// The operation on which the kind reports a message that did not
    /// arrive; `None` for kinds that send no messages.
    pub fn delivery_operation(self) -> Option<Operation> {
        self.def().delivery_operation
    }

    /// Whether each run of the kind creates a fresh group, emptied by `cleanup`.
    pub fn fresh_group_per_run(self) -> bool {
        self.def().fresh_group_per_run
    }

    /// What the public status page calls the feature the kind checks, unless
    /// the status page's config names it otherwise.
    pub(crate) fn public_words(self) -> PublicWords {
        self.def().public
    }

    /// A fresh instance of the kind's steps.
    pub(super) fn steps(self) -> Box<dyn Steps> {
        (self.def().steps)()
    }
}

/// Reads a kind by name, as a derived unit enum would: an unknown name is
/// "unknown variant `x`, expected one of ..." with every kind's name.
impl<'de> Deserialize<'de> for ProbeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProbeKind, D::Error> {
        deserializer.deserialize_enum("ProbeKind", ProbeKind::NAMES, KindVisitor)
    }
}

/// Visits a kind written as a unit variant.
struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = ProbeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a probe kind")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<ProbeKind, A::Error> {
        let (kind, variant) = data.variant_seed(KindName)?;
        variant.unit_variant()?;
        Ok(kind)
    }
}

/// Reads the name of a kind.
struct KindName;

impl<'de> DeserializeSeed<'de> for KindName {
    type Value = ProbeKind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ProbeKind, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KindName {
    type Value = ProbeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a probe kind's name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ProbeKind, E> {
        ProbeKind::from_name(name).ok_or_else(|| E::unknown_variant(name, ProbeKind::NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn spec(kind: ProbeKind) -> ProbeSpec {
        ProbeSpec {
            name: kind.as_str().to_string(),
            kind,
            interval: Duration::from_secs(1),
            step_timeout: Duration::from_secs(1),
            delivery_deadline: Duration::from_secs(1),
            latency_objective: Duration::from_secs(1),
            group_size: 3,
            devices_per_account: 2,
            messages: 3,
        }
    }

    #[test]
    fn every_kind_reads_back_from_its_name_and_ships_a_probe_of_itself() {
        for &kind in ProbeKind::ALL {
            let text = format!("name: p\nkind: {}\n", kind.as_str());
            let read: ProbeSpec = crate::yaml::parse(Path::new("p.yaml"), &text).unwrap();
            assert_eq!(read.kind, kind);
            let shipped: ProbeSpec =
                crate::yaml::parse(&kind.shipped_path(), kind.shipped_text()).unwrap();
            assert_eq!((shipped.kind, shipped.name.as_str()), (kind, kind.as_str()));
        }
    }

    #[test]
    fn an_unknown_kind_names_every_kind() {
        let text = "name: p\nkind: group_mesage\n";
        let errors = crate::yaml::parse::<ProbeSpec>(Path::new("p.yaml"), text).unwrap_err();
        let err = &errors.0[0];
        let names: Vec<String> = ProbeKind::ALL
            .iter()
            .map(|kind| format!("`{}`", kind.as_str()))
            .collect();
        let expected = format!(
            "unknown variant `group_mesage`, expected one of {}",
            names.join(", ")
        );
        assert!(err.message.contains(&expected), "{err}");
        assert_eq!((err.line, err.field.as_deref()), (Some(2), Some("kind")));
    }

    #[test]
    fn kinds_count_the_deliveries_a_healthy_run_waits_for() {
        let expected = |kind: ProbeKind| kind.messages_expected(&spec(kind));
        // 3 messages to 2 other members with 2 devices each.
        assert_eq!(expected(ProbeKind::GroupMessage), 12);
        // 1 message to the sibling device and 2 others' 2 devices, 1 to both own devices.
        assert_eq!(expected(ProbeKind::DeviceSync), 7);
        // 1 message to the added member's 2 devices.
        assert_eq!(expected(ProbeKind::AddMember), 2);
        assert_eq!(expected(ProbeKind::LeaveGroup), 0);
        assert_eq!(expected(ProbeKind::EditSettings), 0);
    }

    /// A kind reports lost messages on some operation exactly when a healthy
    /// run of it waits for deliveries.
    #[test]
    fn kinds_that_wait_for_deliveries_name_where_a_lost_one_is_reported() {
        for &kind in ProbeKind::ALL {
            let waits = kind.messages_expected(&spec(kind)) > 0;
            assert_eq!(kind.delivery_operation().is_some(), waits, "{kind:?}");
        }
    }
}
