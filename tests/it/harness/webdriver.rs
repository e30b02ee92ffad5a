//! A browser a test can drive as a user does (open a page, press a button,
//! read what it shows): headless Chromium under ChromeDriver, spoken to
//! over the W3C WebDriver protocol.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::process::Process;

/// How long one WebDriver command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Viewports narrower than this are phones'.
const PHONE_WIDTH: u32 = 768;
/// The key of an element reference in WebDriver's answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; ChromeDriver is killed when it drops.
pub struct WebDriver {
    http: reqwest::Client,
    session: String,
    _driver: Process,
}

impl WebDriver {
    /// A session in a `width` × `height` window, or `None` to skip when
    /// Chromium or ChromeDriver is missing. The page's viewport is exactly
    /// that size (emulated: a window is never narrower than 500 px), and
    /// below [`PHONE_WIDTH`] it is a phone's (it honours the page's
    /// `<meta name="viewport">`).
    pub async fn start(width: u32, height: u32) -> Option<WebDriver> {
        let chromium = super::tool("CHATPROBE_CHROMIUM", "chromium", "apt-get install chromium")?;
        let driver = super::tool(
            "CHATPROBE_CHROMEDRIVER",
            "chromedriver",
            "apt-get install chromium-driver",
        )?;
        let port = super::free_port();
        let mut process = Process::spawn(
            "chromedriver",
            Command::new(driver).args([format!("--port={port}"), "--allowed-ips=".into()]),
        );
        process.wait_for_line(|line| line.contains("started successfully"));
        chatprobe::client::init_tls();
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client can be built");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--disable-background-networking", "--no-first-run",
                         format!("--window-size={width},{height}")],
                "mobileEmulation": {"deviceMetrics": {
                    "width": width, "height": height, "pixelRatio": 1,
                    "mobile": width < PHONE_WIDTH, "touch": width < PHONE_WIDTH,
                }},
            },
        }}});
        let base = format!("http://127.0.0.1:{port}/session");
        let created = command(&http, reqwest::Method::POST, &base, Some(capabilities)).await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("ChromeDriver made no session: {created}"))
            .to_owned();
        Some(WebDriver {
            http,
            session: format!("{base}/{session}"),
            _driver: process,
        })
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.post("url", json!({ "url": url })).await;
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        let url = format!("{}/source", self.session);
        let value = command(&self.http, reqwest::Method::GET, &url, None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The value of the JavaScript expression `expression` in the page
    /// (run by the driver, so the page's own policy of no script holds).
    pub async fn evaluate(&self, expression: &str) -> Value {
        let body = json!({"script": format!("return {expression};"), "args": []});
        self.post("execute/sync", body).await
    }

    /// Clicks the first element the CSS `selector` matches, as a user does
    /// (a radio button, an option of a select, a submit button); a page it
    /// loads has loaded when this returns.
    pub async fn click(&self, selector: &str) {
        let element = self.element(selector).await;
        self.post(&format!("element/{element}/click"), json!({}))
            .await;
    }

    /// Types `text` into the first element the CSS `selector` matches, as
    /// a user does.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.element(selector).await;
        self.post(&format!("element/{element}/value"), json!({ "text": text }))
            .await;
    }

    /// The driver's id of the first element the CSS `selector` matches.
    async fn element(&self, selector: &str) -> String {
        let found = self
            .post(
                "element",
                json!({"using": "css selector", "value": selector}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned()
    }

    /// The text of every element the CSS `selector` matches, in page order.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let script =
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent);";
        let body = json!({"script": script, "args": [selector]});
        let found = self.post("execute/sync", body).await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|text| text.as_str().map(str::to_owned))
            .collect()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/{path}", self.session);
        command(&self.http, reqwest::Method::POST, &url, Some(body)).await
    }
}

impl Drop for WebDriver {
    /// Ends the session (closing Chromium) from a thread of its own, as
    /// the test's runtime may be gone.
    fn drop(&mut self) {
        let session = self.session.clone();
        let ended = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                // The client is made within the runtime, which it needs.
                let _ = runtime.block_on(async {
                    reqwest::Client::new()
                        .delete(&session)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                });
            }
        });
        let _ = ended.join();
    }
}

/// One WebDriver command: its `value`, or the test fails with the driver's answer.
async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("WebDriver {url}: {error}"));
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .unwrap_or_else(|error| panic!("WebDriver {url} answered no JSON: {error}"));
    assert!(status.is_success(), "WebDriver {url}: {status} {answer}");
    answer["value"].clone()
}
