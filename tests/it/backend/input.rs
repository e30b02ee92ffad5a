//! Bad input to the mock backend (bodies, config and faults files) and the real
//! `chatprobe backend` binary started with a config on port 0.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::backend::TestBackend;
use crate::harness::binary::{self, start_backend};
use crate::harness::fixtures::fixture_path;
use crate::harness::http::http_client;
use chatprobe::backend::BackendConfig;
use chatprobe::backend::load_faults;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let config = BackendConfig {
        max_body_bytes: 1024,
        ..BackendConfig::ephemeral()
    };
    let backend = TestBackend::start_with(config).await;
    let http = reqwest::Client::new();
    let login = format!("{}/api/v1/login", backend.base);
    let cases = [
        ("{\"user\":", "EOF while parsing"),
        ("{\"user\": 5, \"password\": \"p\"}", "user"),
        ("{\"user\": \"u\"}", "missing field `password`"),
        (
            "{\"user\": \"u\", \"password\": \"p\", \"admin\": true}",
            "unknown field `admin`",
        ),
        ("[]", "invalid JSON body"),
        ("\u{0}\u{1}", "invalid JSON body"),
    ];
    for (body, named) in cases {
        let response = http.post(&login).body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let answer: Value = response.json().await.unwrap();
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(named), "{message:?} should name {named:?}");
    }
    let oversized = json!({"user": "u", "password": "x".repeat(2000)}).to_string();
    let response = http.post(&login).body(oversized).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let alice = backend.login("alice", "default").await;
    let group = backend.create_group(&alice, "g", &[]).await;
    let (status, _) = backend.send(&alice, &group, "k", &"y".repeat(2000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, answer) = backend
        .call(&alice, Method::GET, "/api/v1/sync?since=minus-one", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = backend.send(&alice, &group, "k", "still fine").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn config_errors_name_file_line_and_field() {
    let shipped = BackendConfig::load(&PathBuf::from("config/backend.yaml")).unwrap();
    assert_eq!(shipped.listen.to_string(), "127.0.0.1:8080");
    assert!(shipped.admin_token.is_none() && shipped.faults.is_empty());

    let path = fixture_path("invalid/backend-unknown-field.yaml");
    let error = BackendConfig::load(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:3:", path.display())),
        "{error}"
    );
    assert!(error.contains("max_body"), "{error}");

    let path = fixture_path("invalid/backend-fault-probability.yaml");
    let error = BackendConfig::load(&path).unwrap_err().to_string();
    assert!(error.contains(":2:"), "{error}");
    assert!(
        error.contains("faults[0]") && error.contains("probability"),
        "{error}"
    );
}

#[test]
fn faults_file_errors_name_file_line_and_field() {
    let path = fixture_path("invalid/faults-status-on-stale.yaml");
    let error = load_faults(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:4:", path.display())),
        "{error}"
    );
    assert!(error.contains("[1]") && error.contains("status"), "{error}");
    let shipped = load_faults(&PathBuf::from("config/scenarios/group-outage.yaml"));
    assert!(shipped.is_ok_and(|faults| faults.len() >= 6));
}

#[tokio::test]
async fn the_binary_serves_a_config_with_faults_and_stops_on_sigterm() {
    let faults = fixture_path("faults/sync-teapot.yaml");
    let mut backend = start_backend(
        &fixture_path("backend.yaml"),
        &["--faults", faults.to_str().unwrap()],
    );
    let addr = backend.addr;
    let http = http_client();
    let login: Value = http
        .post(format!("http://{addr}/api/v1/login"))
        .json(&json!({"user": "u", "password": "p"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let sync = http
        .get(format!("http://{addr}/api/v1/sync"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status().as_u16(), 418, "the faults file is active");

    backend.signal("TERM");
    let Some((exit, _)) = backend.wait_exit(Duration::from_secs(10)) else {
        panic!("backend did not stop on SIGTERM");
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_binary_rejects_a_bad_config_naming_the_place() {
    let config = fixture_path("invalid/backend-listen-port.yaml");
    let finished = binary::run("backend", &config);
    assert!(!finished.success);
    let stderr = finished.stderr;
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("listen_port"), "{stderr}");
}
