//! A webhook receiver for the notification tests: a real HTTP server on
//! 127.0.0.1 in the test's runtime that records every POST (headers and
//! raw body) and answers them with the statuses it is told, in order, then
//! 200.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as sent.
    pub body: Vec<u8>,
}

impl Delivery {
    /// Header `name` as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    answers: VecDeque<u16>,
}

/// The receiver.
#[derive(Clone)]
pub struct Receiver {
    log: Arc<Mutex<Log>>,
    /// Where it listens: `http://127.0.0.1:PORT/hook`.
    pub url: String,
}

impl Receiver {
    /// Starts it; the first POSTs are answered with `answers`, the rest 200.
    pub async fn start(answers: &[u16]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on 127.0.0.1");
        let address = listener.local_addr().expect("a bound address");
        let log = Arc::new(Mutex::new(Log {
            deliveries: Vec::new(),
            answers: answers.iter().copied().collect(),
        }));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&log));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            log,
            url: format!("http://{address}/hook"),
        }
    }

    /// Every POST so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .deliveries
            .clone()
    }
}

/// Records one POST and answers it.
async fn receive(
    State(log): State<Arc<Mutex<Log>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    log.deliveries.push(Delivery {
        headers,
        body: body.to_vec(),
    });
    let answer = log.answers.pop_front().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap_or(StatusCode::OK)
}
