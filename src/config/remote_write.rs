//! The `remote_write:` list: where an agent pushes its series with
//! Prometheus remote write, as Prometheus' own `remote_write:` is written.
//! Every value is checked while it is read (a URL, a header name, a token
//! file that cannot be read), so an error names the file, the line and the
//! field (`agent.yaml:12:7: field `remote_write[0].headers`: ...`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::yaml::values::{HttpUrl, Period, ScalarVisitor, checked_scalar};

/// `remote_write[].interval` unless given: how often series are sampled and sent.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// `remote_write[].queue.max_bytes` unless given: 64 MiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// `remote_write[].queue.max_samples_per_send` unless given.
pub(crate) const DEFAULT_MAX_SAMPLES_PER_SEND: usize = 2000;
/// `remote_write[].queue.max_age` unless given: one hour.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The smallest `queue.max_bytes` accepted: room for a few batches.
pub(crate) const MIN_MAX_BYTES: u64 = 64 * 1024;
/// The largest `queue.max_samples_per_send` accepted.
pub(crate) const MAX_SAMPLES_PER_SEND: usize = 100_000;

/// Headers an entry may not set: the agent sets them itself (the remote
/// write protocol's, the auth fields', HTTP's own).
pub(crate) const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-authorization",
    "transfer-encoding",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// One receiver the agent pushes to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRemoteWrite")]
pub(crate) struct RemoteWriteConfig {
    /// The receiver's push URL (`/api/v1/write`, `/api/v1/push`, `/api/v1/receive`).
    pub(crate) url: String,
    /// Extra headers on every push (`X-Scope-OrgID`, `THANOS-TENANT`).
    pub(crate) headers: BTreeMap<String, String>,
    /// How pushes authenticate.
    pub(crate) auth: Auth,
    /// The TLS settings.
    pub(crate) tls: TlsFiles,
    /// How often the agent's series are sampled and queued.
    pub(crate) interval: Duration,
    /// Labels added to every series that lacks them, over the defaults
    /// (see [`RemoteWriteConfig::external_labels`]); an empty value removes one.
    pub(crate) external_labels: BTreeMap<String, String>,
    /// The queue's bounds.
    pub(crate) queue: QueueConfig,
}

impl RemoteWriteConfig {
    /// The labels every pushed series gets unless it has its own: `job`
    /// `chatprobe`, `instance` and `region` the agent's `region` (so the
    /// shipped rules read a pushing agent as a scraped one), replaced or
    /// removed (an empty value) by `external_labels`.
    pub(crate) fn external_labels(&self, region: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("job".to_string(), "chatprobe".to_string()),
            ("instance".to_string(), region.to_string()),
            ("region".to_string(), region.to_string()),
        ]);
        labels.extend(self.external_labels.clone());
        labels.retain(|_, value| !value.is_empty());
        labels
    }
}

/// Where a push's credential comes from; read again before every push, so
/// a rotated file is picked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(Secret),
    /// HTTP basic authentication; the secret holds `USER:PASSWORD`.
    Basic(Secret),
}

/// A credential's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    /// A file holding it (a trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

/// The PEM files of an entry's TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// CA certificates that alone are trusted for the receiver (`tls_ca_file`).
    pub(crate) ca_file: Option<PathBuf>,
    /// The client certificate and its key, for mutual TLS.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

/// `queue:` of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueueConfig {
    /// Most bytes (encoded and compressed) queued; the oldest go first.
    #[serde(deserialize_with = "bytes_at_least_min")]
    pub(crate) max_bytes: u64,
    /// Most samples in one push.
    #[serde(deserialize_with = "samples_per_send")]
    pub(crate) max_samples_per_send: usize,
    /// Samples older than this are dropped unsent.
    #[serde(with = "period")]
    pub(crate) max_age: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_samples_per_send: DEFAULT_MAX_SAMPLES_PER_SEND,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

/// An entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteWrite {
    url: PushUrl,
    #[serde(default)]
    headers: BTreeMap<HeaderName, HeaderText>,
    bearer_token_file: Option<ReadableFile>,
    bearer_token_env: Option<SetVariable>,
    basic_auth_file: Option<ReadableFile>,
    basic_auth_env: Option<SetVariable>,
    tls_ca_file: Option<PemFile>,
    tls_cert_file: Option<PemFile>,
    tls_key_file: Option<PemFile>,
    #[serde(default = "default_interval")]
    interval: Period,
    #[serde(default)]
    external_labels: BTreeMap<LabelName, String>,
    #[serde(default)]
    queue: QueueConfig,
}

fn default_interval() -> Period {
    Period(DEFAULT_INTERVAL)
}

impl TryFrom<RawRemoteWrite> for RemoteWriteConfig {
    type Error = String;

    fn try_from(raw: RawRemoteWrite) -> Result<Self, String> {
        let auth = auth(&raw)?;
        let client = match (raw.tls_cert_file, raw.tls_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.0, key.0)),
            _ => return Err("give both tls_cert_file and tls_key_file, or neither".into()),
        };
        Ok(RemoteWriteConfig {
            url: raw.url.0,
            headers: raw.headers.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
            auth,
            tls: TlsFiles {
                ca_file: raw.tls_ca_file.map(|file| file.0),
                client,
            },
            interval: raw.interval.0,
            external_labels: raw
                .external_labels
                .into_iter()
                .map(|(name, value)| (name.0, value))
                .collect(),
            queue: raw.queue,
        })
    }
}

/// The index of the first entry whose URL an earlier entry has, and the
/// error saying so (each URL's series are the `url` label of the agent's
/// own metrics).
pub(super) fn duplicate_url(entries: &[RemoteWriteConfig]) -> Option<(usize, String)> {
    entries.iter().enumerate().find_map(|(index, entry)| {
        let first = entries.iter().position(|other| other.url == entry.url)?;
        (first != index).then(|| {
            (
                index,
                format!(
                    "`{}` is already remote_write[{first}]: one entry a URL",
                    entry.url
                ),
            )
        })
    })
}

/// The one credential of `raw`, checked.
fn auth(raw: &RawRemoteWrite) -> Result<Auth, String> {
    let file = |file: &ReadableFile| Secret::File(file.0.clone());
    let env = |variable: &SetVariable| Secret::Env(variable.0.clone());
    one_credential([
        raw.bearer_token_file
            .as_ref()
            .map(|f| Auth::Bearer(file(f))),
        raw.bearer_token_env.as_ref().map(|v| Auth::Bearer(env(v))),
        raw.basic_auth_file.as_ref().map(|f| Auth::Basic(file(f))),
        raw.basic_auth_env.as_ref().map(|v| Auth::Basic(env(v))),
    ])
}

/// The credential of whichever of `bearer_token_file`, `bearer_token_env`,
/// `basic_auth_file` and `basic_auth_env` is `given` (at most one may be),
/// checked: a basic-auth secret must hold `USER:PASSWORD`.
pub(crate) fn one_credential(given: [Option<Auth>; 4]) -> Result<Auth, String> {
    let mut given = given.into_iter().flatten();
    let Some(auth) = given.next() else {
        return Ok(Auth::None);
    };
    if given.next().is_some() {
        return Err(
            "give only one of bearer_token_file, bearer_token_env, basic_auth_file, basic_auth_env"
                .into(),
        );
    }
    if let Auth::Basic(secret) = &auth {
        let text = secret.read()?;
        if !text.contains(':') {
            return Err(format!("{} must hold `USER:PASSWORD`", secret.source()));
        }
    }
    Ok(auth)
}

impl Secret {
    /// The credential now (a trailing newline dropped); an error naming its
    /// source when it cannot be read or is empty.
    pub(crate) fn read(&self) -> Result<String, String> {
        let text = match self {
            Secret::File(path) => std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", self.source()))?,
            Secret::Env(name) => {
                std::env::var(name).map_err(|_| format!("{} is not set", self.source()))?
            }
        };
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            return Err(format!("{} is empty", self.source()));
        }
        Ok(text)
    }

    /// Where it comes from, for messages (`file /run/token`, `$TOKEN`).
    pub(crate) fn source(&self) -> String {
        match self {
            Secret::File(path) => format!("file {}", path.display()),
            Secret::Env(name) => format!("environment variable `{name}`"),
        }
    }
}

/// A push URL: `http://` or `https://`, with no credentials in it.
struct PushUrl(String);

impl TryFrom<String> for PushUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let HttpUrl(url) = HttpUrl::try_from(value)?;
        let parsed = reqwest::Url::parse(&url).map_err(|err| format!("`{url}`: {err}"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "`{url}` holds credentials; give them as basic_auth_file or basic_auth_env"
            ));
        }
        Ok(PushUrl(url))
    }
}

/// An HTTP header name an entry may set.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct HeaderName(String);

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        reqwest::header::HeaderName::from_bytes(value.as_bytes())
            .map_err(|_| format!("`{value}` is not an HTTP header name"))?;
        if RESERVED_HEADERS.contains(&value.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "header `{value}` is set by the agent (reserved: {})",
                RESERVED_HEADERS.join(", ")
            ));
        }
        Ok(HeaderName(value))
    }
}

/// An HTTP header value.
struct HeaderText(String);

impl TryFrom<String> for HeaderText {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| format!("`{value}` is not a valid header value (visible ASCII)"))?;
        Ok(HeaderText(value))
    }
}

/// A Prometheus label name (`job`, `instance`, `cluster`): a letter or `_`,
/// then letters, digits, `_`; not starting with `__`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct LabelName(String);

impl TryFrom<String> for LabelName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let mut chars = value.chars();
        let valid = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || value.starts_with("__") {
            return Err(format!(
                "`{value}` is not a label name an agent may add (a letter or `_`, then letters, digits, `_`; not `__...`)"
            ));
        }
        Ok(LabelName(value))
    }
}

/// A file that can be read now and is not empty (a token or `USER:PASSWORD`).
struct ReadableFile(PathBuf);

impl TryFrom<String> for ReadableFile {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let path = PathBuf::from(value);
        Secret::File(path.clone()).read()?;
        Ok(ReadableFile(path))
    }
}

/// An environment variable that is set now, and not empty.
struct SetVariable(String);

impl TryFrom<String> for SetVariable {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Secret::Env(value.clone()).read()?;
        Ok(SetVariable(value))
    }
}

/// A file of PEM blocks (certificates or a key) that can be read now.
struct PemFile(PathBuf);

impl TryFrom<String> for PemFile {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(&value).map_err(|err| format!("cannot read {value}: {err}"))?;
        if !text.contains("-----BEGIN ") {
            return Err(format!("{value} holds no PEM block (`-----BEGIN ...`)"));
        }
        Ok(PemFile(PathBuf::from(value)))
    }
}

checked_scalar!(
    PushUrl,
    HeaderName,
    HeaderText,
    LabelName,
    ReadableFile,
    SetVariable,
    PemFile
);

/// A byte count: a number, or one with a unit (`64MiB`, `512KiB`, `1GiB`, `10MB`).
fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a byte count (e.g. 67108864, 64MiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{other}`: a unit is one of B, KB, KiB, MB, MiB, GB, GiB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{value}` is too large"))
}

/// `queue.max_bytes`: a byte count of at least [`MIN_MAX_BYTES`].
fn bytes_at_least_min<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer
        .deserialize_any(ScalarVisitor::<MaxBytes>(std::marker::PhantomData))
        .map(|b| b.0)
}

/// `queue.max_samples_per_send`: 1 to [`MAX_SAMPLES_PER_SEND`].
fn samples_per_send<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    deserializer
        .deserialize_any(ScalarVisitor::<SamplesPerSend>(std::marker::PhantomData))
        .map(|n| n.0)
}

/// `queue.max_bytes` as read.
struct MaxBytes(u64);

impl TryFrom<String> for MaxBytes {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let bytes = parse_bytes(&value)?;
        if bytes < MIN_MAX_BYTES {
            return Err(format!("`{value}` must be at least 64KiB"));
        }
        Ok(MaxBytes(bytes))
    }
}

/// `queue.max_samples_per_send` as read.
struct SamplesPerSend(usize);

impl TryFrom<String> for SamplesPerSend {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.parse::<usize>() {
            Ok(count) if (1..=MAX_SAMPLES_PER_SEND).contains(&count) => Ok(SamplesPerSend(count)),
            _ => Err(format!(
                "`{value}` must be a whole number from 1 to {MAX_SAMPLES_PER_SEND}"
            )),
        }
    }
}

/// `queue.max_age` as read: a [`Period`].
mod period {
    use std::time::Duration;

    use serde::Deserialize;

    use crate::yaml::values::Period;

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        Period::deserialize(deserializer).map(|period| period.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::config::tests::{MOCK, PROBE, TempDir, config, first_error};

    fn with_remote_write(entry: &str) -> String {
        format!("{}remote_write:\n{entry}", config(MOCK))
    }

    #[test]
    fn an_entry_gets_the_defaults_and_its_labels() {
        let dir = TempDir::new("rw-defaults");
        dir.write("probes/gm.yaml", PROBE);
        let text = with_remote_write(
            "  - url: http://127.0.0.1:9090/api/v1/write\n    external_labels: {cluster: c1, instance: \"\"}\n",
        );
        let loaded = AgentConfig::load(&dir.write("a.yaml", &text)).unwrap();
        let entry = &loaded.remote_write[0];
        assert_eq!(entry.interval, DEFAULT_INTERVAL);
        assert_eq!(entry.queue, QueueConfig::default());
        assert_eq!(entry.auth, Auth::None);
        let labels = entry.external_labels("eu-west");
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("cluster", "c1"),
                ("job", "chatprobe"),
                ("region", "eu-west")
            ]
        );
    }

    #[test]
    fn queue_bounds_read_with_units() {
        let dir = TempDir::new("rw-queue");
        dir.write("probes/gm.yaml", PROBE);
        let text = with_remote_write(
            "  - url: https://mimir.example/api/v1/push\n    interval: 5s\n    queue: {max_bytes: 1MiB, max_samples_per_send: 500, max_age: 10m}\n",
        );
        let loaded = AgentConfig::load(&dir.write("a.yaml", &text)).unwrap();
        let queue = loaded.remote_write[0].queue;
        assert_eq!(queue.max_bytes, 1 << 20);
        assert_eq!(queue.max_samples_per_send, 500);
        assert_eq!(queue.max_age, Duration::from_secs(600));
        for (bad, message) in [
            ("max_bytes: 1KiB", "at least 64KiB"),
            ("max_bytes: 3 parsecs", "a unit is one of"),
            ("max_samples_per_send: 0", "from 1 to"),
            ("max_age: 1ms", "at least 100ms"),
            ("colour: red", "unknown field `colour`"),
        ] {
            let text = with_remote_write(&format!("  - url: http://h/w\n    queue: {{{bad}}}\n"));
            let err = first_error(&dir, &text);
            assert_eq!(err.line, Some(10), "{bad}: {err}");
            assert!(
                err.field
                    .as_deref()
                    .is_some_and(|f| f.starts_with("remote_write[0].queue")),
                "{err}"
            );
            assert!(err.message.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_values_name_their_line_and_field() {
        let dir = TempDir::new("rw-bad");
        dir.write("probes/gm.yaml", PROBE);
        let cases = [
            (
                "  - url: ftp://h/w\n",
                "remote_write[0].url",
                9,
                "http:// or https://",
            ),
            (
                "  - url: http://u:p@h/w\n",
                "remote_write[0].url",
                9,
                "basic_auth_file",
            ),
            (
                "  - url: http://h/w\n    headers:\n      Bad Header: x\n",
                "remote_write[0].headers.Bad Header",
                11,
                "not an HTTP header name",
            ),
            (
                "  - url: http://h/w\n    headers:\n      Content-Type: x\n",
                "remote_write[0].headers.Content-Type",
                11,
                "set by the agent",
            ),
            (
                "  - url: http://h/w\n    bearer_token_file: /nonexistent/token\n",
                "remote_write[0].bearer_token_file",
                10,
                "cannot read file /nonexistent/token",
            ),
            (
                "  - url: http://h/w\n    bearer_token_env: CHATPROBE_TEST_UNSET_TOKEN\n",
                "remote_write[0].bearer_token_env",
                10,
                "is not set",
            ),
            (
                "  - url: http://h/w\n    external_labels: {__x: y}\n",
                "remote_write[0].external_labels.__x",
                10,
                "not a label name",
            ),
            (
                "  - url: http://h/w\n    tls_ca_file: /nonexistent/ca.pem\n",
                "remote_write[0].tls_ca_file",
                10,
                "cannot read",
            ),
        ];
        for (entry, field, line, message) in cases {
            let err = first_error(&dir, &with_remote_write(entry));
            assert_eq!(err.field.as_deref(), Some(field), "{entry}: {err}");
            assert_eq!(err.line, Some(line), "{entry}: {err}");
            assert!(err.message.contains(message), "{entry}: {err}");
        }
        let err = first_error(&dir, &with_remote_write("  - headers: {a: b}\n"));
        assert_eq!(err.field.as_deref(), Some("remote_write[0]"), "{err}");
        assert!(err.message.contains("missing field `url`"), "{err}");
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn one_credential_at_most_and_basic_auth_holds_a_colon() {
        let dir = TempDir::new("rw-auth");
        dir.write("probes/gm.yaml", PROBE);
        let token = dir.write("token", "t0ken\n");
        let plain = dir.write("plain", "no-colon\n");
        let both = format!(
            "  - url: http://h/w\n    bearer_token_file: {}\n    basic_auth_file: {}\n",
            token.display(),
            token.display()
        );
        let err = first_error(&dir, &with_remote_write(&both));
        assert!(err.message.contains("only one of"), "{err}");
        assert_eq!(err.field.as_deref(), Some("remote_write[0]"), "{err}");
        let basic = format!(
            "  - url: http://h/w\n    basic_auth_file: {}\n",
            plain.display()
        );
        let err = first_error(&dir, &with_remote_write(&basic));
        assert!(err.message.contains("USER:PASSWORD"), "{err}");
        let bearer = format!(
            "  - url: http://h/w\n    bearer_token_file: {}\n",
            token.display()
        );
        let loaded = AgentConfig::load(&dir.write("a.yaml", &with_remote_write(&bearer))).unwrap();
        let Auth::Bearer(secret) = &loaded.remote_write[0].auth else {
            panic!("not bearer: {:?}", loaded.remote_write[0].auth);
        };
        assert_eq!(secret.read().as_deref(), Ok("t0ken"));
    }

    #[test]
    fn byte_counts_take_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 GB"), Ok(2_000_000_000));
        assert!(parse_bytes("99999999999999GiB").is_err());
        assert!(parse_bytes("MiB").is_err());
    }
}
