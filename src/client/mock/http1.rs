//! A lean HTTP/1.1 client for the mock protocol: keep-alive connections over
//! plain TCP, a request written with one call, the answer framed with
//! `httparse` on the caller's own task.
//!
//! A probe run makes a dozen small requests to one host, so what a general
//! client spends per request (URL parsing, a connection task and the wake-ups
//! between it and the caller, timers of its own) is a large share of a run's
//! CPU; this client spends a write, a read and a timer (`docs/benchmarks.md`).
//! It speaks what the mock backend and any HTTP/1.1 proxy in
//! front of it answer: `Content-Length`, chunked and close-delimited bodies,
//! `Connection: close`, interim `1xx` answers.

use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::{ClientError, ClientResult, MAX_BODY_BYTES};

/// Idle connections kept for reuse; one handed back beyond this is closed.
const IDLE_MAX: usize = 16;
/// Longest answer head (status line and headers) accepted.
const HEAD_MAX: usize = 16 * 1024;
/// Most headers an answer may have.
const HEADERS_MAX: usize = 32;
/// Room reserved in a connection's read buffer before each read.
const READ_CHUNK: usize = 4 * 1024;

/// Where requests go, from a base URL `http://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// `host:port` to connect to (port 80 when the URL has none).
    pub(crate) authority: String,
    /// The `Host` header: the URL's host and port as written.
    pub(crate) host: String,
    /// Path before every request's path (empty, or `/prefix`).
    pub(crate) prefix: String,
}

impl Endpoint {
    /// The endpoint of `base_url`; `Err` names what is wrong with it.
    pub(super) fn parse(base_url: &str) -> Result<Endpoint, String> {
        let Some(rest) = base_url.strip_prefix("http://") else {
            return Err(format!(
                "base URL `{base_url}` must start with http:// (the mock protocol is plain HTTP)"
            ));
        };
        let (host, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if host.is_empty() || host.contains(['@', '?', '#']) || prefix.contains(['?', '#']) {
            return Err(format!(
                "base URL `{base_url}` is not http://HOST[:PORT][/PATH]"
            ));
        }
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']') && port.parse::<u16>().is_ok());
        let authority = if has_port {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Endpoint {
            authority,
            host: host.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }
}

/// `text` as a header value: `Err` when it holds a control character, which
/// would end the header (or the request) early.
pub(super) fn header_text(text: &str) -> ClientResult<&str> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ClientError::Connect(format!(
            "`{text}` is not a valid header value"
        )));
    }
    Ok(text)
}

/// A request method of the mock protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PATCH`.
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// One request: method, path (with its query), optional bearer token and
/// optional JSON body.
pub(super) struct Request<'a> {
    /// The method.
    pub(crate) method: Method,
    /// Path and query, after the endpoint's prefix.
    pub(crate) path: &'a str,
    /// Bearer token for `Authorization`, already checked by [`header_text`].
    pub(crate) token: Option<&'a str>,
    /// JSON body.
    pub(crate) json: Option<&'a [u8]>,
}

/// An answer: its status and whole body.
#[derive(Debug)]
pub(super) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The body, de-chunked.
    pub(crate) body: Bytes,
}

/// An HTTP/1.1 client of one [`Endpoint`] with a pool of idle keep-alive
/// connections; every request, connecting included, is bounded by one
/// timeout.
pub(super) struct Http1Client {
    endpoint: Endpoint,
    /// Header lines sent with every request, each ending in CRLF.
    common_headers: String,
    idle: Mutex<Vec<Connection>>,
    timeout: Duration,
}

impl Http1Client {
    /// A client of `endpoint` sending `headers` (checked by [`header_text`])
    /// with every request, each request bounded by `timeout`.
    pub(super) fn new(
        endpoint: Endpoint,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Http1Client {
        let mut common_headers = format!("Host: {}\r\n", endpoint.host);
        for (name, value) in headers {
            common_headers.push_str(&format!("{name}: {value}\r\n"));
        }
        Http1Client {
            endpoint,
            common_headers,
            idle: Mutex::new(Vec::new()),
            timeout,
        }
    }

    /// The endpoint requests go to.
    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends `request` and reads its answer, on an idle connection when one
    /// is open, else on a new one; the connection is kept for the next
    /// request when the answer allows.
    pub(super) async fn send(&self, request: &Request<'_>) -> ClientResult<Answer> {
        let head = self.head(request)?;
        let exchange = async {
            let mut connection = match self.take_idle() {
                Some(connection) => connection,
                None => Connection::open(&self.endpoint.authority).await?,
            };
            let (answer, reusable) = connection.exchange(&head, request.json).await?;
            if reusable {
                self.put_idle(connection);
            }
            Ok(answer)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout(self.timeout)))
    }

    /// The request line and headers of `request`, up to the blank line;
    /// `Err` when its path cannot go in a request line (a space or a control
    /// character, e.g. in an id the service handed out).
    fn head(&self, request: &Request<'_>) -> ClientResult<Vec<u8>> {
        if request.path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ClientError::Malformed(format!(
                "`{}` cannot be sent as a request path",
                request.path.escape_debug()
            )));
        }
        let mut head = Vec::with_capacity(256 + self.common_headers.len());
        let line = format!(
            "{} {}{} HTTP/1.1\r\n",
            request.method.as_str(),
            self.endpoint.prefix,
            request.path
        );
        head.extend_from_slice(line.as_bytes());
        head.extend_from_slice(self.common_headers.as_bytes());
        if let Some(token) = request.token {
            head.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        if let Some(json) = request.json {
            let framing = format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                json.len()
            );
            head.extend_from_slice(framing.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        Ok(head)
    }

    /// An idle connection the server has not closed, if any.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(connection) = idle.pop() {
            if connection.is_idle_and_open() {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, connection: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push(connection);
        }
    }
}

/// One connection and what has been read from it but not yet used.
struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
}

/// How an answer's body is delimited.
enum Framing {
    /// No body (`1xx`, `204`, `304`).
    Empty,
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// What the head of an answer says.
struct Head {
    status: u16,
    framing: Framing,
    /// The connection may carry another request after this answer.
    keep_alive: bool,
}

impl Connection {
    async fn open(authority: &str) -> ClientResult<Connection> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|err| ClientError::Connect(format!("connecting to {authority}: {err}")))?;
        // Requests are written whole; waiting to fill a segment only delays them.
        stream
            .set_nodelay(true)
            .map_err(|err| ClientError::Connect(format!("connecting to {authority}: {err}")))?;
        Ok(Connection {
            stream,
            buffer: BytesMut::new(),
        })
    }

    /// True while the server has neither closed the connection nor sent
    /// anything unasked (a read finds nothing waiting; no syscall when the
    /// runtime already knows the socket is not readable).
    fn is_idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Writes a request and reads its answer: the answer, and whether the
    /// connection can carry another request.
    async fn exchange(&mut self, head: &[u8], json: Option<&[u8]>) -> ClientResult<(Answer, bool)> {
        let written = match json {
            Some(json) => {
                let mut request = Vec::with_capacity(head.len() + json.len());
                request.extend_from_slice(head);
                request.extend_from_slice(json);
                self.stream.write_all(&request).await
            }
            None => self.stream.write_all(head).await,
        };
        written.map_err(|err| ClientError::Connect(format!("sending the request: {err}")))?;
        let head = self.read_head().await?;
        let body = match head.framing {
            Framing::Empty => Bytes::new(),
            Framing::Length(length) => self.read_exactly(length).await?,
            Framing::Chunked => self.read_chunked().await?,
            Framing::Close => self.read_to_end().await?,
        };
        let reusable =
            head.keep_alive && !matches!(head.framing, Framing::Close) && self.buffer.is_empty();
        Ok((
            Answer {
                status: head.status,
                body,
            },
            reusable,
        ))
    }

    /// Reads more into the buffer: how many bytes, 0 when the server closed
    /// the connection (`what` names what was being read, for errors).
    async fn read_more(&mut self, what: &str) -> ClientResult<usize> {
        self.buffer.reserve(READ_CHUNK);
        self.stream
            .read_buf(&mut self.buffer)
            .await
            .map_err(|err| ClientError::Connect(format!("reading the {what}: {err}")))
    }

    /// Reads more into the buffer; `Err` when the server closed the
    /// connection (`what` names what was being read).
    async fn fill(&mut self, what: &str) -> ClientResult<()> {
        if self.read_more(what).await? == 0 {
            return Err(ClientError::Connect(format!(
                "connection closed before the end of the {what}"
            )));
        }
        Ok(())
    }

    /// Reads the head of the final answer, skipping interim `1xx` ones.
    async fn read_head(&mut self) -> ClientResult<Head> {
        loop {
            match parse_head(&self.buffer)? {
                Some((length, head)) => {
                    self.buffer.advance(length);
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    return Ok(head);
                }
                None if self.buffer.len() >= HEAD_MAX => {
                    return Err(ClientError::Malformed(format!(
                        "answer head longer than {HEAD_MAX} bytes"
                    )));
                }
                None => self.fill("answer head").await?,
            }
        }
    }

    async fn read_exactly(&mut self, length: usize) -> ClientResult<Bytes> {
        check_body_size(length)?;
        while self.buffer.len() < length {
            self.fill("answer body").await?;
        }
        Ok(self.buffer.split_to(length).freeze())
    }

    async fn read_chunked(&mut self) -> ClientResult<Bytes> {
        let mut body = BytesMut::new();
        loop {
            let (size_line, size) = loop {
                match httparse::parse_chunk_size(&self.buffer) {
                    Ok(httparse::Status::Complete((used, size))) => break (used, size),
                    Ok(httparse::Status::Partial) => self.fill("chunk size").await?,
                    Err(_) => return Err(ClientError::Malformed("bad chunk size line".into())),
                }
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            check_body_size(body.len().saturating_add(size))?;
            self.buffer.advance(size_line);
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(body.freeze());
            }
            while self.buffer.len() < size + 2 {
                self.fill("answer body").await?;
            }
            body.extend_from_slice(&self.buffer[..size]);
            if &self.buffer[size..size + 2] != b"\r\n" {
                return Err(ClientError::Malformed("chunk not ended by CRLF".into()));
            }
            self.buffer.advance(size + 2);
        }
    }

    /// Skips the trailer lines after the last chunk, up to the blank line.
    async fn skip_trailers(&mut self) -> ClientResult<()> {
        loop {
            match self.buffer.windows(2).position(|pair| pair == b"\r\n") {
                Some(0) => {
                    self.buffer.advance(2);
                    return Ok(());
                }
                Some(end) => self.buffer.advance(end + 2),
                None if self.buffer.len() >= HEAD_MAX => {
                    return Err(ClientError::Malformed("trailers too long".into()));
                }
                None => self.fill("trailers").await?,
            }
        }
    }

    async fn read_to_end(&mut self) -> ClientResult<Bytes> {
        loop {
            check_body_size(self.buffer.len())?;
            if self.read_more("answer body").await? == 0 {
                return Ok(self.buffer.split().freeze());
            }
        }
    }
}

/// `Err` when a body of `length` bytes is over [`MAX_BODY_BYTES`].
fn check_body_size(length: usize) -> ClientResult<()> {
    if length > MAX_BODY_BYTES {
        return Err(ClientError::Malformed(format!(
            "answer body of more than {MAX_BODY_BYTES} bytes (the limit)"
        )));
    }
    Ok(())
}

/// The head at the start of `buffer` and its length, or `None` while it is
/// incomplete.
fn parse_head(buffer: &[u8]) -> ClientResult<Option<(usize, Head)>> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(ClientError::Malformed(format!("answer head: {err}"))),
    };
    let status = response.code.unwrap_or_default();
    let mut keep_alive = response.version == Some(1);
    let mut content_length = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .parse::<usize>()
                .map_err(|_| ClientError::Malformed(format!("bad Content-Length `{value}`")))?;
            if content_length.is_some_and(|earlier| earlier != parsed) {
                return Err(ClientError::Malformed("conflicting Content-Length".into()));
            }
            content_length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        Framing::Close
    };
    Ok(Some((
        length,
        Head {
            status,
            framing,
            keep_alive,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn endpoint_keeps_host_port_and_prefix() {
        let plain = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(plain.authority, "127.0.0.1:8080");
        assert_eq!(plain.prefix, "");
        let prefixed = Endpoint::parse("http://chat.example/mock/").unwrap();
        assert_eq!(prefixed.authority, "chat.example:80");
        assert_eq!(prefixed.host, "chat.example");
        assert_eq!(prefixed.prefix, "/mock");
        assert_eq!(
            Endpoint::parse("http://[::1]:9000").unwrap().authority,
            "[::1]:9000"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]").unwrap().authority,
            "[::1]:80"
        );
        for bad in [
            "https://chat.example",
            "ftp://x",
            "http://",
            "http://u@h",
            "http://h/?q",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters_are_not_header_text() {
        assert!(header_text("eu-west").is_ok());
        assert!(header_text("eu\r\nX-Evil: 1").is_err());
    }

    /// A server on 127.0.0.1 answering each request it reads (up to the
    /// blank line; requests here carry no body) with the next of `answers`,
    /// closing the connection after the last; returns the client.
    async fn server(answers: Vec<&'static str>) -> Http1Client {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            for answer in answers {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.is_empty() {
                        break;
                    }
                }
                for piece in answer.as_bytes().chunks(7) {
                    write.write_all(piece).await.unwrap();
                    write.flush().await.unwrap();
                }
            }
        });
        let endpoint = Endpoint::parse(&format!("http://{address}")).unwrap();
        Http1Client::new(endpoint, &[("User-Agent", "test")], Duration::from_secs(5))
    }

    fn get(path: &str) -> Request<'_> {
        Request {
            method: Method::Get,
            path,
            token: None,
            json: None,
        }
    }

    #[tokio::test]
    async fn answers_of_every_framing_arrive_whole_over_one_connection() {
        let client = server(vec![
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
        ])
        .await;
        let first = client.send(&get("/a")).await.unwrap();
        assert_eq!((first.status, &first.body[..]), (200, &b"hello"[..]));
        let chunked = client.send(&get("/b")).await.unwrap();
        assert_eq!((chunked.status, &chunked.body[..]), (404, &b"abcde"[..]));
        let empty = client.send(&get("/c")).await.unwrap();
        assert_eq!((empty.status, empty.body.len()), (204, 0));
        let closed = client.send(&get("/d")).await.unwrap();
        assert_eq!(&closed.body[..], b"to the end");
        // The close-delimited answer ended the connection: nothing is kept.
        assert!(client.take_idle().is_none());
    }

    #[tokio::test]
    async fn a_truncated_or_oversized_answer_is_an_error() {
        let truncated = server(vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        assert!(matches!(
            truncated.send(&get("/")).await,
            Err(ClientError::Connect(message)) if message.contains("answer body")
        ));
        let oversized = server(vec!["HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"]).await;
        assert!(matches!(
            oversized.send(&get("/")).await,
            Err(ClientError::Malformed(message)) if message.contains("limit")
        ));
        let garbage = server(vec!["SMTP ready\r\n\r\n"]).await;
        assert!(matches!(
            garbage.send(&get("/")).await,
            Err(ClientError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_reused() {
        let client = server(vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]).await;
        client.send(&get("/")).await.unwrap();
        // The server closes after its only answer; wait (bounded) until the
        // runtime has seen it, then the pooled connection must be dropped.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let connection = client.take_idle();
            if connection.is_none() {
                break;
            }
            client.put_idle(connection.unwrap());
            assert!(
                tokio::time::Instant::now() < deadline,
                "closed connection kept"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
