//! The HTTPS storage server: Tahoe's HTTP storage protocol in front of a [`DiskServer`].
//!
//! Every request needs the swissnum (`Authorization: Tahoe-LAFS <base64>`); secrets come in
//! `X-Tahoe-Authorization` headers, exactly the set each route wants. Immutable shares are
//! complete (and closed on disk) when the last missing byte arrives, as the protocol has no
//! close call. Bad requests get 4xx answers; nothing a client sends stops the server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::wire;
use crate::grid::base32;
use crate::grid::storage::disk::{DiskServer, MAX_READ_TEST_WRITE_ANSWER};
use crate::grid::storage::{Error, LeaseSecrets, ShareNum, StorageServer};
use crate::grid::uri::StorageIndex;

#[doc(hidden)]
pub mod fuzzing;

/// A response body: small ones whole, share reads streamed.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// An upload nobody has written to for this long is dropped (Tahoe's server does the same).
const UPLOAD_IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Largest CBOR request body (Tahoe allows 2^48 for read-test-write; mutable shares here are small).
const MAX_CBOR_BODY: usize = 64 * 1024 * 1024;
/// Largest PATCH body (the 1.20 client sends about 1 MiB at a time).
const MAX_PATCH_BODY: usize = 64 * 1024 * 1024;
/// Largest range one read answers (Tahoe's client asks for far less); longer ones are short reads.
const MAX_READ: u64 = 64 * 1024 * 1024;
/// Largest share size an allocation may ask for.
const MAX_ALLOCATION: u64 = 1 << 56;
/// Chunk size of whole-share reads.
const READ_CHUNK: u64 = 1024 * 1024;
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

const CBOR: &str = "application/cbor";

/// An immutable share being uploaded over HTTP.
struct Upload {
    secret: Vec<u8>,
    allocated: u64,
    /// Written byte ranges `[begin, end)`, sorted and merged.
    written: Vec<(u64, u64)>,
    last_write: Instant,
    /// Its last byte arrived and it is being made durable: no more writes or aborts.
    closing: bool,
    /// Held from a write's checks to its record (and through the close), so a share's writes,
    /// its close and its abort happen one at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Upload(allocated={}, written={:?}, closing={})",
            self.allocated, self.written, self.closing
        )
    }
}

impl Upload {
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut missing = Vec::new();
        let mut at = 0;
        for &(begin, end) in &self.written {
            if begin > at {
                missing.push((at, begin));
            }
            at = at.max(end);
        }
        if at < self.allocated {
            missing.push((at, self.allocated));
        }
        missing
    }

    /// The parts of `[begin, end)` already written.
    fn overlaps(&self, begin: u64, end: u64) -> Vec<(u64, u64)> {
        self.written
            .iter()
            .filter_map(|&(b, e)| {
                let (b, e) = (b.max(begin), e.min(end));
                (b < e).then_some((b, e))
            })
            .collect()
    }

    fn record(&mut self, begin: u64, end: u64) {
        self.written.push((begin, end));
        self.written.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.written.len());
        for &(b, e) in &self.written {
            match merged.last_mut() {
                Some(last) if b <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((b, e)),
            }
        }
        self.written = merged;
        self.last_write = Instant::now();
    }
}

/// The storage service behind the HTTPS listener.
pub struct StorageService {
    backend: Arc<DiskServer>,
    /// The whole expected `Authorization` header value.
    authorization: Vec<u8>,
    application_version: String,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Upload>>,
}

/// A refused request: the status and a short plain-text reason (never a secret; a 5xx's is
/// logged, not sent).
struct Refusal(StatusCode, String);

impl std::fmt::Debug for StorageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization header holds the swissnum.
        write!(f, "StorageService({:?})", self.backend.id())
    }
}

impl Refusal {
    fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Refusal(status, why.into())
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NoSuchShare | Error::NoSuchUpload => StatusCode::NOT_FOUND,
            Error::OutOfBounds { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::BadWriteEnabler => StatusCode::UNAUTHORIZED,
            Error::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Refusal(status, e.to_string())
    }
}

impl From<wire::WireError> for Refusal {
    fn from(e: wire::WireError) -> Self {
        Refusal(StatusCode::BAD_REQUEST, e.to_string())
    }
}

type Answer = Result<Response<Body>, Refusal>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

fn respond(status: StatusCode, content_type: Option<&'static str>, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

fn cbor(status: StatusCode, value: &ciborium::value::Value) -> Response<Body> {
    respond(status, Some(CBOR), full(wire::encode(value)))
}

fn empty(status: StatusCode) -> Response<Body> {
    respond(status, None, full(Bytes::new()))
}

/// Which secrets a route takes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum SecretKind {
    LeaseRenew,
    LeaseCancel,
    Upload,
    WriteEnabler,
}

impl SecretKind {
    fn parse(name: &str) -> Option<SecretKind> {
        Some(match name {
            "lease-renew-secret" => SecretKind::LeaseRenew,
            "lease-cancel-secret" => SecretKind::LeaseCancel,
            "upload-secret" => SecretKind::Upload,
            "write-enabler" => SecretKind::WriteEnabler,
            _ => return None,
        })
    }
}

/// Reads the `X-Tahoe-Authorization` headers; exactly the `wanted` kinds must be present.
fn secrets(headers: &HeaderMap, wanted: &[SecretKind]) -> Result<BTreeMap<SecretKind, Vec<u8>>, Refusal> {
    let bad = |why: &str| Refusal::new(StatusCode::BAD_REQUEST, why);
    let mut found = BTreeMap::new();
    for value in headers.get_all("x-tahoe-authorization") {
        let value = value.to_str().map_err(|_| bad("unreadable X-Tahoe-Authorization"))?;
        let (kind, secret) = value
            .split_once(' ')
            .ok_or_else(|| bad("X-Tahoe-Authorization is `<kind> <base64>`"))?;
        let kind = SecretKind::parse(kind).ok_or_else(|| bad("unknown secret kind"))?;
        let secret = BASE64
            .decode(secret.trim())
            .map_err(|_| bad("a secret is not base64"))?;
        if secret.is_empty() {
            return Err(bad("empty secret"));
        }
        if matches!(
            kind,
            SecretKind::LeaseRenew | SecretKind::LeaseCancel | SecretKind::WriteEnabler
        ) && secret.len() != 32
        {
            return Err(bad("lease secrets and write enablers are 32 bytes"));
        }
        if found.insert(kind, secret).is_some() {
            return Err(bad("a secret given twice"));
        }
    }
    let mut expected: Vec<_> = wanted.to_vec();
    expected.sort();
    if found.keys().copied().collect::<Vec<_>>() != expected {
        return Err(bad("wrong set of X-Tahoe-Authorization secrets for this request"));
    }
    Ok(found)
}

fn hash32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

fn lease_secrets(found: &BTreeMap<SecretKind, Vec<u8>>) -> LeaseSecrets {
    LeaseSecrets {
        renew: hash32(&found[&SecretKind::LeaseRenew]),
        cancel: hash32(&found[&SecretKind::LeaseCancel]),
    }
}

/// `Range: bytes=a-b`, one closed range only.
fn parse_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, Refusal> {
    let Some(value) = headers.get(hyper::header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = || {
        Refusal::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "only one closed byte range is supported",
        )
    };
    let text = value.to_str().map_err(|_| unsatisfiable())?;
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(unsatisfiable)?;
    let first: u64 = first.trim().parse().map_err(|_| unsatisfiable())?;
    let last: u64 = last.trim().parse().map_err(|_| unsatisfiable())?;
    if last < first {
        return Err(unsatisfiable());
    }
    Ok(Some((first, last)))
}

/// `Content-Range: bytes a-b/*` (or `/total`) of a PATCH: `[a, b + 1)`.
fn parse_content_range(headers: &HeaderMap) -> Result<(u64, u64), Refusal> {
    let unusable = || {
        Refusal::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "a PATCH needs Content-Range: bytes a-b/*",
        )
    };
    let text = headers
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unusable)?;
    let (range, _total) = text
        .strip_prefix("bytes ")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(unusable)?;
    let (first, last) = range.split_once('-').ok_or_else(unusable)?;
    let first: u64 = first.trim().parse().map_err(|_| unusable())?;
    let last: u64 = last.trim().parse().map_err(|_| unusable())?;
    if last < first {
        return Err(unusable());
    }
    Ok((first, last.checked_add(1).ok_or_else(unusable)?))
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Refusal> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
        }
        Err(_) => Err(Refusal::new(StatusCode::BAD_REQUEST, "request body could not be read")),
    }
}

async fn read_cbor(request: Request<Incoming>, limit: usize) -> Result<ciborium::value::Value, Refusal> {
    if let Some(ct) = request.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if ct.split(';').next().map(str::trim) != Some(CBOR) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bodies are application/cbor",
            ));
        }
    }
    let bytes = read_body(request.into_body(), limit).await?;
    Ok(wire::decode(&bytes)?)
}

/// An upload a request presented the right secret for. The request checks it again once it
/// holds the turn: while it waited (for its body, or for the turn) the upload may have been
/// aborted, dropped as idle, or replaced by a new allocation of the same share.
struct CheckedUpload {
    secret: Vec<u8>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl CheckedUpload {
    /// The upload, if it is still the one checked; call with its turn held.
    fn current<'a>(
        &self,
        uploads: &'a mut HashMap<(StorageIndex, ShareNum), Upload>,
        key: (StorageIndex, ShareNum),
    ) -> Result<&'a mut Upload, Refusal> {
        let upload = uploads.get_mut(&key).ok_or_else(no_upload)?;
        if !bool::from(upload.secret.ct_eq(&self.secret)) {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong upload secret"));
        }
        // The same secret on a new upload (a client that aborted and allocated again) is
        // still not the upload this request was checked against.
        if !Arc::ptr_eq(&upload.turn, &self.turn) {
            return Err(no_upload());
        }
        Ok(upload)
    }
}

fn no_upload() -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "no upload of that share is in progress")
}

/// Which kind of share a route is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Immutable,
    Mutable,
}

impl Kind {
    /// The kind a route's first path segment names (`immutable` or `mutable`).
    fn of(segment: &str) -> Kind {
        if segment == "mutable" {
            Kind::Mutable
        } else {
            Kind::Immutable
        }
    }
}

impl StorageService {
    /// Serves `backend` to clients that present `swissnum`.
    pub fn new(backend: Arc<DiskServer>, swissnum: &str) -> Self {
        StorageService {
            backend,
            authorization: format!("Tahoe-LAFS {}", BASE64.encode(swissnum.as_bytes())).into_bytes(),
            application_version: format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION")),
            uploads: Mutex::default(),
        }
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request; every failure is an HTTP status, never a dropped connection.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let authorized = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(&self.authorization)));
        if !authorized {
            return respond(
                StatusCode::UNAUTHORIZED,
                Some("text/plain"),
                full("Wrong Authorization header"),
            );
        }
        match self.route(request).await {
            Ok(response) => response,
            Err(Refusal(status, why)) if status.is_server_error() => {
                // The reason names paths and system errors: the log gets it, the client only
                // learns that the fault is ours.
                tracing::warn!(%status, "storage request failed: {why}");
                let generic = status.canonical_reason().unwrap_or("Server Error");
                respond(status, Some("text/plain"), full(generic))
            }
            Err(Refusal(status, why)) => respond(status, Some("text/plain"), full(why)),
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Answer {
        let not_found = || Refusal::new(StatusCode::NOT_FOUND, "no such resource");
        let path = request.uri().path().to_string();
        let rest = path.strip_prefix("/storage/v1/").ok_or_else(not_found)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let si = |text: &str| base32::decode_array::<16>(text).map(StorageIndex).ok_or_else(not_found);
        let shnum = |text: &str| {
            text.parse::<ShareNum>()
                .ok()
                .filter(|n| *n < 256 && text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(not_found)
        };
        // As Tahoe's server: a route that takes no secrets refuses any it is given (a client
        // sending one is confused about what it is asking, and a secret should not go where
        // it is not needed).
        let no_secrets = |headers: &HeaderMap| secrets(headers, &[]).map(drop);
        let method = request.method().clone();
        match (&method, parts.as_slice()) {
            (&Method::GET, ["version"]) => {
                no_secrets(request.headers())?;
                self.version().await
            }
            (&Method::PUT, ["lease", s]) => self.renew_lease(si(s)?, request.headers()).await,
            (&Method::POST, ["immutable", s]) => self.allocate(si(s)?, request).await,
            (&Method::PATCH, ["immutable", s, n]) => self.write(si(s)?, shnum(n)?, request).await,
            (&Method::PUT, ["immutable", s, n, "abort"]) => self.abort(si(s)?, shnum(n)?, request.headers()).await,
            (&Method::POST, [kind @ ("immutable" | "mutable"), s, n, "corrupt"]) => {
                let (si, n) = (si(s)?, shnum(n)?);
                no_secrets(request.headers())?;
                self.corrupt(Kind::of(kind), si, n, request).await
            }
            (&Method::GET, [kind @ ("immutable" | "mutable"), s, "shares"]) => {
                let si = si(s)?;
                no_secrets(request.headers())?;
                self.list(Kind::of(kind), si).await
            }
            (&Method::GET, [kind @ ("immutable" | "mutable"), s, n]) => {
                let (si, n) = (si(s)?, shnum(n)?);
                no_secrets(request.headers())?;
                self.read(Kind::of(kind), si, n, request.headers()).await
            }
            (&Method::POST, ["mutable", s, "read-test-write"]) => self.read_test_write(si(s)?, request).await,
            _ => Err(not_found()),
        }
    }

    async fn version(&self) -> Answer {
        let version = self.backend.version().await?;
        Ok(cbor(
            StatusCode::OK,
            &wire::version_body(&version, &self.application_version),
        ))
    }

    async fn renew_lease(&self, si: StorageIndex, headers: &HeaderMap) -> Answer {
        let found = secrets(headers, &[SecretKind::LeaseRenew, SecretKind::LeaseCancel])?;
        self.backend.add_or_renew_lease(si, lease_secrets(&found)).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    async fn allocate(&self, si: StorageIndex, request: Request<Incoming>) -> Answer {
        let found = secrets(
            request.headers(),
            &[SecretKind::LeaseRenew, SecretKind::LeaseCancel, SecretKind::Upload],
        )?;
        let (wanted, allocated_size) = wire::parse_allocate_request(&read_cbor(request, 8192).await?)?;
        if allocated_size > MAX_ALLOCATION {
            return Err(Error::NoSpace.into());
        }
        let upload_secret = found[&SecretKind::Upload].clone();
        self.drop_idle_uploads().await;
        // Shares this upload already holds stay allocated; those another upload is writing are
        // in neither set (as Tahoe answers).
        let (mine, others): (BTreeSet<ShareNum>, BTreeSet<ShareNum>) = {
            let uploads = self.uploads();
            let busy: Vec<_> = wanted
                .iter()
                .filter_map(|&n| {
                    uploads
                        .get(&(si, n))
                        .map(|u| (n, bool::from(u.secret.ct_eq(&upload_secret))))
                })
                .collect();
            (
                busy.iter().filter(|(_, same)| *same).map(|(n, _)| *n).collect(),
                busy.iter().filter(|(_, same)| !*same).map(|(n, _)| *n).collect(),
            )
        };
        let ask: BTreeSet<ShareNum> = wanted
            .difference(&mine)
            .filter(|n| !others.contains(n))
            .copied()
            .collect();
        let mut allocation = if ask.is_empty() {
            Default::default()
        } else {
            self.backend
                .allocate_buckets(si, lease_secrets(&found), &ask, allocated_size)
                .await?
        };
        {
            let mut uploads = self.uploads();
            for &n in &allocation.allocated {
                uploads.insert(
                    (si, n),
                    Upload {
                        secret: upload_secret.clone(),
                        allocated: allocated_size,
                        written: Vec::new(),
                        last_write: Instant::now(),
                        closing: false,
                        turn: Arc::default(),
                    },
                );
            }
        }
        allocation.allocated.extend(mine);
        Ok(cbor(
            StatusCode::OK,
            &wire::allocate_response(&allocation.already_have, &allocation.allocated),
        ))
    }

    /// Aborts uploads nobody has written to for [`UPLOAD_IDLE_LIMIT`].
    async fn drop_idle_uploads(&self) {
        let idle: Vec<_> = {
            let mut uploads = self.uploads();
            let candidates: Vec<_> = uploads
                .iter()
                .filter(|(_, u)| !u.closing && u.last_write.elapsed() > UPLOAD_IDLE_LIMIT)
                .map(|(k, _)| *k)
                .collect();
            let mut idle = Vec::new();
            for key in candidates {
                // Dropped only with its turn held, as an abort is: a request holding the turn is
                // using the upload right now, so it is not idle.
                let Some(turn) = uploads.get(&key).and_then(|u| u.turn.clone().try_lock_owned().ok()) else {
                    continue;
                };
                uploads.remove(&key);
                idle.push((key, turn));
            }
            idle
        };
        for ((si, n), _turn) in idle {
            let _ = self.backend.abort_share(si, n).await;
        }
    }

    /// Checks the upload secret; returns it and the share's turn lock.
    fn check_upload_secret(
        &self,
        si: StorageIndex,
        n: ShareNum,
        headers: &HeaderMap,
    ) -> Result<CheckedUpload, Refusal> {
        let mut found = secrets(headers, &[SecretKind::Upload])?;
        let secret = found.remove(&SecretKind::Upload).unwrap_or_default();
        let uploads = self.uploads();
        let upload = uploads.get(&(si, n)).ok_or_else(no_upload)?;
        if !bool::from(upload.secret.ct_eq(&secret)) {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong upload secret"));
        }
        Ok(CheckedUpload {
            secret,
            turn: upload.turn.clone(),
        })
    }

    async fn write(&self, si: StorageIndex, n: ShareNum, request: Request<Incoming>) -> Answer {
        let checked = self.check_upload_secret(si, n, request.headers())?;
        let (begin, end) = parse_content_range(request.headers())?;
        let data = read_body(request.into_body(), MAX_PATCH_BODY).await?;
        if data.len() as u64 != end - begin {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body length does not match Content-Range",
            ));
        }
        // One write (or close, or abort) of a share at a time, from the checks to the record.
        let _turn = checked.turn.lock().await;
        let overlaps = {
            let mut uploads = self.uploads();
            let upload = checked.current(&mut uploads, (si, n))?;
            if upload.closing {
                return Err(no_upload());
            }
            if end > upload.allocated {
                return Err(Refusal::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "write past the allocated size",
                ));
            }
            upload.overlaps(begin, end)
        };
        // Rewriting bytes is fine when they are the same bytes (a retried request).
        for (b, e) in overlaps {
            let have = self.backend.read_incoming(si, n, b, (e - b) as usize).await?;
            if have[..] != data[(b - begin) as usize..(e - begin) as usize] {
                return Err(Refusal::new(StatusCode::CONFLICT, "write overlaps different bytes"));
            }
        }
        self.backend.write_share(si, n, begin, data).await?;
        let missing = {
            let mut uploads = self.uploads();
            let upload = checked.current(&mut uploads, (si, n))?;
            upload.record(begin, end);
            let missing = upload.missing();
            upload.closing = missing.is_empty();
            missing
        };
        if !missing.is_empty() {
            return Ok(cbor(StatusCode::OK, &wire::required_ranges(&missing)));
        }
        // The last byte: the share is made durable before anyone hears it is complete; until
        // then it stays in the map (closing), so no allocation or abort can touch it.
        let closed = self.backend.close_share(si, n).await;
        self.uploads().remove(&(si, n));
        closed?;
        Ok(cbor(StatusCode::CREATED, &wire::required_ranges(&[])))
    }

    async fn abort(&self, si: StorageIndex, n: ShareNum, headers: &HeaderMap) -> Answer {
        let checked = match self.check_upload_secret(si, n, headers) {
            Ok(checked) => checked,
            Err(Refusal(StatusCode::NOT_FOUND, _)) => return Err(self.nothing_to_abort(si, n).await),
            Err(other) => return Err(other),
        };
        let _turn = checked.turn.lock().await;
        let removed = {
            let mut uploads = self.uploads();
            match checked.current(&mut uploads, (si, n)).map(|upload| upload.closing) {
                Ok(true) => Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "that share is completing")),
                Ok(false) => Ok(uploads.remove(&(si, n))),
                Err(refusal) => Err(refusal),
            }
        };
        match removed {
            Ok(Some(_)) => {
                self.backend.abort_share(si, n).await?;
                Ok(empty(StatusCode::OK))
            }
            // Completed (or aborted) while this request waited for the turn.
            Ok(None) | Err(Refusal(StatusCode::NOT_FOUND, _)) => Err(self.nothing_to_abort(si, n).await),
            Err(other) => Err(other),
        }
    }

    /// Why an abort found no upload: 405 if the share is complete, else 404.
    async fn nothing_to_abort(&self, si: StorageIndex, n: ShareNum) -> Refusal {
        match self.backend.list_shares(si).await {
            Ok(shares) if shares.contains(&n) => {
                Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "that share is already complete")
            }
            Ok(_) => no_upload(),
            Err(e) => e.into(),
        }
    }

    async fn corrupt(&self, kind: Kind, si: StorageIndex, n: ShareNum, request: Request<Incoming>) -> Answer {
        let reason = wire::parse_corrupt_request(&read_cbor(request, 32_768).await?)?;
        let shares = match kind {
            Kind::Immutable => self.backend.list_shares(si).await?,
            Kind::Mutable => self.backend.list_mutable_shares(si).await?,
        };
        if !shares.contains(&n) {
            return Err(Error::NoSuchShare.into());
        }
        self.backend.advise_corrupt_share(si, n, &reason).await?;
        Ok(empty(StatusCode::OK))
    }

    async fn list(&self, kind: Kind, si: StorageIndex) -> Answer {
        let shares = match kind {
            Kind::Immutable => self.backend.list_shares(si).await?,
            Kind::Mutable => self.backend.list_mutable_shares(si).await?,
        };
        Ok(cbor(StatusCode::OK, &wire::share_set(&shares)))
    }

    async fn read_range(
        &self,
        kind: Kind,
        si: StorageIndex,
        n: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        match kind {
            Kind::Immutable => self.backend.read_share(si, n, offset, len).await,
            Kind::Mutable => self.backend.read_mutable_share(si, n, offset, len).await,
        }
    }

    async fn read(&self, kind: Kind, si: StorageIndex, n: ShareNum, headers: &HeaderMap) -> Answer {
        let Some((first, last)) = parse_range(headers)? else {
            // The whole share, streamed: the first chunk is read now, so a missing share is a 404.
            let head = self.read_range(kind, si, n, 0, READ_CHUNK).await?;
            let backend = self.backend.clone();
            let start = head.len() as u64;
            let more = (head.len() as u64 == READ_CHUNK).then_some(start);
            let rest = futures::stream::unfold(more, move |at| {
                let backend = backend.clone();
                async move {
                    let at = at?;
                    let chunk = match kind {
                        Kind::Immutable => backend.read_share(si, n, at, READ_CHUNK).await,
                        Kind::Mutable => backend.read_mutable_share(si, n, at, READ_CHUNK).await,
                    };
                    match chunk {
                        Ok(chunk) if chunk.is_empty() => None,
                        Ok(chunk) => {
                            let next = (chunk.len() as u64 == READ_CHUNK).then_some(at + READ_CHUNK);
                            Some((Ok(Frame::data(Bytes::from(chunk))), next))
                        }
                        Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                    }
                }
            });
            let body = futures::stream::once(async move { Ok(Frame::data(Bytes::from(head))) }).chain(rest);
            use futures::StreamExt as _;
            return Ok(respond(
                StatusCode::OK,
                Some("application/octet-stream"),
                BodyExt::boxed_unsync(StreamBody::new(body)),
            ));
        };
        let len = (last - first).saturating_add(1).min(MAX_READ);
        let data = self.read_range(kind, si, n, first, len).await?;
        if data.is_empty() {
            return Ok(empty(StatusCode::NO_CONTENT));
        }
        let end = first + data.len() as u64 - 1;
        let mut response = respond(
            StatusCode::PARTIAL_CONTENT,
            Some("application/octet-stream"),
            full(data),
        );
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{end}/*")) {
            response.headers_mut().insert(CONTENT_RANGE, value);
        }
        Ok(response)
    }

    async fn read_test_write(&self, si: StorageIndex, request: Request<Incoming>) -> Answer {
        let found = secrets(
            request.headers(),
            &[
                SecretKind::WriteEnabler,
                SecretKind::LeaseRenew,
                SecretKind::LeaseCancel,
            ],
        )?;
        let (test_and_writes, read_vector) =
            wire::parse_read_test_write_request(&read_cbor(request, MAX_CBOR_BODY).await?)?;
        let result = self
            .backend
            .mutable_read_test_write(
                si,
                hash32(&found[&SecretKind::WriteEnabler]),
                lease_secrets(&found),
                test_and_writes,
                read_vector,
            )
            .await
            .map_err(|e| match e {
                // The request asked for too much at once: its fault, not the share's size (a 416
                // would tell the client to retry a different range of the same share).
                Error::OutOfBounds { .. } => Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the reads would answer more than {MAX_READ_TEST_WRITE_ANSWER} bytes"),
                ),
                other => other.into(),
            })?;
        Ok(cbor(StatusCode::OK, &wire::read_test_write_response(&result)))
    }
}

/// Serves `service` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: Arc<StorageService>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("storage accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "storage TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "storage TLS handshake timed out");
                    return;
                }
            };
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), handler);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "storage connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::spki;
    use crate::grid::storage::TestAndWrite;
    use crate::grid::storage::http::tls;

    const SWISSNUM: &str = "loopback-swissnum";

    /// A storage server on 127.0.0.1:0 over a temporary directory, and a client pinned to its
    /// certificate: requests go through TLS, hyper and the routing exactly as a Tahoe client's do.
    struct Harness {
        base: String,
        addr: std::net::SocketAddr,
        pin: String,
        http: reqwest::Client,
        service: Arc<StorageService>,
        _stop: tokio::sync::oneshot::Sender<()>,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        async fn start() -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let backend = Arc::new(DiskServer::open(dir.path(), "loopback").unwrap());
            let (certificate, key) = tls::parse_identity_pem(&tls::generate_identity_pem().unwrap()).unwrap();
            let pin = spki::certificate_spki_hash(&certificate).unwrap();
            let config = Arc::new(tls::server_config(certificate, key).unwrap());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let service = Arc::new(StorageService::new(backend, SWISSNUM));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(serve(listener, config, service.clone(), async move {
                let _ = stopped.await;
            }));
            let http = reqwest::Client::builder()
                .use_preconfigured_tls(tls::client_config(&pin).unwrap())
                .http1_only()
                .no_proxy()
                .build()
                .unwrap();
            Harness {
                base: format!("https://{addr}/storage/v1"),
                addr,
                pin,
                http,
                service,
                _stop: stop,
                _dir: dir,
            }
        }

        fn authorization() -> String {
            format!("Tahoe-LAFS {}", BASE64.encode(SWISSNUM))
        }

        fn request(&self, method: Method, path: &str, secrets: &[(&str, &[u8])]) -> reqwest::RequestBuilder {
            let mut request = self
                .http
                .request(method, format!("{}/{path}", self.base))
                .header(hyper::header::AUTHORIZATION, Self::authorization());
            for (kind, secret) in secrets {
                request = request.header("X-Tahoe-Authorization", format!("{kind} {}", BASE64.encode(secret)));
            }
            request
        }

        fn cbor_request(
            &self,
            method: Method,
            path: &str,
            secrets: &[(&str, &[u8])],
            body: &ciborium::value::Value,
        ) -> reqwest::RequestBuilder {
            self.request(method, path, secrets)
                .header(CONTENT_TYPE, CBOR)
                .body(wire::encode(body))
        }

        /// A TLS connection to the server, for requests sent a piece at a time.
        async fn raw_connection(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls::client_config(&self.pin).unwrap()));
            let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
            connector.connect(name, tcp).await.unwrap()
        }

        async fn allocate(&self, si: StorageIndex, upload_secret: &[u8], size: u64) -> BTreeSet<ShareNum> {
            let secrets: [(&str, &[u8]); 3] = [
                ("lease-renew-secret", &[1; 32]),
                ("lease-cancel-secret", &[2; 32]),
                ("upload-secret", upload_secret),
            ];
            let body = wire::allocate_request(&[0].into(), size);
            let response = self
                .cbor_request(Method::POST, &format!("immutable/{si}"), &secrets, &body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = wire::decode(&response.bytes().await.unwrap()).unwrap();
            wire::parse_allocate_response(&body).unwrap().1
        }

        async fn patch(&self, si: StorageIndex, upload_secret: &[u8], data: &'static [u8]) -> StatusCode {
            let range = format!("bytes 0-{}/*", data.len() - 1);
            self.request(
                Method::PATCH,
                &format!("immutable/{si}/0"),
                &[("upload-secret", upload_secret)],
            )
            .header(CONTENT_RANGE, range)
            .body(data)
            .send()
            .await
            .unwrap()
            .status()
        }

        /// Waits until `count` holders share share 0's turn lock (a request that checked its
        /// upload secret holds one).
        async fn wait_for_turn_holders(&self, si: StorageIndex, count: usize) {
            let poll = async {
                loop {
                    let holders = self.service.uploads().get(&(si, 0)).map(|u| Arc::strong_count(&u.turn));
                    if holders >= Some(count) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            // Without the request holding the turn the test still runs on, and shows what happens.
            let _ = tokio::time::timeout(Duration::from_secs(5), poll).await;
        }

        async fn read_test_write(
            &self,
            si: StorageIndex,
            test_and_writes: &BTreeMap<ShareNum, TestAndWrite>,
            read_vector: &[(u64, u64)],
        ) -> reqwest::Response {
            let secrets: [(&str, &[u8]); 3] = [
                ("write-enabler", &[9; 32]),
                ("lease-renew-secret", &[1; 32]),
                ("lease-cancel-secret", &[2; 32]),
            ];
            let body = wire::read_test_write_request(test_and_writes, read_vector);
            self.cbor_request(Method::POST, &format!("mutable/{si}/read-test-write"), &secrets, &body)
                .send()
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn a_read_test_write_answering_more_than_the_cap_is_a_bad_request() {
        let harness = Harness::start().await;
        let si = StorageIndex([3; 16]);
        let half = MAX_READ_TEST_WRITE_ANSWER / 2;
        // Two sparse shares of half the cap each.
        let grow = TestAndWrite {
            tests: vec![],
            writes: vec![(half - 1, b"z".to_vec())],
            new_length: None,
        };
        let shares = [(0, grow.clone()), (1, grow)].into();
        let created = harness.read_test_write(si, &shares, &[]).await;
        assert_eq!(created.status(), StatusCode::OK);
        let answered = harness.read_test_write(si, &BTreeMap::new(), &[(half - 4, 4)]).await;
        assert_eq!(answered.status(), StatusCode::OK);
        let body = wire::decode(&answered.bytes().await.unwrap()).unwrap();
        let result = wire::parse_read_test_write_response(&body).unwrap();
        assert_eq!(result.data[&1], vec![b"\0\0\0z".to_vec()]);
        let refused = harness
            .read_test_write(si, &BTreeMap::new(), &[(0, half), (half - 1, 1)])
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn written_ranges_merge_and_report_what_is_missing() {
        let mut upload = Upload {
            secret: vec![1],
            allocated: 100,
            written: Vec::new(),
            last_write: Instant::now(),
            closing: false,
            turn: Arc::default(),
        };
        assert_eq!(upload.missing(), vec![(0, 100)]);
        upload.record(50, 60);
        upload.record(0, 10);
        assert_eq!(upload.missing(), vec![(10, 50), (60, 100)]);
        assert_eq!(upload.overlaps(5, 55), vec![(5, 10), (50, 55)]);
        upload.record(10, 50);
        upload.record(60, 100);
        assert!(upload.missing().is_empty());
        assert_eq!(upload.written, vec![(0, 100)]);
    }

    #[test]
    fn ranges_parse_as_tahoe_sends_them() {
        let mut headers = HeaderMap::new();
        headers.insert(hyper::header::RANGE, HeaderValue::from_static("bytes=10-19"));
        assert_eq!(parse_range(&headers).ok().flatten(), Some((10, 19)));
        for bad in ["bytes=10-", "bytes=-10", "bytes=1-2,4-5", "bytes=9-3", "items=1-2"] {
            headers.insert(hyper::header::RANGE, HeaderValue::from_static(bad));
            assert!(parse_range(&headers).is_err(), "{bad}");
        }
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 50-99/*"));
        assert_eq!(parse_content_range(&headers).ok(), Some((50, 100)));
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 50-99/100"));
        assert_eq!(parse_content_range(&headers).ok(), Some((50, 100)));
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 50-99"));
        assert!(parse_content_range(&headers).is_err());
    }

    #[test]
    fn secrets_must_be_exactly_the_wanted_set() {
        let secret = |kind: &str, len: usize| {
            HeaderValue::from_str(&format!("{kind} {}", BASE64.encode(vec![7u8; len]))).unwrap()
        };
        let mut headers = HeaderMap::new();
        headers.append("x-tahoe-authorization", secret("upload-secret", 20));
        assert!(secrets(&headers, &[SecretKind::Upload]).is_ok());
        assert!(secrets(&headers, &[SecretKind::Upload, SecretKind::LeaseRenew]).is_err());
        headers.append("x-tahoe-authorization", secret("lease-renew-secret", 31));
        assert!(
            secrets(&headers, &[SecretKind::Upload, SecretKind::LeaseRenew]).is_err(),
            "31-byte lease secret"
        );
        let mut headers = HeaderMap::new();
        headers.append("x-tahoe-authorization", secret("upload-secret", 20));
        headers.append("x-tahoe-authorization", secret("upload-secret", 20));
        assert!(secrets(&headers, &[SecretKind::Upload]).is_err(), "twice");
        let mut headers = HeaderMap::new();
        headers.append("x-tahoe-authorization", secret("mystery", 20));
        assert!(secrets(&headers, &[]).is_err());
    }

    #[tokio::test]
    async fn a_patch_whose_upload_was_replaced_while_its_body_arrived_writes_nothing() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let harness = Harness::start().await;
        let si = StorageIndex([4; 16]);
        let (first, second) = ([1u8; 20], [2u8; 20]);
        assert_eq!(harness.allocate(si, &first, 10).await, [0].into());
        // The first uploader's PATCH: headers and half the body, the rest held back.
        let mut slow = harness.raw_connection().await;
        let head = format!(
            "PATCH /storage/v1/immutable/{si}/0 HTTP/1.1\r\nHost: storage\r\nAuthorization: {}\r\n\
             X-Tahoe-Authorization: upload-secret {}\r\nContent-Range: bytes 0-9/*\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\n01234",
            Harness::authorization(),
            BASE64.encode(first)
        );
        slow.write_all(head.as_bytes()).await.unwrap();
        slow.flush().await.unwrap();
        harness.wait_for_turn_holders(si, 2).await;
        // Meanwhile the upload is aborted and another uploader allocates the share.
        let abort = harness
            .request(
                Method::PUT,
                &format!("immutable/{si}/0/abort"),
                &[("upload-secret", &first)],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(abort.status(), StatusCode::OK);
        assert_eq!(harness.allocate(si, &second, 10).await, [0].into());
        slow.write_all(b"56789").await.unwrap();
        slow.flush().await.unwrap();
        let mut answer = Vec::new();
        slow.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 401") || answer.starts_with("HTTP/1.1 404"),
            "{answer}"
        );
        // The new upload is untouched: its own different bytes are no conflict.
        assert_eq!(harness.patch(si, &second, b"abcdefghij").await, StatusCode::CREATED);
        assert_eq!(
            harness.service.backend.read_share(si, 0, 0, 100).await.unwrap(),
            b"abcdefghij"
        );
    }

    #[tokio::test]
    async fn an_abort_waiting_for_its_turn_does_not_abort_the_upload_that_replaced_its_own() {
        let harness = Harness::start().await;
        let si = StorageIndex([5; 16]);
        let (first, second) = ([1u8; 20], [2u8; 20]);
        assert_eq!(harness.allocate(si, &first, 10).await, [0].into());
        // Another request of the first upload holds the turn, so this abort waits for it.
        let turn = harness.service.uploads()[&(si, 0)].turn.clone();
        let held = turn.clone().lock_owned().await;
        let mut headers = HeaderMap::new();
        let secret = format!("upload-secret {}", BASE64.encode(first));
        headers.append("x-tahoe-authorization", HeaderValue::from_str(&secret).unwrap());
        let service = harness.service.clone();
        let waiting = tokio::spawn(async move {
            match service.abort(si, 0, &headers).await {
                Ok(response) => response.status(),
                Err(Refusal(status, _)) => status,
            }
        });
        // The map's, ours, the guard's and the waiting abort's.
        harness.wait_for_turn_holders(si, 4).await;
        // The holder is an abort of the same upload: it does what abort does under the turn.
        harness.service.uploads().remove(&(si, 0));
        harness.service.backend.abort_share(si, 0).await.unwrap();
        // A new allocation of the share takes its place before the waiting abort runs.
        assert_eq!(harness.allocate(si, &second, 10).await, [0].into());
        drop(held);
        let status = waiting.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::NOT_FOUND,
            "{status}"
        );
        assert_eq!(harness.patch(si, &second, b"abcdefghij").await, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn an_idle_upload_is_not_dropped_while_a_request_holds_its_turn() {
        let harness = Harness::start().await;
        let si = StorageIndex([6; 16]);
        assert_eq!(harness.allocate(si, &[1; 20], 10).await, [0].into());
        let Some(long_ago) = Instant::now().checked_sub(UPLOAD_IDLE_LIMIT + Duration::from_secs(1)) else {
            // The monotonic clock started too recently to fake an idle upload.
            return;
        };
        let turn = {
            let mut uploads = harness.service.uploads();
            let upload = uploads.get_mut(&(si, 0)).unwrap();
            upload.last_write = long_ago;
            upload.turn.clone()
        };
        let held = turn.lock_owned().await;
        harness.service.drop_idle_uploads().await;
        assert!(harness.service.uploads().contains_key(&(si, 0)));
        drop(held);
        harness.service.drop_idle_uploads().await;
        assert!(!harness.service.uploads().contains_key(&(si, 0)));
        assert!(matches!(
            harness.service.backend.read_incoming(si, 0, 0, 1).await,
            Err(Error::NoSuchUpload)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_allocations_over_http_exactly_one_gets_the_share() {
        let harness = Harness::start().await;
        let si = StorageIndex([7; 16]);
        let secrets: Vec<[u8; 20]> = (1..=8).map(|n| [n; 20]).collect();
        let answers = futures::future::join_all(secrets.iter().map(|secret| harness.allocate(si, secret, 10))).await;
        let winners: Vec<_> = secrets
            .iter()
            .zip(&answers)
            .filter(|(_, allocated)| allocated.contains(&0))
            .map(|(secret, _)| *secret)
            .collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        for loser in secrets.iter().filter(|s| **s != winners[0]) {
            assert_eq!(harness.patch(si, loser, b"0123456789").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(harness.patch(si, &winners[0], b"0123456789").await, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn the_immutable_read_route_answers_404_for_a_mutable_truncated_or_corrupt_share() {
        let harness = Harness::start().await;
        let get = |si: StorageIndex, range: Option<&'static str>| {
            let mut request = harness.request(Method::GET, &format!("immutable/{si}/0"), &[]);
            if let Some(range) = range {
                request = request.header(hyper::header::RANGE, range);
            }
            async move { request.send().await.unwrap().status() }
        };
        let mutable = StorageIndex([8; 16]);
        let create = TestAndWrite {
            tests: vec![],
            writes: vec![(0, b"a mutable share".to_vec())],
            new_length: None,
        };
        let created = harness.read_test_write(mutable, &[(0, create)].into(), &[]).await;
        assert_eq!(created.status(), StatusCode::OK);
        assert_eq!(get(mutable, None).await, StatusCode::NOT_FOUND);
        assert_eq!(get(mutable, Some("bytes=0-9")).await, StatusCode::NOT_FOUND);
        let as_mutable = harness.request(Method::GET, &format!("mutable/{mutable}/0"), &[]);
        assert_eq!(as_mutable.send().await.unwrap().status(), StatusCode::OK);

        let broken = |si: StorageIndex, bytes: &[u8]| {
            let dir = harness.service.backend.share_dir(si);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("0"), bytes).unwrap();
        };
        let truncated = StorageIndex([9; 16]);
        broken(truncated, &[0, 0, 0, 2, 0]);
        assert_eq!(get(truncated, None).await, StatusCode::NOT_FOUND);
        assert_eq!(get(truncated, Some("bytes=0-9")).await, StatusCode::NOT_FOUND);
        // A version 2 header claiming 1000 leases, on a file with room for none.
        let corrupt = StorageIndex([10; 16]);
        broken(
            corrupt,
            &[0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0x03, 0xe8, b'd', b'a', b't', b'a'],
        );
        assert_eq!(get(corrupt, None).await, StatusCode::NOT_FOUND);
        assert_eq!(get(corrupt, Some("bytes=0-3")).await, StatusCode::NOT_FOUND);
        // The same bytes with the one lease they have room for are a share.
        let mut whole = vec![0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1, b'd', b'a', b't', b'a'];
        whole.extend_from_slice(&[0; 72]);
        let fine = StorageIndex([11; 16]);
        broken(fine, &whole);
        let response = harness
            .request(Method::GET, &format!("immutable/{fine}/0"), &[])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&response.bytes().await.unwrap()[..], b"data");
    }

    #[tokio::test]
    async fn routes_that_take_no_secrets_refuse_any_given() {
        let harness = Harness::start().await;
        let si = StorageIndex([12; 16]);
        assert_eq!(harness.allocate(si, &[1; 20], 4).await, [0].into());
        assert_eq!(harness.patch(si, &[1; 20], b"data").await, StatusCode::CREATED);
        let create = TestAndWrite {
            tests: vec![],
            writes: vec![(0, b"mutable".to_vec())],
            new_length: None,
        };
        let created = harness.read_test_write(si, &[(1, create)].into(), &[]).await;
        assert_eq!(created.status(), StatusCode::OK);
        let corrupt = wire::corrupt_request("bad hash");
        let routes = [
            (Method::GET, "version".to_string(), None),
            (Method::GET, format!("immutable/{si}/shares"), None),
            (Method::GET, format!("mutable/{si}/shares"), None),
            (Method::GET, format!("immutable/{si}/0"), None),
            (Method::GET, format!("mutable/{si}/1"), None),
            (Method::POST, format!("immutable/{si}/0/corrupt"), Some(&corrupt)),
            (Method::POST, format!("mutable/{si}/1/corrupt"), Some(&corrupt)),
        ];
        let unexpected: [(&str, &[u8]); 1] = [("lease-renew-secret", &[1; 32])];
        for (method, path, body) in routes {
            for secrets in [&[][..], &unexpected[..]] {
                let request = match body {
                    Some(body) => harness.cbor_request(method.clone(), &path, secrets, body),
                    None => harness.request(method.clone(), &path, secrets),
                };
                let status = request.send().await.unwrap().status();
                if secrets.is_empty() {
                    assert!(status.is_success(), "{method} {path}: {status}");
                } else {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} with a secret");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_server_error_answers_a_generic_body() {
        let harness = Harness::start().await;
        let si = StorageIndex([13; 16]);
        // A file where the storage index's directory should be: listing it fails on our side.
        let dir = harness.service.backend.share_dir(si);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let response = harness
            .request(Method::GET, &format!("immutable/{si}/shares"), &[])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.text().await.unwrap();
        assert_eq!(body, "Internal Server Error");
        // Client errors still say what was wrong.
        let response = harness
            .request(
                Method::GET,
                &format!("immutable/{si}/shares"),
                &[("upload-secret", &[1; 20])],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.unwrap().contains("secrets"));
    }
}
