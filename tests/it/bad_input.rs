//! One table of hostile input to every reader of the agent and the backend:
//! agent config, probe files, faults files, backend config, admin API bodies,
//! client API bodies and WebSocket frames. Each case names its input and the
//! text its error must hold (what was wrong, and where); nothing panics, and
//! after every case against the running backend a normal request still works.
//! Fixtures longer than a line are under `tests/data/bad-input/`.

use std::path::PathBuf;

use crate::harness::backend::{PATIENCE, TestBackend};
use chatprobe::backend::BackendConfig;
use chatprobe::backend::load_faults;
use chatprobe::config::{AgentConfig, load_probe};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// Largest request body and WebSocket message of the backend under test.
const MAX_BODY_BYTES: usize = 4096;
/// Users the backend under test keeps.
const MAX_USERS: usize = 8;
/// Groups one user of the backend under test may be in.
const MAX_GROUPS_PER_USER: usize = 4;
/// Push connections per device of the backend under test.
const MAX_SOCKETS_PER_DEVICE: usize = 2;
/// Groups others may put one user of the backend under test in that it has not joined.
const MAX_UNACCEPTED_GROUPS_PER_USER: usize = 2;
/// Pushes the timer of the backend under test may hold.
const MAX_DELAYED_DELIVERIES: usize = 2;

/// What a case feeds in.
enum Input {
    /// An agent config fixture, loaded with its probe files.
    AgentConfig(&'static str),
    /// A probe file fixture.
    ProbeFile(&'static str),
    /// A faults file fixture.
    FaultsFile(&'static str),
    /// A backend config fixture.
    BackendConfig(&'static str),
    /// `PUT /admin/faults` with this body.
    AdminFaults(&'static str),
    /// A client API request by Alice: method, path (`{group}` is her group), body.
    Client(Method, &'static str, &'static str),
    /// A client API request by Alice whose body is a fixture file.
    ClientFile(Method, &'static str, &'static str),
    /// A client API request without a token.
    Anonymous(Method, &'static str),
    /// New users logging in until one is refused.
    UsersBeyondCap,
    /// Bob creating groups until one is refused.
    GroupsBeyondCap,
    /// Alice adding Carol to groups Carol does not join until one is refused;
    /// then Carol joins one and Alice adds her once more.
    UnacceptedBeyondCap,
    /// Three messages to Carol's device in a region whose pushes are delayed
    /// by an hour, then her leave with a `resurrect` an hour later: the admin
    /// stats and Carol's sync after them.
    DelayedBeyondCap,
    /// A push connection with the token in the URL instead of the header.
    PushTokenInUrl,
    /// One device opening push connections until one is refused.
    SocketsBeyondCap,
    /// A WebSocket text message of this many bytes from the client.
    PushMessage(usize),
}

/// One row: a label, the input, and the fragments its error text must hold.
struct Case {
    label: &'static str,
    input: Input,
    error: &'static [&'static str],
}

const fn case(label: &'static str, input: Input, error: &'static [&'static str]) -> Case {
    Case {
        label,
        input,
        error,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Input::*;
    vec![
        // Agent config.
        case("agent: run_timeout of 3e11 years", AgentConfig("agent-run-timeout-huge.yaml"), &["run_timeout", "longer than one year"]),
        case("agent: interval of two years", AgentConfig("agent-interval-huge.yaml"), &["interval", "longer than one year"]),
        case("agent: request_timeout of 400 days", AgentConfig("agent-request-timeout-huge.yaml"), &["targets[0]", "request_timeout", "longer than one year"]),
        case("agent: jitter 0.9", AgentConfig("agent-jitter.yaml"), &["jitter", "between 0 and 0.5"]),
        case("agent: unknown field", AgentConfig("agent-unknown-field.yaml"), &["unknown field `colour`"]),
        case("agent: missing probe file", AgentConfig("agent-missing-probe.yaml"), &["probes[0]", "no-such-probe.yaml", "does not exist"]),
        case("agent: no targets", AgentConfig("agent-no-targets.yaml"), &["targets", "at least one target"]),
        case("agent: region with a space", AgentConfig("agent-region.yaml"), &["region", "letters, digits"]),
        case("agent: ftp URL", AgentConfig("agent-url.yaml"), &["targets[0]", "ftp://"]),
        case("agent: two targets of one name", AgentConfig("agent-duplicate-target.yaml"), &["targets", "two targets are named `mock`"]),
        case("agent: no such file", AgentConfig("agent-absent.yaml"), &["agent-absent.yaml", "cannot read"]),
        // Probe files.
        case("probe: delivery_deadline of 400 days", ProbeFile("probe-delivery-deadline-huge.yaml"), &["delivery_deadline", "longer than one year"]),
        case("probe: step_timeout of 3e11 years", ProbeFile("probe-step-timeout-huge.yaml"), &["step_timeout", "longer than one year"]),
        case("probe: interval of 10ms", ProbeFile("probe-interval-tiny.yaml"), &["interval", "at least 100ms"]),
        case("probe: group of 1000", ProbeFile("probe-group-size.yaml"), &["group_size", "between 2 and 50"]),
        case("probe: unknown kind", ProbeFile("probe-kind.yaml"), &["kind", "teleport"]),
        case("probe: objective beyond deadline", ProbeFile("probe-latency-over-deadline.yaml"), &["latency_objective", "delivery_deadline"]),
        case("probe: negative messages", ProbeFile("probe-messages-negative.yaml"), &["messages", "-1"]),
        case("probe: interval `soon`", ProbeFile("probe-interval-garbage.yaml"), &["interval", "soon"]),
        // Faults files.
        case("faults: delay of 3e11 years", FaultsFile("faults-delay-huge.yaml"), &["[0]", "fault `slow`", "`delay`", "longer than one year"]),
        case("faults: after of two years", FaultsFile("faults-after-huge.yaml"), &["fault `late`", "`after`", "longer than one year"]),
        case("faults: duration of 3e5 years", FaultsFile("faults-duration-huge.yaml"), &["fault `long`", "`duration`", "longer than one year"]),
        case("faults: probability 1.5", FaultsFile("faults-probability.yaml"), &["fault `maybe`", "`probability`", "1.5"]),
        case("faults: status on drop", FaultsFile("faults-status-on-drop.yaml"), &["`status` is only for effect `error`"]),
        case("faults: name of 200 bytes", FaultsFile("faults-name-long.yaml"), &["`name` must be at most 128 bytes"]),
        case("faults: a mapping, not a list", FaultsFile("faults-not-a-list.yaml"), &["sequence"]),
        // Backend config.
        case("backend: open admin API on 0.0.0.0", BackendConfig("backend-open-admin.yaml"), &["admin_token", "0.0.0.0:0", "not a loopback address"]),
        case("backend: empty admin_token", BackendConfig("backend-empty-token.yaml"), &["admin_token", "must not be empty"]),
        case("backend: zero cap", BackendConfig("backend-zero-cap.yaml"), &["max_groups_per_user", "greater than 0"]),
        case("backend: fault delay of 3e11 years", BackendConfig("backend-fault-delay-huge.yaml"), &["faults[0]", "`delay`", "longer than one year"]),
        // Admin API bodies.
        case("admin: delay of 3e11 years", AdminFaults(r#"[{"name":"x","operations":["send"],"effect":"delay","delay":"300000000000y"}]"#,), &["400", "`delay`", "longer than one year"]),
        case("admin: after of two years", AdminFaults(r#"[{"name":"x","operations":["send"],"effect":"drop","after":"2years"}]"#), &["400", "`after`", "longer than one year"]),
        case("admin: duration of 3e5 years", AdminFaults(r#"[{"name":"x","operations":["send"],"effect":"drop","duration":"9999999999999s"}]"#,), &["400", "`duration`", "longer than one year"]),
        case("admin: duration beyond u64", AdminFaults(r#"[{"name":"x","operations":["send"],"effect":"drop","duration":"99999999999999999999999s"}]"#,), &["400", "`[0].duration`", "expected a duration"]),
        case("admin: probability as text", AdminFaults(r#"[{"name":"x","operations":["send"],"effect":"drop","probability":"high"}]"#,), &["400", "probability"]),
        case("admin: truncated JSON", AdminFaults(r#"[{"name":"#), &["400", "EOF while parsing"]),
        case("admin: an object, not a list", AdminFaults(r#"{"name":"x"}"#), &["400", "sequence"]),
        case("admin: empty name", AdminFaults(r#"[{"name":" ","operations":["send"],"effect":"drop"}]"#), &["400", "`name` must not be empty"]),
        // Client API bodies.
        case("client: truncated login", Client(Method::POST, "/api/v1/login", r#"{"user":"#), &["400", "EOF while parsing"]),
        case("client: empty user", Client(Method::POST, "/api/v1/login", r#"{"user":"","password":"p"}"#,), &["400", "`user` must not be empty"]),
        case("client: group with unknown member", Client(Method::POST, "/api/v1/groups", r#"{"name":"g","notice":"","members":["nobody"]}"#,), &["404", "unknown user `nobody`"]),
        case("client: message without key", Client(Method::POST, "/api/v1/groups/{group}/messages", r#"{"body":"hi"}"#,), &["400", "missing field `idempotency_key`"]),
        case("client: message not JSON", Client(Method::POST, "/api/v1/groups/{group}/messages", "hello"), &["400", "invalid JSON body"]),
        case("client: member of unknown group", Client(Method::POST, "/api/v1/groups/g999999/members", r#"{"user":"bob"}"#,), &["404", "unknown group `g999999`"]),
        case("client: settings of the wrong type", Client(Method::PATCH, "/api/v1/groups/{group}", r#"{"name":7}"#), &["400", "name"]),
        case("client: negative sync cursor", Client(Method::GET, "/api/v1/sync?since=-1", ""), &["400", "since"]),
        case("client: 10 KB message", ClientFile(Method::POST, "/api/v1/groups/{group}/messages", "client-oversized.json",), &["413", "length limit"]),
        case("client: no token", Anonymous(Method::GET, "/api/v1/groups"), &["401", "missing `Authorization: Bearer TOKEN`"]),
        case("client: unknown route", Client(Method::GET, "/api/v1/teleport", ""), &["404", "no such route"]),
        // Caps.
        case("cap: registrations", UsersBeyondCap, &["403", "registration is full", "`max_users`"]),
        case("cap: groups per user", GroupsBeyondCap, &["403", "`bob` is in 4 groups", "`max_groups_per_user`"]),
        case("cap: groups added to without consent", UnacceptedBeyondCap, &["403", "`carol` was added to 2 groups it has not joined", "`max_unaccepted_groups_per_user`", "once she joined one: 200"]),
        case("cap: delayed pushes and resurrections", DelayedBeyondCap, &["pending 2, refused 2", "sync has 3 of 3"]),
        // WebSocket.
        case("push: token in the URL", PushTokenInUrl, &["401", "missing `Authorization: Bearer TOKEN`"]),
        case("push: sockets per device", SocketsBeyondCap, &["429", "2 push connections", "`max_sockets_per_device`"]),
        case("push: message over max_body_bytes", PushMessage(MAX_BODY_BYTES + 1), &["close 1009", "4096 bytes", "`max_body_bytes`"]),
    ]
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bad-input")
        .join(name)
}

/// The backend every API and WebSocket case talks to, with small caps, and
/// Alice's group.
struct Target {
    backend: TestBackend,
    alice: crate::harness::backend::Device,
    carol: crate::harness::backend::Device,
    group: String,
}

impl Target {
    async fn start() -> Target {
        let config = BackendConfig {
            max_body_bytes: MAX_BODY_BYTES,
            max_users: MAX_USERS,
            max_groups_per_user: MAX_GROUPS_PER_USER,
            max_sockets_per_device: MAX_SOCKETS_PER_DEVICE,
            max_unaccepted_groups_per_user: MAX_UNACCEPTED_GROUPS_PER_USER,
            max_delayed_deliveries: MAX_DELAYED_DELIVERIES,
            ..BackendConfig::ephemeral()
        };
        let backend = TestBackend::start_with(config).await;
        let alice = backend.login("alice", "default").await;
        backend.login("bob", "default").await;
        let carol = backend.login("carol", "default").await;
        let group = backend.create_group(&alice, "g", &["bob", "carol"]).await;
        let (joined, answer) = backend
            .call(
                &carol,
                Method::POST,
                &format!("/api/v1/groups/{group}/join"),
                None,
            )
            .await;
        assert_eq!(joined, StatusCode::OK, "carol joins: {answer}");
        Target {
            backend,
            alice,
            carol,
            group,
        }
    }

    /// The error text of `input`, or what it did instead of failing.
    async fn outcome(&self, input: &Input) -> String {
        match input {
            Input::AgentConfig(name) => match AgentConfig::load(&fixture(name)) {
                Ok(_) => "loaded".into(),
                Err(errors) => errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
            Input::ProbeFile(name) => file_outcome(load_probe(&fixture(name))),
            Input::FaultsFile(name) => file_outcome(load_faults(&fixture(name))),
            Input::BackendConfig(name) => file_outcome(BackendConfig::load(&fixture(name))),
            Input::AdminFaults(body) => self.raw(Method::PUT, "/admin/faults", None, body).await,
            Input::Client(method, path, body) => {
                let token = Some(self.alice.token.as_str());
                self.raw(method.clone(), path, token, body).await
            }
            Input::ClientFile(method, path, name) => {
                let body = std::fs::read_to_string(fixture(name)).expect("fixture reads");
                let token = Some(self.alice.token.as_str());
                self.raw(method.clone(), path, token, &body).await
            }
            Input::Anonymous(method, path) => self.raw(method.clone(), path, None, "").await,
            Input::UsersBeyondCap => self.users_beyond_cap().await,
            Input::GroupsBeyondCap => self.groups_beyond_cap().await,
            Input::UnacceptedBeyondCap => self.unaccepted_beyond_cap().await,
            Input::DelayedBeyondCap => self.delayed_beyond_cap().await,
            Input::PushTokenInUrl => self.push_token_in_url().await,
            Input::SocketsBeyondCap => self.sockets_beyond_cap().await,
            Input::PushMessage(bytes) => self.push_message(*bytes).await,
        }
    }

    /// `status: error` of one request with a raw body.
    async fn raw(&self, method: Method, path: &str, token: Option<&str>, body: &str) -> String {
        let url = format!(
            "{}{}",
            self.backend.base,
            path.replace("{group}", &self.group)
        );
        let mut request = reqwest::Client::new()
            .request(method, url)
            .timeout(PATIENCE)
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => answer_text(response).await,
            Err(error) => format!("no answer: {error}"),
        }
    }

    async fn users_beyond_cap(&self) -> String {
        for index in 0..=MAX_USERS {
            let body = format!(r#"{{"user":"user-{index}","password":"pw"}}"#);
            let outcome = self.raw(Method::POST, "/api/v1/login", None, &body).await;
            if !outcome.starts_with("200") {
                return outcome;
            }
        }
        "every login succeeded".into()
    }

    async fn groups_beyond_cap(&self) -> String {
        let bob = self.backend.login("bob", "default").await;
        for _ in 0..=MAX_GROUPS_PER_USER {
            let body = r#"{"name":"g","notice":"","members":[]}"#;
            let outcome = self
                .raw(Method::POST, "/api/v1/groups", Some(&bob.token), body)
                .await;
            if !outcome.starts_with("200") {
                return outcome;
            }
        }
        "every group was created".into()
    }

    /// Alice creates groups with Carol until one is refused; Carol joins the
    /// first, and Alice creates one more.
    async fn unaccepted_beyond_cap(&self) -> String {
        let body = r#"{"name":"g","notice":"","members":["carol"]}"#;
        let mut added = Vec::new();
        for _ in 0..=MAX_UNACCEPTED_GROUPS_PER_USER {
            let (status, answer) = self
                .backend
                .call(
                    &self.alice,
                    Method::POST,
                    "/api/v1/groups",
                    Some(serde_json::from_str(body).expect("literal JSON")),
                )
                .await;
            if status != StatusCode::OK {
                let join = format!(
                    "/api/v1/groups/{}/join",
                    added.first().map_or("", String::as_str)
                );
                self.backend
                    .call(&self.carol, Method::POST, &join, None)
                    .await;
                let again = self
                    .raw(
                        Method::POST,
                        "/api/v1/groups",
                        Some(&self.alice.token),
                        body,
                    )
                    .await;
                let refused = answer["error"].as_str().unwrap_or_default();
                let again = again.split(':').next().unwrap_or_default();
                return format!(
                    "{}: {refused}; once she joined one: {again}",
                    status.as_u16()
                );
            }
            added.push(answer["id"].as_str().unwrap_or_default().to_string());
        }
        "every group was created".into()
    }

    /// Carol's device in region `slow`, whose pushes a fault delays by an hour,
    /// gets three messages: two wait on the timer, the third is refused; so is
    /// the resurrection of her leave.
    async fn delayed_beyond_cap(&self) -> String {
        let slow = self.backend.login("carol", "slow").await;
        let delay = serde_json::json!([{"name": "slow-pushes", "operations": ["deliver"],
            "regions": ["slow"], "effect": "delay", "delay": "1h"}]);
        self.backend.set_faults(delay).await;
        for index in 0..=MAX_DELAYED_DELIVERIES {
            let key = format!("delayed-{index}");
            self.backend
                .send(&self.alice, &self.group, &key, "hi")
                .await;
        }
        let resurrect = serde_json::json!([{"name": "late-rejoin", "operations": ["leave"],
            "regions": ["slow"], "effect": "resurrect", "delay": "1h"}]);
        self.backend.set_faults(resurrect).await;
        let leave = format!("/api/v1/groups/{}/leave", self.group);
        self.backend.call(&slow, Method::POST, &leave, None).await;
        let stats = self.backend.stats().await;
        self.backend.set_faults(serde_json::json!([])).await;
        let synced = self.backend.sync(&slow, slow.cursor).await;
        let messages = synced
            .events
            .iter()
            .filter(|event| matches!(event.kind, chatprobe::protocol::EventKind::Message { .. }))
            .count();
        format!(
            "pending {}, refused {}; sync has {messages} of {}",
            stats["delayed_pending"],
            stats["delayed_refused"],
            MAX_DELAYED_DELIVERIES + 1
        )
    }

    fn push_url(&self) -> String {
        format!("ws://{}/api/v1/push", self.backend.handle.addr())
    }

    async fn push_token_in_url(&self) -> String {
        let url = format!("{}?token={}", self.push_url(), self.alice.token);
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                format!(
                    "{}: {}",
                    response.status().as_u16(),
                    String::from_utf8_lossy(body)
                )
            }
            Ok(_) => "connected".into(),
            Err(error) => format!("failed otherwise: {error}"),
        }
    }

    /// A push connection request for a new device of Alice.
    async fn push_request(&self) -> tungstenite::handshake::client::Request {
        let device = self.backend.login("alice", "default").await;
        self.push_request_of(&device)
    }

    fn push_request_of(
        &self,
        device: &crate::harness::backend::Device,
    ) -> tungstenite::handshake::client::Request {
        let mut request = self.push_url().into_client_request().expect("ws request");
        let bearer = format!("Bearer {}", device.token);
        request
            .headers_mut()
            .insert("authorization", bearer.parse().expect("header"));
        request
    }

    async fn sockets_beyond_cap(&self) -> String {
        let device = self.backend.login("alice", "default").await;
        let mut open = Vec::new();
        for _ in 0..=MAX_SOCKETS_PER_DEVICE {
            match tokio_tungstenite::connect_async(self.push_request_of(&device)).await {
                Ok((socket, _)) => open.push(socket),
                Err(tungstenite::Error::Http(response)) => {
                    let body = response.body().as_deref().unwrap_or_default();
                    return format!(
                        "{}: {}",
                        response.status().as_u16(),
                        String::from_utf8_lossy(body)
                    );
                }
                Err(error) => return format!("failed otherwise: {error}"),
            }
        }
        "every connection opened".into()
    }

    async fn push_message(&self, bytes: usize) -> String {
        let connected = tokio_tungstenite::connect_async(self.push_request().await).await;
        let Ok((mut socket, _)) = connected else {
            return "push did not connect".into();
        };
        if let Err(error) = socket.send(Message::text("x".repeat(bytes))).await {
            return format!("send failed: {error}");
        }
        loop {
            match tokio::time::timeout(PATIENCE, socket.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return format!("close {}: {}", u16::from(frame.code), frame.reason);
                }
                Ok(Some(Ok(Message::Close(None)))) => return "closed without a frame".into(),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => return format!("failed: {error}"),
                Ok(None) => return "ended without a close".into(),
                Err(_) => return "still open".into(),
            }
        }
    }

    /// Whether the backend still serves: the admin API and a normal client call.
    async fn still_serving(&self) -> bool {
        let (stats, _) = self
            .backend
            .request(Method::GET, "/admin/stats", None, "default", None)
            .await;
        let (groups, _) = self
            .backend
            .call(&self.alice, Method::GET, "/api/v1/groups", None)
            .await;
        stats == StatusCode::OK && groups == StatusCode::OK
    }
}

fn file_outcome<T, E: ToString>(loaded: Result<T, E>) -> String {
    match loaded {
        Ok(_) => "loaded".into(),
        Err(error) => error.to_string(),
    }
}

/// `STATUS: error message` of an answer (the raw body when it is not an error body).
async fn answer_text(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|value| value["error"].as_str().map(str::to_string))
        .unwrap_or(text);
    format!("{status}: {message}")
}

#[tokio::test]
async fn every_bad_input_is_a_clear_error_and_the_backend_keeps_serving() {
    let target = Target::start().await;
    let cases = cases();
    assert!(cases.len() >= 40, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = target.outcome(&case.input).await;
        let missing: Vec<_> = case
            .error
            .iter()
            .filter(|fragment| !outcome.contains(**fragment))
            .collect();
        if !missing.is_empty() {
            failures.push(format!("{}: {outcome:?} lacks {missing:?}", case.label));
        }
        assert!(
            target.still_serving().await,
            "{}: the backend stopped serving",
            case.label
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
