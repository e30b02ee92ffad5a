//! Bad input to the mock backend (bodies, config and faults files) and the real
//! `chatprobe backend` binary started with a config on port 0.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chatprobe::backend::BackendConfig;
use chatprobe::backend::faults::load_faults;
use common::backend::{PATIENCE, TestBackend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A file in a fresh per-test directory under the system temp dir.
fn temp_file(test: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatprobe-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

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

    let path = temp_file(
        "config",
        "backend.yaml",
        "listen: 127.0.0.1:0\nregistration: true\nmax_body: 10\n",
    );
    let error = BackendConfig::load(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:3:", path.display())),
        "{error}"
    );
    assert!(error.contains("max_body"), "{error}");

    let path = temp_file(
        "config",
        "faults-in-config.yaml",
        "faults:\n  - name: x\n    operations: [send]\n    effect: drop\n    probability: 2\n",
    );
    let error = BackendConfig::load(&path).unwrap_err().to_string();
    assert!(error.contains(":2:"), "{error}");
    assert!(
        error.contains("faults[0]") && error.contains("probability"),
        "{error}"
    );
}

#[test]
fn faults_file_errors_name_file_line_and_field() {
    let path = temp_file(
        "faults",
        "faults.yaml",
        "- name: fine\n  operations: [send]\n  effect: drop\n- name: no-status-here\n  operations: [sync]\n  effect: stale\n  status: 500\n",
    );
    let error = load_faults(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}:4:", path.display())),
        "{error}"
    );
    assert!(error.contains("[1]") && error.contains("status"), "{error}");
    let shipped = load_faults(&PathBuf::from("config/scenarios/group-outage.yaml"));
    assert!(shipped.is_ok_and(|faults| faults.len() >= 6));
}

/// The binary under test, started with `args`; stderr lines come through the channel.
fn spawn_backend(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["--log-format", "json"])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

fn listening_address(lines: &mpsc::Receiver<String>) -> String {
    for _ in 0..100 {
        let line = lines.recv_timeout(PATIENCE).expect("a log line in time");
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(rest) = entry["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("listening on "))
        {
            return rest.to_string();
        }
    }
    panic!("no `listening on` line");
}

#[tokio::test]
async fn the_binary_serves_a_config_with_faults_and_stops_on_sigterm() {
    let config = temp_file("binary", "backend.yaml", "listen: 127.0.0.1:0\n");
    let faults = temp_file(
        "binary",
        "faults.yaml",
        "- name: no-sync\n  operations: [sync]\n  effect: error\n  status: 418\n",
    );
    let (mut child, lines) = spawn_backend(&[
        "backend",
        "--config",
        config.to_str().unwrap(),
        "--faults",
        faults.to_str().unwrap(),
    ]);
    let addr = listening_address(&lines);
    chatprobe::client::init_tls();
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
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

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(exit) = exit else {
        let _ = child.kill();
        panic!("backend did not stop on SIGTERM");
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_binary_rejects_a_bad_config_naming_the_place() {
    let config = temp_file(
        "bad-binary",
        "backend.yaml",
        "listen: 127.0.0.1:0\nlisten_port: 80\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["backend", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("listen_port"), "{stderr}");
}
