//! A hostile fake homeserver (an axum server in the test) against the Matrix
//! client and a probe built on it: malformed JSON, 10 MB bodies (announced
//! and chunked), an absurd `Retry-After`, 401 on `/sync`, a body that never
//! finishes. Each gives a clear failure with the right reason, no panic, and
//! the client keeps serving; the metrics' label values come only from config.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chatprobe::client::matrix::{MatrixOptions, MatrixService};
use chatprobe::client::{Account, ChatService, ClientError, MAX_BODY_BYTES};
use chatprobe::metrics::MetricsRegistry;
use chatprobe::outcome::{Operation, ProbeKey, Reason};
use chatprobe::probe::{self, ProbeKind, ProbeSetup, ProbeSpec};
use futures_util::stream::{self, StreamExt};
use serde_json::json;

/// How the fake homeserver misbehaves on one endpoint.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// `200` with a body that is not JSON.
    MalformedJson,
    /// `200` with a 10 MB body whose length is announced.
    HugeAnnounced,
    /// `200` with a 10 MB body sent in chunks, no length announced.
    HugeChunked,
    /// `429` asking to wait about 10^19 seconds.
    AbsurdRetryAfter,
    /// `401` `M_UNKNOWN_TOKEN`.
    Unauthorized,
    /// `200`, a first chunk, then nothing ever again.
    NeverFinishes,
}

/// Which endpoint misbehaves how (the others answer like a healthy server).
type Behaviour = Arc<Mutex<HashMap<&'static str, Hostile>>>;

const TEN_MB: usize = 10 * 1024 * 1024;

fn hostile(mode: Hostile) -> Response {
    match mode {
        Hostile::MalformedJson => (StatusCode::OK, "{\"user_id\": ").into_response(),
        Hostile::HugeAnnounced => (StatusCode::OK, vec![b' '; TEN_MB]).into_response(),
        Hostile::HugeChunked => {
            let chunks = stream::iter(
                (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024 * 1024]))),
            );
            (StatusCode::OK, Body::from_stream(chunks)).into_response()
        }
        Hostile::AbsurdRetryAfter => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "18446744073709551615")],
            json!({"errcode": "M_LIMIT_EXCEEDED", "error": "come back in 10^19 s"}).to_string(),
        )
            .into_response(),
        Hostile::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            json!({"errcode": "M_UNKNOWN_TOKEN", "error": "token revoked"}).to_string(),
        )
            .into_response(),
        Hostile::NeverFinishes => {
            let first =
                stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"joined")) });
            let body = Body::from_stream(first.chain(stream::pending()));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

/// Answers `healthy` unless `endpoint` is set to misbehave.
fn answer(behaviour: &Behaviour, endpoint: &str, healthy: serde_json::Value) -> Response {
    let mode = behaviour
        .lock()
        .expect("behaviour lock")
        .get(endpoint)
        .copied();
    match mode {
        Some(mode) => hostile(mode),
        None => axum::Json(healthy).into_response(),
    }
}

async fn login(State(behaviour): State<Behaviour>) -> Response {
    let healthy = json!({"user_id": "@probe:hostile", "access_token": "t", "device_id": "D"});
    answer(&behaviour, "login", healthy)
}

async fn sync(State(behaviour): State<Behaviour>) -> Response {
    answer(&behaviour, "sync", json!({"next_batch": "s1"}))
}

async fn joined_rooms(State(behaviour): State<Behaviour>) -> Response {
    answer(&behaviour, "joined_rooms", json!({"joined_rooms": []}))
}

async fn anything_else(Path(_): Path<String>) -> Response {
    axum::Json(json!({})).into_response()
}

/// Starts the fake homeserver; returns its base URL and its behaviour switch.
async fn start() -> (String, Behaviour) {
    let behaviour = Behaviour::default();
    let app = Router::new()
        .route("/_matrix/client/v3/login", post(login))
        .route("/_matrix/client/v3/sync", get(sync))
        .route("/_matrix/client/v3/joined_rooms", get(joined_rooms))
        .route("/_matrix/client/v3/{*rest}", post(anything_else))
        .with_state(Arc::clone(&behaviour));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), behaviour)
}

fn service(base: &str) -> MatrixService {
    MatrixService::new(MatrixOptions {
        homeserver_url: base.to_string(),
        region: "eu-west".into(),
        request_timeout: Duration::from_secs(2),
        register: false,
    })
    .expect("client builds")
}

fn account() -> Account {
    Account {
        user: "probe".into(),
        password: "secret".into(),
    }
}

fn set(behaviour: &Behaviour, endpoint: &'static str, mode: Option<Hostile>) {
    let mut modes = behaviour.lock().expect("behaviour lock");
    match mode {
        Some(mode) => modes.insert(endpoint, mode),
        None => modes.remove(endpoint),
    };
}

/// The error a login gives while `login` misbehaves as `mode`.
async fn login_error(service: &MatrixService, behaviour: &Behaviour, mode: Hostile) -> ClientError {
    set(behaviour, "login", Some(mode));
    let error = service.login(&account()).await.err().expect("login fails");
    set(behaviour, "login", None);
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_to_login_are_clear_http_errors() {
    let (base, behaviour) = start().await;
    let service = service(&base);
    let malformed = login_error(&service, &behaviour, Hostile::MalformedJson).await;
    assert_eq!(malformed.reason(), Reason::HttpError, "{malformed}");
    assert!(
        malformed.to_string().contains("does not parse"),
        "{malformed}"
    );

    let announced = login_error(&service, &behaviour, Hostile::HugeAnnounced).await;
    assert_eq!(announced.reason(), Reason::HttpError, "{announced}");
    let limit = format!("{TEN_MB} bytes exceeds the {MAX_BODY_BYTES}-byte limit");
    assert!(announced.to_string().contains(&limit), "{announced}");

    let chunked = login_error(&service, &behaviour, Hostile::HugeChunked).await;
    assert_eq!(chunked.reason(), Reason::HttpError, "{chunked}");
    assert!(chunked.to_string().contains("exceeds the"), "{chunked}");

    // Still serving: the next login works.
    let device = service
        .login(&account())
        .await
        .expect("login after the hostile answers");
    assert_eq!(device.user_id(), "@probe:hostile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_survives_401_on_sync_and_a_body_that_never_finishes() {
    let (base, behaviour) = start().await;
    let service = service(&base);
    let mut device = service.login(&account()).await.expect("login");

    set(&behaviour, "sync", Some(Hostile::Unauthorized));
    let revoked = device.sync().await.expect_err("sync fails");
    assert_eq!(revoked.reason(), Reason::AuthError, "{revoked}");
    set(&behaviour, "sync", None);
    device.sync().await.expect("sync works again");

    set(&behaviour, "joined_rooms", Some(Hostile::NeverFinishes));
    let stalled = device.list_groups().await.expect_err("listing fails");
    assert_eq!(stalled.reason(), Reason::Timeout, "{stalled}");

    set(&behaviour, "joined_rooms", Some(Hostile::HugeChunked));
    let huge = device.list_groups().await.expect_err("listing fails");
    assert_eq!(huge.reason(), Reason::HttpError, "{huge}");

    set(&behaviour, "joined_rooms", None);
    assert!(
        device
            .list_groups()
            .await
            .expect("listing works again")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_an_http_error_not_a_panic() {
    let (base, behaviour) = start().await;
    let service = service(&base);
    let limited = login_error(&service, &behaviour, Hostile::AbsurdRetryAfter).await;
    assert_eq!(limited.reason(), Reason::HttpError, "{limited}");
    assert!(limited.to_string().contains("429"), "{limited}");
    service.login(&account()).await.expect("login afterwards");
}

/// Whatever the server answers, a probe run's metrics carry only label
/// values from config (region, target, probe) and the closed sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_come_only_from_config() {
    let (base, behaviour) = start().await;
    let spec = ProbeSpec {
        name: "device_sync".into(),
        kind: ProbeKind::DeviceSync,
        interval: Duration::from_secs(1),
        step_timeout: Duration::from_secs(2),
        delivery_deadline: Duration::from_secs(2),
        latency_objective: Duration::from_secs(1),
        group_size: 2,
        devices_per_account: 2,
        messages: 1,
    };
    let accounts = (0..probe::accounts_needed(&spec))
        .map(|_| account())
        .collect();
    let mut probe = probe::build(ProbeSetup {
        spec,
        service: Arc::new(service(&base)),
        accounts,
    });
    let key = ProbeKey {
        region: "eu-west".into(),
        target: "hostile".into(),
        probe: "device_sync".into(),
    };
    let metrics = MetricsRegistry::default();
    metrics.probes.init_probe(&key);
    for mode in [
        Hostile::MalformedJson,
        Hostile::HugeAnnounced,
        Hostile::Unauthorized,
    ] {
        set(&behaviour, "login", Some(mode));
        let outcome = probe.run().await;
        assert!(!outcome.passed());
        assert!(
            outcome
                .failures
                .iter()
                .all(|failure| failure.operation == Operation::Login)
        );
        metrics.probes.observe(&key, &outcome);
    }
    let mut allowed: BTreeSet<String> = ["eu-west", "hostile", "device_sync", "success", "failure"]
        .map(String::from)
        .into();
    allowed.extend(
        Operation::ALL
            .iter()
            .map(|operation| operation.as_str().to_string()),
    );
    allowed.extend(Reason::ALL.iter().map(|reason| reason.as_str().to_string()));
    for line in metrics
        .render()
        .lines()
        .filter(|line| line.starts_with("chatprobe_"))
    {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split('}').next().unwrap_or_default();
        for pair in labels.split(',') {
            let (name, value) = pair.split_once('=').expect("name=value");
            if matches!(name, "le" | "version") {
                continue;
            }
            let value = value.trim_matches('"');
            assert!(
                allowed.contains(value),
                "label {name}={value} not from config: {line}"
            );
        }
    }
}
