//! Foolscap connections (the async shell over the pure codecs): dialling a fURL or accepting a
//! TCP connection, negotiating (plaintext request, TLS, Hellos, Decision), then PB traffic over
//! Banana: our calls and their answers, the peer's calls handed to the caller, PINGs answered.
//! A protocol error closes the connection with a logged reason; every buffer is bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsStream;
use tokio_util::sync::CancellationToken;

use super::banana::{self, BananaError, Event, Limits, Receiver, Sender, Token, Value};
use super::call::{Call, Failure, Message};
use super::furl::{Furl, TcpHint};
use super::negotiation::{self, Decision, Hello, NegotiationError};
use super::tls;
use super::tub_id::tub_id_of_certificate;
use crate::grid::crypto::random_bytes;

/// How long a whole negotiation may take (Foolscap allows 120 s; a loopback one takes ms).
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many of the peer's calls may wait for the caller before reading stops.
const INCOMING_QUEUE: usize = 64;
/// How many messages may wait to be written.
const OUTGOING_QUEUE: usize = 256;
/// The most peers the negotiation tables remember (each command's throwaway tub is a new
/// peer to a long-running introducer); past it they start afresh, which costs at worst one
/// refused duplicate connection.
const MAX_REMEMBERED_PEERS: usize = 10_000;

/// Why a connection could not be made or a call failed. Never holds a swissnum.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The fURL has no TCP hint.
    #[error("the fURL has no TCP connection hint")]
    NoHint,
    /// The TCP connection failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// `host:port`
        address: String,
        /// the cause
        source: std::io::Error,
    },
    /// Negotiation failed.
    #[error("negotiation: {0}")]
    Negotiation(#[from] NegotiationError),
    /// TLS failed.
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// Reading or writing failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Negotiation took too long.
    #[error("negotiation timed out")]
    Timeout,
    /// The tub's certificate or key is unusable.
    #[error("bad tub identity: {0}")]
    Identity(String),
    /// The connection closed before the answer came.
    #[error("connection closed")]
    Closed,
    /// The peer answered the call with a Failure.
    #[error("remote {kind}: {value}")]
    Remote {
        /// the exception type
        kind: String,
        /// its text (cut short)
        value: String,
    },
}

/// This side's identity and its memory of earlier negotiations (section 2.5).
pub struct Tub {
    /// Our tub ID (base32 SHA-1 of our certificate).
    pub tub_id: String,
    incarnation: String,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    /// Decisions received as non-master, by peer: sent back as `last-connection`.
    slave_table: Mutex<HashMap<String, (String, u64)>>,
    /// Connections decided as master, by peer.
    master_table: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Tub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tub({})", self.tub_id)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_block<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Result<Vec<u8>, ConnectionError> {
    loop {
        if let Some(end) = negotiation::block_end(buffer)? {
            return Ok(buffer.drain(..end).collect());
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ConnectionError::Closed);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

impl Tub {
    /// A tub with the certificate and key of a PEM identity (`private/node.pem`).
    pub fn from_pem(pem: &str) -> Result<Tub, ConnectionError> {
        let identity = |e: &dyn std::fmt::Display| ConnectionError::Identity(e.to_string());
        let (certificate, key) = crate::grid::storage::http::tls::parse_identity_pem(pem).map_err(|e| identity(&e))?;
        let tub_id = tub_id_of_certificate(&certificate);
        let client = tls::client_config(certificate.clone(), key.clone_key()).map_err(|e| identity(&e))?;
        let server = tls::server_config(certificate, key).map_err(|e| identity(&e))?;
        Ok(Tub {
            tub_id,
            incarnation: data_encoding::HEXLOWER.encode(&random_bytes::<8>()),
            client: Arc::new(client),
            server: Arc::new(server),
            slave_table: Mutex::new(HashMap::new()),
            master_table: Mutex::new(HashMap::new()),
        })
    }

    /// Connects to the tub of `furl`, trying its TCP hints in order.
    pub async fn dial(&self, furl: &Furl) -> Result<(Peer, mpsc::Receiver<IncomingCall>), ConnectionError> {
        let mut last = ConnectionError::NoHint;
        for hint in &furl.hints {
            match tokio::time::timeout(NEGOTIATION_TIMEOUT, self.dial_hint(furl, hint)).await {
                Ok(Ok(peer)) => return Ok(peer),
                Ok(Err(e)) => last = e,
                Err(_) => last = ConnectionError::Timeout,
            }
        }
        Err(last)
    }

    async fn dial_hint(
        &self,
        furl: &Furl,
        hint: &TcpHint,
    ) -> Result<(Peer, mpsc::Receiver<IncomingCall>), ConnectionError> {
        let address = format!("{}:{}", hint.host, hint.port);
        let mut tcp = TcpStream::connect((hint.host.as_str(), hint.port))
            .await
            .map_err(|source| ConnectionError::Connect {
                address: address.clone(),
                source,
            })?;
        tcp.write_all(&negotiation::request(&furl.tub_id, &hint.host)).await?;
        let mut buffer = Vec::new();
        negotiation::parse_response(&read_block(&mut tcp, &mut buffer).await?)?;
        if !buffer.is_empty() {
            // Nothing but TLS may follow the 101: leftover plaintext would be misread.
            return Err(NegotiationError::BadLine.into());
        }
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        // No SNI is sent; the name only satisfies the API.
        let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        let mut stream = connector.connect(name, tcp).await.map_err(ConnectionError::Tls)?;
        let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
        let (peer, vocab) = self
            .negotiate(&mut stream, certificate, Some(&furl.tub_id), &mut buffer)
            .await?;
        Ok(Peer::start(TlsStream::Client(stream), buffer, vocab, peer))
    }

    /// Serves the negotiation of an accepted TCP connection (this tub is the TLS server).
    pub async fn accept(&self, tcp: TcpStream) -> Result<(Peer, mpsc::Receiver<IncomingCall>), ConnectionError> {
        tokio::time::timeout(NEGOTIATION_TIMEOUT, self.accept_inner(tcp))
            .await
            .map_err(|_| ConnectionError::Timeout)?
    }

    async fn accept_inner(&self, mut tcp: TcpStream) -> Result<(Peer, mpsc::Receiver<IncomingCall>), ConnectionError> {
        let mut buffer = Vec::new();
        let block = match read_block(&mut tcp, &mut buffer).await {
            Err(ConnectionError::Negotiation(e)) => {
                let _ = tcp
                    .write_all(&negotiation::error_response("internal server error, see logs"))
                    .await;
                return Err(e.into());
            }
            other => other?,
        };
        let wanted = match negotiation::parse_request(&block) {
            Ok(wanted) => wanted,
            Err(NegotiationError::NotFoolscap) => return Err(NegotiationError::NotFoolscap.into()),
            Err(e) => {
                let text = match e {
                    NegotiationError::NoTubId => e.to_string(),
                    _ => "internal server error, see logs".into(),
                };
                let _ = tcp.write_all(&negotiation::error_response(&text)).await;
                return Err(e.into());
            }
        };
        if wanted != self.tub_id {
            let shown: String = wanted.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
            let _ = tcp
                .write_all(&negotiation::error_response(&format!("unknown TubID {shown}")))
                .await;
            return Err(NegotiationError::Refused(format!("unknown TubID {shown}")).into());
        }
        if !buffer.is_empty() {
            return Err(NegotiationError::BadLine.into());
        }
        tcp.write_all(negotiation::SWITCHING_PROTOCOLS).await?;
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        let mut stream = acceptor.accept(tcp).await.map_err(ConnectionError::Tls)?;
        let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
        let (peer, vocab) = self.negotiate(&mut stream, certificate, None, &mut buffer).await?;
        Ok(Peer::start(TlsStream::Server(stream), buffer, vocab, peer))
    }

    /// The Hello exchange and the Decision (section 2.3, 2.4): the peer's tub ID and the vocab
    /// table both directions start with.
    async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        certificate: Option<CertificateDer<'static>>,
        dialled: Option<&str>,
        buffer: &mut Vec<u8>,
    ) -> Result<(String, u32), ConnectionError> {
        let last_connection = dialled.map(|peer| {
            lock(&self.slave_table)
                .get(peer)
                .cloned()
                .unwrap_or_else(|| ("none".into(), 0))
        });
        let hello = Hello::ours(&self.tub_id, &self.incarnation, last_connection);
        stream.write_all(&hello.encode()).await?;
        stream.flush().await?;
        let theirs = Hello::parse(&read_block(stream, buffer).await?);
        let checked = theirs.and_then(|theirs| {
            let certified = certificate.as_deref().map(tub_id_of_certificate);
            if certified.as_deref() != Some(theirs.tub_id.as_str()) || dialled.is_some_and(|d| d != theirs.tub_id) {
                return Err(NegotiationError::TubIdMismatch);
            }
            let banana = (negotiation::BANANA_VERSION, negotiation::BANANA_VERSION);
            negotiation::common_version(banana, theirs.banana_range)
                .ok_or(NegotiationError::NoCommonVersion("banana"))?;
            Ok(theirs)
        });
        let theirs = match checked {
            Ok(theirs) => theirs,
            Err(e) => {
                let _ = stream
                    .write_all(&negotiation::error_block("internal server error, see logs"))
                    .await;
                let _ = stream.flush().await;
                return Err(e.into());
            }
        };
        if negotiation::is_master(&self.tub_id, &theirs.tub_id) {
            let vocab = negotiation::common_version(negotiation::VOCAB_RANGE, theirs.vocab_range).unwrap_or(0);
            let seqnum = {
                let mut table = lock(&self.master_table);
                if table.len() >= MAX_REMEMBERED_PEERS {
                    table.clear();
                }
                let counter = table.entry(theirs.tub_id.clone()).or_insert(0);
                *counter += 1;
                *counter
            };
            let decision = Decision {
                current_connection: (self.incarnation.clone(), seqnum),
                vocab_index: vocab,
            };
            // Its own TLS record: a Python peer counts bytes after it against its 4 KiB limit.
            stream.write_all(&decision.encode()).await?;
            stream.flush().await?;
            Ok((theirs.tub_id, vocab))
        } else {
            let decision = Decision::parse(&read_block(stream, buffer).await?)?;
            let mut table = lock(&self.slave_table);
            if table.len() >= MAX_REMEMBERED_PEERS {
                table.clear();
            }
            table.insert(theirs.tub_id.clone(), decision.current_connection);
            Ok((theirs.tub_id, decision.vocab_index))
        }
    }
}

enum Outgoing {
    Message(Message),
    Pong(Option<u64>),
    Error(String),
}

type Pending = Mutex<HashMap<i64, oneshot::Sender<Result<Value, Failure>>>>;

struct PeerInner {
    tub_id: String,
    outgoing: mpsc::Sender<Outgoing>,
    pending: Pending,
    next_req: AtomicI64,
    closed: CancellationToken,
}

/// A negotiated connection: make calls on the peer's objects, close it, wait for its end.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Peer({})", self.inner.tub_id)
    }
}

/// A call from the peer, to be answered (or failed) once.
pub struct IncomingCall {
    /// The call.
    pub call: Call,
    outgoing: mpsc::Sender<Outgoing>,
}

impl IncomingCall {
    /// Answers the call with `value`.
    pub async fn answer(self, value: Value) {
        let req_id = self.call.req_id;
        if req_id != 0 {
            let _ = self
                .outgoing
                .send(Outgoing::Message(Message::Answer { req_id, value }))
                .await;
        }
    }

    /// Fails the call with `failure`.
    pub async fn fail(self, failure: Failure) {
        let req_id = self.call.req_id;
        if req_id != 0 {
            let _ = self
                .outgoing
                .send(Outgoing::Message(Message::Error { req_id, failure }))
                .await;
        }
    }
}

impl Peer {
    fn start(
        stream: TlsStream<TcpStream>,
        leftover: Vec<u8>,
        vocab: u32,
        tub_id: String,
    ) -> (Peer, mpsc::Receiver<IncomingCall>) {
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (incoming, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let inner = Arc::new(PeerInner {
            tub_id,
            outgoing,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicI64::new(1),
            closed: CancellationToken::new(),
        });
        let (reader, writer) = tokio::io::split(stream);
        tokio::spawn(write_loop(writer, outgoing_rx, vocab, inner.closed.clone()));
        tokio::spawn(read_loop(reader, leftover, vocab, inner.clone(), incoming));
        (Peer { inner }, incoming_rx)
    }

    /// The peer's tub ID.
    pub fn tub_id(&self) -> &str {
        &self.inner.tub_id
    }

    /// Calls `method` on the peer's object `target` and waits for its answer.
    pub async fn call(
        &self,
        target: i64,
        method: &str,
        positional: Vec<Value>,
        keywords: Vec<(String, Value)>,
    ) -> Result<Value, ConnectionError> {
        let req_id = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(req_id, tx);
        if self.inner.closed.is_cancelled() {
            lock(&self.inner.pending).remove(&req_id);
            return Err(ConnectionError::Closed);
        }
        let call = Call {
            req_id,
            target,
            method: method.to_string(),
            positional,
            keywords,
        };
        self.inner
            .outgoing
            .send(Outgoing::Message(Message::Call(call)))
            .await
            .map_err(|_| ConnectionError::Closed)?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(ConnectionError::Remote {
                kind: failure.kind.chars().take(200).collect(),
                value: failure.value.chars().take(200).collect(),
            }),
            Err(_) => Err(ConnectionError::Closed),
        }
    }

    /// Closes the connection (TLS close_notify).
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Waits until the connection has closed.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Outgoing>,
    vocab: u32,
    closed: CancellationToken,
) {
    let mut sender = Sender::new(vocab);
    loop {
        let next = tokio::select! {
            // Queued messages first: an ERROR token must go out before the close.
            biased;
            next = queue.recv() => next,
            () = closed.cancelled() => None,
        };
        let mut out = Vec::new();
        let last = match next {
            Some(Outgoing::Message(message)) => {
                sender.encode(&message.to_value(), &mut out);
                false
            }
            Some(Outgoing::Pong(number)) => {
                banana::encode_token(&Token::Pong(number), &mut out);
                false
            }
            Some(Outgoing::Error(text)) => {
                banana::encode_token(&Token::Error(text.into_bytes()), &mut out);
                true
            }
            None => true,
        };
        let written = async {
            writer.write_all(&out).await?;
            writer.flush().await
        };
        if written.await.is_err() || last {
            break;
        }
    }
    closed.cancel();
    let _ = writer.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buffer: Vec<u8>,
    vocab: u32,
    inner: Arc<PeerInner>,
    incoming: mpsc::Sender<IncomingCall>,
) {
    let limits = Limits::default();
    let mut receiver = Receiver::new(vocab, limits);
    let reason = loop {
        match drain(&mut buffer, &mut receiver, &inner, &incoming).await {
            Ok(()) => {}
            Err(Close { reason, tell_peer }) => {
                if tell_peer {
                    // Foolscap's way to end a connection it cannot follow: an ERROR token.
                    let _ = inner.outgoing.send(Outgoing::Error(reason.clone())).await;
                }
                break reason;
            }
        }
        let mut chunk = vec![0u8; 16 * 1024];
        let read = tokio::select! {
            read = reader.read(&mut chunk) => read,
            () = inner.closed.cancelled() => break "closed locally".to_string(),
        };
        match read {
            Ok(0) => break "closed by the peer".to_string(),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => break format!("read failed: {e}"),
        }
    };
    tracing::debug!(peer = %inner.tub_id, "Foolscap connection ended: {reason}");
    inner.closed.cancel();
    lock(&inner.pending).clear();
}

/// Why a connection is being closed, and whether to send the peer an ERROR token first.
struct Close {
    reason: String,
    tell_peer: bool,
}

impl From<String> for Close {
    fn from(reason: String) -> Close {
        Close {
            reason,
            tell_peer: true,
        }
    }
}

/// Handles every complete token in `buffer`; an error is the reason to close.
async fn drain(
    buffer: &mut Vec<u8>,
    receiver: &mut Receiver,
    inner: &Arc<PeerInner>,
    incoming: &mpsc::Sender<IncomingCall>,
) -> Result<(), Close> {
    let mut at = 0;
    let result = loop {
        let token = match banana::decode_token(&buffer[at..], receiver.max_string()) {
            Ok(Some((token, used))) => {
                at += used;
                token
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match receiver.feed(token) {
            Ok(None) => {}
            Ok(Some(Event::Ping(number))) => {
                let _ = inner.outgoing.send(Outgoing::Pong(number)).await;
            }
            Ok(Some(Event::PeerError(text))) => {
                let shown: String = text.chars().take(200).collect();
                tracing::warn!(peer = %inner.tub_id, "Foolscap peer reported an error: {shown}");
                buffer.clear();
                return Err(Close {
                    reason: format!("peer error: {shown}"),
                    tell_peer: false,
                });
            }
            Ok(Some(Event::Message(value))) => {
                if let Err(why) = dispatch(value, inner, incoming).await {
                    buffer.drain(..at);
                    return Err(why.into());
                }
            }
            Err(e) => break Err(e),
        }
    };
    buffer.drain(..at);
    result.map_err(|e: BananaError| {
        tracing::warn!(peer = %inner.tub_id, "closing a Foolscap connection: {e}");
        Close::from(format!("BananaError: {e}"))
    })
}

async fn dispatch(value: Value, inner: &Arc<PeerInner>, incoming: &mpsc::Sender<IncomingCall>) -> Result<(), String> {
    let message = Message::from_value(value).map_err(|e| {
        tracing::warn!(peer = %inner.tub_id, "closing a Foolscap connection: {e}");
        e.to_string()
    })?;
    match message {
        Message::Call(call) => {
            let call = IncomingCall {
                call,
                outgoing: inner.outgoing.clone(),
            };
            // The broker's reference counting: we never forget an export, so only answer.
            if call.call.target == 0 && matches!(call.call.method.as_str(), "decref" | "decgift") {
                call.answer(Value::None).await;
                return Ok(());
            }
            if let Err(mpsc::error::SendError(call)) = incoming.send(call).await {
                call.fail(Failure::new("foolscap.tokens.Violation", "no such object"))
                    .await;
            }
            Ok(())
        }
        Message::Answer { req_id, value } => settle(inner, req_id, Ok(value)),
        Message::Error { req_id, failure } => settle(inner, req_id, Err(failure)),
    }
}

fn settle(inner: &Arc<PeerInner>, req_id: i64, result: Result<Value, Failure>) -> Result<(), String> {
    match lock(&inner.pending).remove(&req_id) {
        Some(waiter) => {
            let _ = waiter.send(result);
            Ok(())
        }
        None => {
            tracing::warn!(peer = %inner.tub_id, "closing a Foolscap connection: answer to unknown request {req_id}");
            Err(format!("answer to unknown request {req_id}"))
        }
    }
}
