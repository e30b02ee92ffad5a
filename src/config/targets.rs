//! The `targets:` list. A target is one flat map: `kind` first, then the
//! fields every target has ([`TargetConfig`]) mixed with the fields of the
//! protocol `kind` names (a struct in that protocol's client module, listed
//! in [`ProtocolConfig`]).
//!
//! The map is read in one pass, without buffering, so every error keeps its
//! line and field: the shared keys are taken out on the way and every other
//! key goes straight to the protocol's struct. (serde's internally tagged
//! enums and `#[serde(flatten)]` buffer the map and lose both, and `flatten`
//! cannot deny unknown fields.)

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

use super::defaults;
use crate::client::ProtocolConfig;
use crate::yaml::values::{Label, check_duration, check_label};

/// One service to probe: the fields every target has, and its protocol's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetConfig {
    /// The target's name (the `target` label).
    pub(crate) name: Label,
    /// Longest wait for one request or push connection attempt (a Matrix
    /// `/sync` long poll gets this on top of its wait).
    pub(crate) request_timeout: Duration,
    /// The probe accounts.
    pub(crate) accounts: AccountsConfig,
    /// The target's own labels (`labels:`), exported on `chatprobe_target_info`.
    pub(crate) labels: TargetLabels,
    /// The protocol `kind` names, with its own fields.
    pub(crate) protocol: ProtocolConfig,
}

impl TargetConfig {
    /// The target's name (the `target` label).
    pub(crate) fn name(&self) -> &str {
        &self.name.0
    }

    /// How the probe accounts on this target are named and log in.
    pub(crate) fn accounts(&self) -> &AccountsConfig {
        &self.accounts
    }

    /// Whether `other` is probed exactly as this target is (its labels may
    /// differ: they change `chatprobe_target_info`, not the probes).
    pub(crate) fn probed_alike(&self, other: &TargetConfig) -> bool {
        self.name == other.name
            && self.request_timeout == other.request_timeout
            && self.accounts == other.accounts
            && self.protocol == other.protocol
    }
}

impl<'de> Deserialize<'de> for TargetConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TargetVisitor)
    }
}

/// Reads `kind` first, then the rest of the map: the shared fields into
/// [`SharedFields`], the others into that kind's struct.
struct TargetVisitor;

impl<'de> Visitor<'de> for TargetVisitor {
    type Value = TargetConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a target map starting with `kind:`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TargetConfig, A::Error> {
        if map.next_key::<String>()?.as_deref() != Some("kind") {
            return Err(de::Error::custom("a target's first key must be `kind`"));
        }
        let kind = map.next_value_seed(KindSeed)?;
        let mut shared = SharedFields::default();
        let fields = ProtocolFields {
            map,
            shared: &mut shared,
        };
        let protocol = ProtocolConfig::deserialize_kind(kind, fields)?;
        shared.finish(protocol)
    }
}

/// Reads the value of `kind`: one of [`ProtocolConfig::KINDS`], checked while
/// it is read so a wrong kind is an error on its own line.
struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = &'static str;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KindSeed {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a target kind")
    }

    fn visit_str<E: de::Error>(self, kind: &str) -> Result<&'static str, E> {
        ProtocolConfig::KINDS
            .iter()
            .find(|known| **known == kind)
            .copied()
            .ok_or_else(|| E::unknown_variant(kind, ProtocolConfig::KINDS))
    }
}

/// The keys every target has, whatever its kind.
const SHARED_KEYS: [&str; 4] = ["name", "request_timeout", "accounts", "labels"];

/// The shared fields, as far as the map has been read.
#[derive(Default)]
struct SharedFields {
    name: Option<Label>,
    request_timeout: Option<humantime_serde::Serde<Duration>>,
    accounts: Option<AccountsConfig>,
    labels: Option<TargetLabels>,
}

impl SharedFields {
    /// Reads the value of `key` when it is a shared key; `false` when it is not one.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "name" => read_once(&mut self.name, "name", map)?,
            "request_timeout" => read_once(&mut self.request_timeout, "request_timeout", map)?,
            "accounts" => read_once(&mut self.accounts, "accounts", map)?,
            "labels" => read_once(&mut self.labels, "labels", map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The whole target, once its map has been read to its end.
    fn finish<E: de::Error>(self, protocol: ProtocolConfig) -> Result<TargetConfig, E> {
        let request_timeout = self.request_timeout.map_or_else(
            defaults::request_timeout,
            humantime_serde::Serde::into_inner,
        );
        check_duration(request_timeout)
            .map_err(|problem| E::custom(format!("`request_timeout` {problem}")))?;
        Ok(TargetConfig {
            name: self.name.ok_or_else(|| E::missing_field("name"))?,
            request_timeout,
            accounts: self.accounts.ok_or_else(|| E::missing_field("accounts"))?,
            labels: self.labels.unwrap_or_default(),
            protocol,
        })
    }
}

/// Reads the next value into `slot`, which must still be empty.
fn read_once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// The rest of a target's map, as its protocol's struct reads it: shared keys
/// are taken out into `shared` on the way.
struct ProtocolFields<'s, A> {
    map: A,
    shared: &'s mut SharedFields,
}

impl<'de, A: MapAccess<'de>> serde::Deserializer<'de> for ProtocolFields<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        self.deserialize_struct("", &[], visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(SplitMap {
            map: self.map,
            shared: self.shared,
            protocol_keys: fields,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A target's map without its shared keys.
struct SplitMap<'s, A> {
    map: A,
    shared: &'s mut SharedFields,
    protocol_keys: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SplitMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let known = KeySeed {
            protocol_keys: self.protocol_keys,
        };
        while let Some(key) = self.map.next_key_seed(known)? {
            if !self.shared.read(&key, &mut self.map)? {
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads a key of a target's map, which must be a shared key or one of the
/// protocol's; checked while the key is read, so the error is on its line.
#[derive(Clone, Copy)]
struct KeySeed {
    protocol_keys: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if SHARED_KEYS.contains(&key) || self.protocol_keys.contains(&key) {
            return Ok(key.to_string());
        }
        // The keys in the order a target is usually written.
        let (name, rest) = SHARED_KEYS.split_at(1);
        let expected: Vec<String> = name
            .iter()
            .chain(self.protocol_keys)
            .chain(rest)
            .map(|known| format!("`{known}`"))
            .collect();
        Err(E::custom(format!(
            "unknown field `{key}`, expected one of {}",
            expected.join(", ")
        )))
    }
}

/// Label names a target's `labels:` may not use: the agent's own labels,
/// and `job` and `instance`, which Prometheus sets on every scrape (with
/// `honor_labels: true` a target's own would replace them).
pub(crate) const RESERVED_LABELS: [&str; 8] = [
    "region",
    "target",
    "probe",
    "operation",
    "reason",
    "result",
    "job",
    "instance",
];

/// Most labels one target may carry.
pub(super) const MAX_TARGET_LABELS: usize = 16;

/// Longest value of a target label, in bytes.
pub(super) const MAX_LABEL_VALUE_BYTES: usize = 256;

/// A target's own labels (shard, cell, cluster, ...): Prometheus label names
/// that are not reserved, each with a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub(crate) struct TargetLabels(pub BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for TargetLabels {
    type Error = String;

    fn try_from(labels: BTreeMap<String, String>) -> Result<Self, String> {
        if labels.len() > MAX_TARGET_LABELS {
            return Err(format!(
                "{} labels; a target carries at most {MAX_TARGET_LABELS}",
                labels.len()
            ));
        }
        for (name, value) in &labels {
            check_label_name(name)?;
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return Err(format!(
                    "the value of `{name}` is longer than {MAX_LABEL_VALUE_BYTES} bytes"
                ));
            }
        }
        Ok(TargetLabels(labels))
    }
}

/// Checks that `name` is a Prometheus label name a target may set.
fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a Prometheus label name (a letter or `_`, then letters, digits, `_`)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "`{name}`: names starting with `__` are reserved to Prometheus"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "`{name}` is reserved (the agent or Prometheus sets it); reserved: {}",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// How probe accounts are named and which password they use. Account names
/// are `{prefix}-{region}-{probe}-{i}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAccounts")]
pub(crate) struct AccountsConfig {
    /// First part of every account name.
    pub(crate) prefix: String,
    /// The password every probe account uses (never logged).
    pub(crate) password: String,
}

impl fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("prefix", &self.prefix)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AccountsConfig {
    /// The name of account `index` of `probe` in `region`.
    pub(crate) fn account_name(&self, region: &str, probe: &str, index: usize) -> String {
        format!("{}-{region}-{probe}-{index}", self.prefix)
    }
}

/// `accounts:` as written: the password given literally, from an environment
/// variable, or from a file (exactly one of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default = "defaults::account_prefix")]
    prefix: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

impl TryFrom<RawAccounts> for AccountsConfig {
    type Error = String;

    fn try_from(raw: RawAccounts) -> Result<Self, String> {
        check_label(&raw.prefix).map_err(|err| format!("prefix {err}"))?;
        let password = match (raw.password, raw.password_env, raw.password_file) {
            (None, None, None) => {
                return Err("give one of password, password_env, password_file".into());
            }
            (Some(password), None, None) => password,
            (None, Some(var), None) => std::env::var(&var)
                .map_err(|_| format!("password_env: environment variable `{var}` is not set"))?,
            (None, None, Some(path)) => std::fs::read_to_string(&path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|err| format!("password_file: cannot read {}: {err}", path.display()))?,
            _ => return Err("give only one of password, password_env, password_file".into()),
        };
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        Ok(AccountsConfig {
            prefix: raw.prefix,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::AgentConfig;
    use crate::config::tests::{MOCK, PROBE, TempDir, config, first_error};

    #[test]
    fn matrix_target_reads_with_defaults() {
        let dir = TempDir::new("matrix");
        dir.write("probes/gm.yaml", PROBE);
        let matrix = "  - kind: matrix\n    name: synapse\n    homeserver: http://127.0.0.1:8008\n    accounts: {password: pw}\n";
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(matrix))).unwrap();
        let targets = loaded.targets.targets();
        let target = &targets[0];
        let ProtocolConfig::Matrix(protocol) = &target.protocol else {
            panic!("not a matrix target: {target:?}");
        };
        assert_eq!(protocol.homeserver.0, "http://127.0.0.1:8008");
        assert_eq!(target.request_timeout, Duration::from_secs(10));
        assert!(!protocol.register);
        assert_eq!(target.name(), "synapse");
        let typo = "  - kind: matrix\n    name: synapse\n    url: http://127.0.0.1:8008\n";
        let err = first_error(&dir, &config(typo));
        assert!(err.message.contains("url"), "{err}");
    }

    #[test]
    fn shared_and_protocol_fields_mix_in_any_order() {
        let dir = TempDir::new("order");
        dir.write("probes/gm.yaml", PROBE);
        let mixed = "  - kind: matrix\n    accounts: {password: pw}\n    register: true\n    request_timeout: 3s\n    homeserver: http://h\n    name: s\n";
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(mixed))).unwrap();
        let targets = loaded.targets.targets();
        let target = &targets[0];
        assert_eq!(
            (target.name(), target.request_timeout),
            ("s", Duration::from_secs(3))
        );
        let ProtocolConfig::Matrix(protocol) = &target.protocol else {
            panic!("not a matrix target: {target:?}");
        };
        assert!(protocol.register);
    }

    #[test]
    fn unknown_target_field_and_kind_are_rejected() {
        let dir = TempDir::new("kind");
        dir.write("probes/gm.yaml", PROBE);
        let typo = "  - kind: mock\n    name: mock\n    url: http://x\n    colour: red\n";
        let err = first_error(&dir, &config(typo));
        assert!(err.message.contains("colour"), "{err}");
        assert!(err.line.is_some(), "{err}");
        let kind = "  - kind: carrier-pigeon\n    name: mock\n    url: http://x\n";
        let err = first_error(&dir, &config(kind));
        assert!(err.message.contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn unknown_field_lists_shared_and_protocol_fields() {
        let dir = TempDir::new("expected");
        dir.write("probes/gm.yaml", PROBE);
        let typo = "  - kind: mock\n    name: mock\n    url: http://x\n    register: true\n";
        let err = first_error(&dir, &config(typo));
        assert_eq!(
            (err.field.as_deref(), err.line),
            (Some("targets[0].register"), Some(6)),
            "{err}"
        );
        assert!(
            err.message.ends_with(
                "unknown field `register`, expected one of `name`, `url`, `request_timeout`, `accounts`, `labels`"
            ),
            "{err}"
        );
    }

    #[test]
    fn shared_fields_are_required_once() {
        let dir = TempDir::new("shared");
        dir.write("probes/gm.yaml", PROBE);
        let twice = format!("{MOCK}    name: again\n");
        let err = first_error(&dir, &config(&twice));
        assert!(err.message.contains("duplicate field `name`"), "{err}");
        let unnamed = "  - kind: mock\n    url: http://x\n    accounts: {password: pw}\n";
        let err = first_error(&dir, &config(unnamed));
        assert!(err.message.contains("missing field `name`"), "{err}");
        assert_eq!(err.field.as_deref(), Some("targets[0]"), "{err}");
    }

    #[test]
    fn password_sources_are_exclusive() {
        let dir = TempDir::new("password");
        dir.write("probes/gm.yaml", PROBE);
        let both = "  - kind: mock\n    name: mock\n    url: http://x\n    accounts:\n      password: a\n      password_env: B\n";
        let err = first_error(&dir, &config(both));
        assert!(err.to_string().contains("only one of"), "{err}");
        assert_eq!(err.field.as_deref(), Some("targets[0].accounts"));
    }

    #[test]
    fn labels_are_prometheus_names_and_not_reserved() {
        let dir = TempDir::new("labels");
        dir.write("probes/gm.yaml", PROBE);
        let labelled = format!("{MOCK}    labels: {{shard: s-1, cell_2: \"eu 1\"}}\n");
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(&labelled))).unwrap();
        let labels = &loaded.targets.targets()[0].labels.0;
        assert_eq!(labels.get("shard").map(String::as_str), Some("s-1"));
        assert_eq!(labels.get("cell_2").map(String::as_str), Some("eu 1"));
        for (bad, expected) in [
            ("target", "`target` is reserved"),
            ("instance", "`instance` is reserved"),
            ("__shard", "reserved to Prometheus"),
            ("2shard", "not a Prometheus label name"),
            ("sh-ard", "not a Prometheus label name"),
        ] {
            let text = config(&format!("{MOCK}    labels: {{{bad}: x}}\n"));
            let err = first_error(&dir, &text);
            assert_eq!(err.field.as_deref(), Some("targets[0].labels"), "{err}");
            assert!(err.line.is_some(), "{err}");
            assert!(err.message.contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn target_files_are_found_relative_to_the_config_and_merged() {
        let dir = TempDir::new("target-files");
        dir.write("probes/gm.yaml", PROBE);
        std::fs::create_dir_all(dir.0.join("shards")).unwrap();
        let shard = "- kind: mock\n  name: shard-1\n  url: http://127.0.0.1:8081\n  accounts: {password: pw}\n";
        dir.write("shards/one.yaml", shard);
        let text = format!(
            "target_files: [\"shards/*.yaml\", \"none/*.yml\"]\n{}",
            config(MOCK)
        );
        let loaded = AgentConfig::load(&dir.write("a.yaml", &text)).unwrap();
        let names: Vec<String> = loaded
            .targets
            .targets()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        assert_eq!(names, ["mock", "shard-1"]);
        let only_files =
            "region: eu-west\ntargets: []\ntarget_files: [\"shards/*.yaml\"]\nprobes: [probes]\n";
        let loaded = AgentConfig::load(&dir.write("a.yaml", only_files)).unwrap();
        assert_eq!(loaded.targets.targets().len(), 1);
        let nothing = "region: eu-west\ntargets: []\nprobes: [probes]\n";
        let err = first_error(&dir, nothing);
        assert!(err.message.contains("at least one target"), "{err}");
        let bad_glob = format!("target_files: [\"shards/[\"]\n{}", config(MOCK));
        let err = first_error(&dir, &bad_glob);
        assert_eq!(err.field.as_deref(), Some("target_files[0]"), "{err}");
        let clash = shard.replace("shard-1", "mock");
        dir.write("shards/one.yaml", &clash);
        let err = first_error(&dir, &text);
        assert!(
            err.message.contains("two targets are named `mock`"),
            "{err}"
        );
        assert!(
            err.message.contains("a.yaml:5 (`targets[0].name`)"),
            "{err}"
        );
    }

    #[test]
    fn configuration_doc_names_every_kind() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md is readable");
        let row = doc
            .lines()
            .find(|line| line.starts_with("| `targets[].kind` |"))
            .expect("the config reference has a `targets[].kind` row");
        for kind in ProtocolConfig::KINDS {
            assert!(
                row.contains(&format!("`{kind}`")),
                "{kind} missing in {row}"
            );
        }
    }
}
