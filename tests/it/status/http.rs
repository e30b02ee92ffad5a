//! `status::router` served over a real socket: the page and the JSON as a
//! browser or a script gets them, updating as runs are recorded.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chatprobe::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};
use chatprobe::status::{self, StatusBoard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(20);

/// The router on 127.0.0.1 (ephemeral port) until the returned sender is dropped.
async fn serve(board: Arc<StatusBoard>) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, status::router(board))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (format!("http://{address}"), stop)
}

fn client() -> reqwest::Client {
    chatprobe::client::init_tls();
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

fn ap_south() -> ProbeKey {
    ProbeKey {
        region: "ap-south".into(),
        target: "mock".into(),
        probe: "group_message".into(),
    }
}

fn outcome(failures: Vec<Failure>) -> ProbeOutcome {
    ProbeOutcome {
        started_at: SystemTime::now(),
        duration: Duration::from_millis(120),
        steps: Vec::new(),
        failures,
        messages_expected: 4,
        messages_delivered: 0,
    }
}

async fn status_json(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/api/status"))
        .send()
        .await
        .expect("GET /api/status")
        .json()
        .await
        .expect("JSON body")
}

#[tokio::test]
async fn the_page_and_the_json_follow_what_is_recorded() {
    let board = Arc::new(StatusBoard::new());
    let (base, _stop) = serve(board.clone()).await;
    let http = client();

    let empty = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(empty.status(), 200);
    let header = |name: &str| {
        empty
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    assert!(
        header("content-security-policy").is_some_and(|csp| csp.contains("default-src 'none'"))
    );
    let body = empty.text().await.expect("body");
    assert!(body.contains("Waiting for the first probe runs"));

    let lost = Failure {
        operation: Operation::Deliver,
        reason: Reason::NotDelivered,
        detail: "<em>0 of 4</em> devices".into(),
    };
    board.record(&ap_south(), &outcome(vec![lost]));

    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("GET /")
        .text()
        .await
        .expect("body");
    assert!(page.contains(
        r#"data-region="ap-south" data-target="mock" data-state="red" data-reasons="not_delivered""#
    ));
    assert!(page.contains("&lt;em&gt;0 of 4&lt;/em&gt; devices"));

    let json = status_json(&http, &base).await;
    assert_eq!(json["overall"], "red");
    assert_eq!(json["cells"][0]["region"], "ap-south");
    assert_eq!(json["cells"][0]["reasons"][0], "not_delivered");
    assert_eq!(
        json["recent_failures"][0]["detail"],
        "<em>0 of 4</em> devices"
    );

    board.record(&ap_south(), &outcome(vec![]));
    let json = status_json(&http, &base).await;
    assert_eq!(json["overall"], "green");
    assert_eq!(json["cells"][0]["state"], "green");
    assert_eq!(json["recent_failures"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let (base, _stop) = serve(Arc::new(StatusBoard::new())).await;
    let response = client()
        .get(format!("{base}/nope"))
        .send()
        .await
        .expect("GET /nope");
    assert_eq!(response.status(), 404);
}
