//! The routes for shares of either kind: list, read, corruption advisories, and lease renewal.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_RANGE, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};

use super::messages::{Answer, SecretKind, cbor, empty, full, lease_secrets, parse_range, read_cbor, respond, secrets};
use super::service::StorageService;
use crate::grid::storage::http::wire;
use crate::grid::storage::{Error, ShareNum, StorageServer};
use crate::grid::uri::StorageIndex;

/// Largest range one read answers (Tahoe's client asks for far less); longer ones are short reads.
const MAX_READ: u64 = 64 * 1024 * 1024;
/// Chunk size of whole-share reads.
const READ_CHUNK: u64 = 1024 * 1024;

/// Which kind of share a route is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Immutable,
    Mutable,
}

impl Kind {
    /// The kind a route's first path segment names (`immutable` or `mutable`).
    pub(super) fn of(segment: &str) -> Kind {
        if segment == "mutable" {
            Kind::Mutable
        } else {
            Kind::Immutable
        }
    }
}

impl StorageService {
    pub(super) async fn renew_lease(&self, si: StorageIndex, headers: &HeaderMap) -> Answer {
        let found = secrets(headers, &[SecretKind::LeaseRenew, SecretKind::LeaseCancel])?;
        self.backend.add_or_renew_lease(si, lease_secrets(&found)).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    pub(super) async fn corrupt(
        &self,
        kind: Kind,
        si: StorageIndex,
        n: ShareNum,
        request: Request<Incoming>,
    ) -> Answer {
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

    pub(super) async fn list(&self, kind: Kind, si: StorageIndex) -> Answer {
        let shares = match kind {
            Kind::Immutable => self.backend.list_shares(si).await?,
            Kind::Mutable => self.backend.list_mutable_shares(si).await?,
        };
        Ok(cbor(StatusCode::OK, &wire::share_set(&shares)))
    }

    pub(super) async fn read_range(
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

    pub(super) async fn read(&self, kind: Kind, si: StorageIndex, n: ShareNum, headers: &HeaderMap) -> Answer {
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
}
