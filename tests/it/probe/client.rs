//! The mock service client against a scripted HTTP server on 127.0.0.1: every
//! request (the WebSocket upgrade too) carries the agent's User-Agent and
//! region, and every way a server can fail maps onto its client error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatprobe::client::mock::MockService;
use chatprobe::client::{Account, ChatService, ClientError, Device};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_millis(500);
const LOGIN_OK: &str = r#"{"user":"alice","device_id":"d1","token":"tok-1","cursor":7}"#;

/// What the scripted server answers to one request: a status and a body,
/// or nothing at all (the request is held open).
type Answer = Option<(u16, &'static str)>;

/// Serves `script` in order, one request per connection; returns the base URL
/// and the request heads it saw.
async fn scripted(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let heads = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = script.lock().expect("script").pop_front().flatten();
            let heads = Arc::clone(&heads);
            tokio::spawn(answer_one(stream, answer, heads));
        }
    });
    (base, seen)
}

async fn answer_one(mut stream: TcpStream, answer: Answer, heads: Arc<Mutex<Vec<String>>>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    heads
        .lock()
        .expect("heads")
        .push(String::from_utf8_lossy(&request).to_lowercase());
    let Some((status, body)) = answer else {
        tokio::time::sleep(Duration::from_secs(10)).await;
        return;
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

fn service(base: &str) -> MockService {
    MockService::new(base, "eu-west", TIMEOUT).expect("client")
}

fn alice() -> Account {
    Account {
        user: "alice".into(),
        password: "secret".into(),
    }
}

async fn logged_in(then: Vec<Answer>) -> (Box<dyn Device>, Arc<Mutex<Vec<String>>>) {
    let mut script = vec![Some((200, LOGIN_OK))];
    script.extend(then);
    let (base, seen) = scripted(script).await;
    let device = service(&base).login(&alice()).await.expect("login");
    (device, seen)
}

#[tokio::test]
async fn every_request_names_the_agent_and_its_region() {
    let (mut device, seen) =
        logged_in(vec![Some((200, r#"{"groups":[]}"#)), Some((401, ""))]).await;
    assert_eq!(device.user_id(), "alice");
    assert_eq!(
        device.list_groups().await.expect("list"),
        Vec::<String>::new()
    );
    assert!(matches!(device.connect().await, Err(ClientError::Auth(_))));
    let heads = seen.lock().expect("heads").clone();
    assert_eq!(heads.len(), 3);
    for head in &heads {
        assert!(head.contains("user-agent: chatprobe/"), "{head}");
        assert!(head.contains("region=eu-west"), "{head}");
        assert!(head.contains("x-chatprobe-region: eu-west"), "{head}");
    }
    assert!(heads[1].contains("authorization: bearer tok-1"));
    assert!(heads[2].starts_with("get /api/v1/push "));
    assert!(heads[2].contains("upgrade: websocket"));
    assert!(heads[2].contains("authorization: bearer tok-1"));
}

#[tokio::test]
async fn server_failures_map_onto_client_errors() {
    let (device, _) = logged_in(vec![
        Some((401, r#"{"error":"expired"}"#)),
        Some((503, r#"{"error":"down"}"#)),
        Some((200, "not json")),
        None,
    ])
    .await;
    assert!(
        matches!(device.list_groups().await, Err(ClientError::Auth(message)) if message == "expired")
    );
    assert!(matches!(
        device.list_groups().await,
        Err(ClientError::Status { status: 503, message }) if message == "down"
    ));
    assert!(matches!(
        device.list_groups().await,
        Err(ClientError::Malformed(_))
    ));
    assert!(matches!(
        device.list_groups().await,
        Err(ClientError::Timeout(_))
    ));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let result = service(&base).login(&alice()).await;
    assert!(matches!(result, Err(ClientError::Connect(_))));
}
