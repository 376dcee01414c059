//! A storage server reached over Tahoe's HTTP storage protocol: [`StorageServer`] as HTTPS requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use reqwest::{Method, StatusCode};

use super::{tls, wire};
use crate::grid::crypto::random_bytes;
use crate::grid::hashutil::Hash;
use crate::grid::nurl::Nurl;
use crate::grid::storage::{
    Allocation, Error, LeaseSecrets, ReadTestWriteResult, ServerId, ServerVersion, ShareNum, StorageServer,
    TestAndWrite,
};
use crate::grid::uri::StorageIndex;

/// Connecting must succeed within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request fails when the server sends nothing for this long (Tahoe's client waits 60 s).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The most one ranged read asks for; longer reads are split (our servers answer at most 64 MiB).
const READ_CHUNK: u64 = 8 * 1024 * 1024;
/// The largest CBOR answer taken from a server (Tahoe's client limits them to 30 MiB too).
const MAX_CBOR_BODY: u64 = 30 * 1024 * 1024;

/// An immutable share this client is uploading.
struct Upload {
    secret: [u8; 20],
    /// The server answered 201: every byte is there and the share is closed.
    finished: bool,
}

/// One HTTP storage server.
pub struct HttpStorageClient {
    id: ServerId,
    base: String,
    authorization: String,
    http: reqwest::Client,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Upload>>,
}

impl fmt::Debug for HttpStorageClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The base URL and the authorization header hold no secret but the latter's swissnum: leave both out.
        write!(f, "HttpStorageClient({:?})", self.id)
    }
}

enum Secret<'a> {
    Renew(&'a Hash),
    Cancel(&'a Hash),
    Upload(&'a [u8]),
    WriteEnabler(&'a Hash),
}

impl Secret<'_> {
    fn header(&self) -> String {
        let (kind, bytes): (&str, &[u8]) = match self {
            Secret::Renew(h) => ("lease-renew-secret", &h[..]),
            Secret::Cancel(h) => ("lease-cancel-secret", &h[..]),
            Secret::Upload(b) => ("upload-secret", b),
            Secret::WriteEnabler(h) => ("write-enabler", &h[..]),
        };
        format!("{kind} {}", BASE64.encode(bytes))
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// `bytes FIRST-LAST/*` (or `/LENGTH`) as `(FIRST, LAST)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let (range, _total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl HttpStorageClient {
    /// A client for the server at `nurl`, known as `id`.
    pub fn new(id: ServerId, nurl: &Nurl) -> Result<Self, tls::TlsError> {
        let host = if nurl.host.contains(':') {
            format!("[{}]", nurl.host)
        } else {
            nurl.host.clone()
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&nurl.spki_hash)?)
            .http1_only()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_max_idle_per_host(16)
            // A redirect would carry the X-Tahoe-Authorization secrets to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .build()
            .map_err(|e| tls::TlsError::Identity(e.to_string()))?;
        Ok(HttpStorageClient {
            id,
            base: format!("https://{host}:{}/storage/v1", nurl.port),
            authorization: format!("Tahoe-LAFS {}", BASE64.encode(nurl.swissnum.as_bytes())),
            http,
            uploads: Mutex::default(),
        })
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request(&self, method: Method, path: &str, secrets: &[Secret<'_>]) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::ACCEPT, "application/cbor");
        for secret in secrets {
            request = request.header("X-Tahoe-Authorization", secret.header());
        }
        request
    }

    /// Sends a request; a transport failure means the server is unavailable.
    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        request.send().await.map_err(|e| self.unavailable(what, e))
    }

    fn unavailable(&self, what: &str, e: reqwest::Error) -> Error {
        // reqwest's error text names the URL: the storage index only, never the swissnum.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Error::Unavailable(format!("{} ({what}): {text}", self.id.nickname))
    }

    fn refused(&self, what: &str, status: StatusCode) -> Error {
        Error::Unavailable(format!("{} ({what}): HTTP {status}", self.id.nickname))
    }

    /// Reads a response body of at most `limit` bytes; a server sending more is refused
    /// before the excess is held in memory.
    async fn body(&self, what: &str, mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, Error> {
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(self.protocol(what, format!("answer longer than the {limit} bytes expected")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unavailable(what, e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(self.protocol(what, format!("answer longer than the {limit} bytes expected")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn protocol(&self, what: &str, why: String) -> Error {
        Error::Unavailable(format!("{} ({what}): {why}", self.id.nickname))
    }

    async fn cbor(&self, what: &str, response: reqwest::Response) -> Result<ciborium::value::Value, Error> {
        let bytes = self.body(what, response, MAX_CBOR_BODY).await?;
        wire::decode(&bytes).map_err(|e| Error::Unavailable(format!("{} ({what}): {e}", self.id.nickname)))
    }

    fn wire_error(&self, what: &str, e: wire::WireError) -> Error {
        Error::Unavailable(format!("{} ({what}): {e}", self.id.nickname))
    }

    fn cbor_body(request: reqwest::RequestBuilder, value: &ciborium::value::Value) -> reqwest::RequestBuilder {
        request
            .header(reqwest::header::CONTENT_TYPE, "application/cbor")
            .body(wire::encode(value))
    }

    async fn list(&self, kind: &str, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        let what = "list shares";
        let response = self
            .send(what, self.request(Method::GET, &format!("{kind}/{si}/shares"), &[]))
            .await?;
        if response.status() != StatusCode::OK {
            return Err(self.refused(what, response.status()));
        }
        let value = self.cbor(what, response).await?;
        wire::parse_share_set(&value).map_err(|e| self.wire_error(what, e))
    }

    /// Reads `len` bytes from `offset` (fewer at the share's end), in ranged requests of at most
    /// [`READ_CHUNK`] bytes.
    async fn read(&self, kind: &str, si: StorageIndex, n: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let mut data = Vec::new();
        let mut at = offset;
        let end = offset.saturating_add(len);
        while at < end {
            let want = (end - at).min(READ_CHUNK);
            let chunk = self.read_once(kind, si, n, at, want).await?;
            let got = chunk.len() as u64;
            data.extend_from_slice(&chunk);
            if got < want {
                break;
            }
            at += got;
        }
        Ok(data)
    }

    async fn read_once(
        &self,
        kind: &str,
        si: StorageIndex,
        n: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        let what = "read share";
        let last = offset + (len - 1);
        let request = self
            .request(Method::GET, &format!("{kind}/{si}/{n}"), &[])
            .header(reqwest::header::RANGE, format!("bytes={offset}-{last}"));
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((first, end)) if first == offset && end >= first && end <= last => {
                        let data = self.body(what, response, end - first + 1).await?;
                        if data.len() as u64 != end - first + 1 {
                            return Err(self.protocol(what, "body shorter than its Content-Range".into()));
                        }
                        Ok(data)
                    }
                    _ => Err(self.protocol(what, "206 without the Content-Range asked for".into())),
                }
            }
            // Past the end of the share.
            StatusCode::NO_CONTENT => Ok(Vec::new()),
            StatusCode::NOT_FOUND => Err(Error::NoSuchShare),
            // 200 (the whole share, range ignored) and 416 (a range it could not parse) are
            // protocol errors, as for Tahoe's client.
            status => Err(self.refused(what, status)),
        }
    }

    async fn corrupt(&self, kind: &str, si: StorageIndex, n: ShareNum, reason: &str) -> Result<(), Error> {
        let what = "report corrupt share";
        let request = Self::cbor_body(
            self.request(Method::POST, &format!("{kind}/{si}/{n}/corrupt"), &[]),
            &wire::corrupt_request(reason),
        );
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            status => Err(self.refused(what, status)),
        }
    }
}

#[async_trait]
impl StorageServer for HttpStorageClient {
    fn id(&self) -> &ServerId {
        &self.id
    }

    fn accepts_open_ended_shares(&self) -> bool {
        // An HTTP share is complete when its allocated size is written: no trimming at close.
        false
    }

    async fn version(&self) -> Result<ServerVersion, Error> {
        let what = "version";
        let response = self.send(what, self.request(Method::GET, "version", &[])).await?;
        if !response.status().is_success() {
            return Err(self.refused(what, response.status()));
        }
        let value = self.cbor(what, response).await?;
        wire::parse_version(&value).map_err(|e| self.wire_error(what, e))
    }

    async fn allocate_buckets(
        &self,
        si: StorageIndex,
        lease: LeaseSecrets,
        share_nums: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<Allocation, Error> {
        let what = "allocate shares";
        // One upload secret per allocate call, as Tahoe's client; shares this client is
        // still uploading keep theirs.
        let secret: [u8; 20] = random_bytes();
        let request = Self::cbor_body(
            self.request(
                Method::POST,
                &format!("immutable/{si}"),
                &[
                    Secret::Renew(&lease.renew),
                    Secret::Cancel(&lease.cancel),
                    Secret::Upload(&secret),
                ],
            ),
            &wire::allocate_request(share_nums, allocated_size),
        );
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED => {}
            StatusCode::INSUFFICIENT_STORAGE => return Err(Error::NoSpace),
            status => return Err(self.refused(what, status)),
        }
        let value = self.cbor(what, response).await?;
        let (already_have, allocated) = wire::parse_allocate_response(&value).map_err(|e| self.wire_error(what, e))?;
        if !allocated.is_subset(share_nums) {
            // Our writes would go to shares nobody asked for: this is not a storage server we can trust.
            return Err(self.protocol(what, "allocated shares that were not asked for".into()));
        }
        let mut uploads = self.uploads();
        for &n in &allocated {
            uploads.insert(
                (si, n),
                Upload {
                    secret,
                    finished: false,
                },
            );
        }
        Ok(Allocation {
            already_have,
            allocated,
        })
    }

    async fn write_share(&self, si: StorageIndex, n: ShareNum, offset: u64, data: Bytes) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let what = "write share";
        let secret = self
            .uploads()
            .get(&(si, n))
            .map(|u| u.secret)
            .ok_or(Error::NoSuchUpload)?;
        let last = offset + data.len() as u64 - 1;
        let request = self
            .request(
                Method::PATCH,
                &format!("immutable/{si}/{n}"),
                &[Secret::Upload(&secret)],
            )
            .header(reqwest::header::CONTENT_RANGE, format!("bytes {offset}-{last}/*"))
            .body(data);
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            StatusCode::CREATED => {
                if let Some(upload) = self.uploads().get_mut(&(si, n)) {
                    upload.finished = true;
                }
                Ok(())
            }
            StatusCode::NOT_FOUND => Err(Error::NoSuchUpload),
            StatusCode::RANGE_NOT_SATISFIABLE => Err(Error::OutOfBounds {
                offset,
                len: last + 1 - offset,
                allocated: 0,
            }),
            status => Err(self.refused(what, status)),
        }
    }

    async fn close_share(&self, si: StorageIndex, n: ShareNum) -> Result<(), Error> {
        // The server closed the share when its last byte arrived (201); nothing to send.
        match self.uploads().remove(&(si, n)) {
            Some(Upload { finished: true, .. }) => Ok(()),
            Some(_) => Err(Error::Unavailable(format!(
                "{}: share {n} is incomplete: bytes of its allocated size were never written",
                self.id.nickname
            ))),
            None => Err(Error::NoSuchUpload),
        }
    }

    async fn abort_share(&self, si: StorageIndex, n: ShareNum) -> Result<(), Error> {
        let what = "abort share";
        let Some(upload) = self.uploads().remove(&(si, n)) else {
            return Err(Error::NoSuchUpload);
        };
        let request = self.request(
            Method::PUT,
            &format!("immutable/{si}/{n}/abort"),
            &[Secret::Upload(&upload.secret)],
        );
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NoSuchUpload),
            status => Err(self.refused(what, status)),
        }
    }

    async fn list_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        self.list("immutable", si).await
    }

    async fn read_share(&self, si: StorageIndex, n: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        self.read("immutable", si, n, offset, len).await
    }

    async fn add_or_renew_lease(&self, si: StorageIndex, lease: LeaseSecrets) -> Result<(), Error> {
        let what = "renew lease";
        let request = self.request(
            Method::PUT,
            &format!("lease/{si}"),
            &[Secret::Renew(&lease.renew), Secret::Cancel(&lease.cancel)],
        );
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NoSuchShare),
            status => Err(self.refused(what, status)),
        }
    }

    async fn advise_corrupt_share(&self, si: StorageIndex, n: ShareNum, reason: &str) -> Result<(), Error> {
        self.corrupt("immutable", si, n, reason).await
    }

    async fn mutable_read_test_write(
        &self,
        si: StorageIndex,
        write_enabler: Hash,
        lease: LeaseSecrets,
        test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
        read_vector: Vec<(u64, u64)>,
    ) -> Result<ReadTestWriteResult, Error> {
        let what = "read-test-write";
        let request = Self::cbor_body(
            self.request(
                Method::POST,
                &format!("mutable/{si}/read-test-write"),
                &[
                    Secret::Renew(&lease.renew),
                    Secret::Cancel(&lease.cancel),
                    Secret::WriteEnabler(&write_enabler),
                ],
            ),
            &wire::read_test_write_request(&test_and_writes, &read_vector),
        );
        let response = self.send(what, request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(Error::BadWriteEnabler),
            status => return Err(self.refused(what, status)),
        }
        let value = self.cbor(what, response).await?;
        wire::parse_read_test_write_response(&value).map_err(|e| self.wire_error(what, e))
    }

    async fn list_mutable_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        self.list("mutable", si).await
    }

    async fn read_mutable_share(&self, si: StorageIndex, n: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        self.read("mutable", si, n, offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_read_with_or_without_a_length() {
        assert_eq!(parse_content_range("bytes 0-99/*"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 5-9/1000"), Some((5, 9)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/*"), None);
        assert_eq!(parse_content_range("bytes 0-99"), None);
    }
}
