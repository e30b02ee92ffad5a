//! Opening an XMPP client stream: TCP (plain, STARTTLS or direct TLS, via
//! tokio-xmpp's connectors), SASL, resource binding, and in-band
//! registration (XEP-0077). No automatic reconnects: a prober must see
//! every failure, so each one is an error of the call that met it.

use std::borrow::Cow;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_xmpp::connect::{
    AsyncReadAndWrite, DirectTlsServerConnector, DnsConfig, ServerConnector,
    StartTlsServerConnector, TcpServerConnector,
};
use tokio_xmpp::error::{AuthError, Error as XmppError};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

use super::incoming::new_id;
use super::stanzas;
use crate::client::{ClientError, ClientResult};

/// A client stream after binding, whatever its transport.
pub(super) type Stream = XmppStream<Box<dyn AsyncReadAndWrite + Send + 'static>>;

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP, then STARTTLS (required), usually port 5222.
    Starttls,
    /// TLS from the first byte (XEP-0368), usually port 5223.
    Direct,
    /// Unencrypted TCP: loopback tests only, and only when asked for.
    Plain,
}

/// Where and how to connect, shared by every device of a service.
#[derive(Debug, Clone)]
pub(super) struct Server {
    /// Host (name or IP) and port.
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) transport: Transport,
    /// Bound of every step of the connection (and of every request).
    pub(super) timeout: Duration,
}

/// The stream timeouts: silence of a minute asks for a ping, and a
/// request's timeout of more silence ends the stream.
fn timeouts(timeout: Duration) -> Timeouts {
    Timeouts {
        read_timeout: Duration::from_secs(60),
        response_timeout: timeout.max(Duration::from_secs(5)),
    }
}

impl Server {
    fn dns(&self) -> DnsConfig {
        DnsConfig::no_srv(&self.host, self.port)
    }

    /// An authenticated stream for `jid` bound to the resource it names.
    pub(super) async fn open(&self, jid: &FullJid, password: &str) -> ClientResult<Stream> {
        let opening = async {
            match self.transport {
                Transport::Starttls => {
                    login(
                        StartTlsServerConnector(self.dns()),
                        jid,
                        password,
                        self.timeout,
                    )
                    .await
                }
                Transport::Direct => {
                    login(
                        DirectTlsServerConnector(self.dns()),
                        jid,
                        password,
                        self.timeout,
                    )
                    .await
                }
                Transport::Plain => {
                    login(TcpServerConnector(self.dns()), jid, password, self.timeout).await
                }
            }
        };
        bounded(self.timeout, opening).await
    }

    /// Registers `user` with `password` in band; an account that already
    /// exists counts as done.
    pub(super) async fn register(&self, jid: &BareJid, password: &str) -> ClientResult<()> {
        let registering = async {
            let jid = Jid::from(jid.clone());
            match self.transport {
                Transport::Starttls => {
                    register(
                        StartTlsServerConnector(self.dns()),
                        &jid,
                        password,
                        self.timeout,
                    )
                    .await
                }
                Transport::Direct => {
                    register(
                        DirectTlsServerConnector(self.dns()),
                        &jid,
                        password,
                        self.timeout,
                    )
                    .await
                }
                Transport::Plain => {
                    register(TcpServerConnector(self.dns()), &jid, password, self.timeout).await
                }
            }
        };
        bounded(self.timeout, registering).await
    }
}

/// `call` bounded by `timeout`.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = ClientResult<T>>,
) -> ClientResult<T> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(ClientError::Timeout(timeout)))
}

/// A failure of tokio-xmpp as a client error: a SASL failure is
/// [`ClientError::Auth`], everything else (resets, stream errors, TLS,
/// DNS) is [`ClientError::Connect`].
pub(super) fn connect_error(error: XmppError) -> ClientError {
    match error {
        XmppError::Auth(AuthError::Fail(condition)) => {
            ClientError::Auth(format!("SASL failure: {condition:?}"))
        }
        XmppError::Auth(other) => ClientError::Auth(other.to_string()),
        other => ClientError::Connect(crate::client::error_chain(&other)),
    }
}

/// Connects, authenticates and binds `jid`'s resource.
async fn login<C: ServerConnector>(
    connector: C,
    jid: &FullJid,
    password: &str,
    timeout: Duration,
) -> ClientResult<Stream> {
    let bare = Jid::from(jid.to_bare());
    let (pending, binding) = connector
        .connect(&bare, ns::JABBER_CLIENT, timeouts(timeout))
        .await
        .map_err(connect_error)?;
    let (features, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|error| connect_error(error.into()))?;
    let user = jid.node().map(|node| node.to_string()).unwrap_or_default();
    let credentials = sasl::common::Credentials::default()
        .with_username(user)
        .with_password(password)
        .with_channel_binding(binding);
    let restarted = tokio_xmpp::client_login(stream, features.sasl_mechanisms, credentials)
        .await
        .map_err(connect_error)?;
    let header = StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    };
    let pending = restarted
        .send_header(header)
        .await
        .map_err(|error| connect_error(error.into()))?;
    let (_features, stream) = pending
        .recv_features()
        .await
        .map_err(|error| connect_error(error.into()))?;
    let mut stream: Stream = stream.box_stream();
    bind(&mut stream, jid).await?;
    Ok(stream)
}

/// Binds the resource `jid` names (the server may pick another one; the
/// device then is that one).
async fn bind(stream: &mut Stream, jid: &FullJid) -> ClientResult<FullJid> {
    let id = new_id();
    let query = BindQuery::new(Some(jid.resource().to_string()));
    let request = Iq::Set {
        from: None,
        to: None,
        id: id.clone(),
        payload: query.into(),
    };
    let answer = request_on(stream, request, &id).await?;
    let bound = answer
        .and_then(|payload| BindResponse::try_from(payload).ok())
        .ok_or_else(|| ClientError::Malformed("resource binding answer".into()))?;
    Ok(bound.into())
}

/// Registers `jid` in band on a fresh (unauthenticated) stream.
async fn register<C: ServerConnector>(
    connector: C,
    jid: &Jid,
    password: &str,
    timeout: Duration,
) -> ClientResult<()> {
    let (pending, _binding) = connector
        .connect(jid, ns::JABBER_CLIENT, timeouts(timeout))
        .await
        .map_err(connect_error)?;
    let (_features, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|error| connect_error(error.into()))?;
    let mut stream: Stream = stream.box_stream();
    let user = jid.node().map(|node| node.to_string()).unwrap_or_default();
    let id = new_id();
    let request = Iq::Set {
        from: None,
        to: None,
        id: id.clone(),
        payload: stanzas::register(&user, password),
    };
    let result = request_on(&mut stream, request, &id).await;
    let _ = stream.shutdown().await;
    match result {
        Err(ClientError::Status { status: 409, .. }) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Sends `request` on a stream nobody else reads yet and waits for its answer.
async fn request_on(stream: &mut Stream, request: Iq, id: &str) -> ClientResult<Option<Element>> {
    let closed = |error: std::io::Error| ClientError::Connect(crate::client::error_chain(&error));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Iq(request)))
        .await
        .map_err(closed)?;
    loop {
        let element = match stream.next().await {
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                return Err(ClientError::Connect("the server closed the stream".into()));
            }
            Some(Err(ReadError::HardError(error))) => return Err(closed(error)),
            Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => continue,
            Some(Ok(element)) => element.into_read_error(),
        };
        match element {
            Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                id: answered,
                payload,
                ..
            }))) if answered == id => return Ok(payload),
            Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Error {
                id: answered,
                error,
                ..
            }))) if answered == id => return Err(stanzas::stanza_error(&error)),
            Ok(XmppStreamElement::StreamError(error)) => {
                return Err(ClientError::Connect(format!("stream error: {error}")));
            }
            Ok(_) => continue,
            Err(error) => return Err(ClientError::Connect(crate::client::error_chain(&error))),
        }
    }
}
