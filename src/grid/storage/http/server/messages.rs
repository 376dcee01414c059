//! What the storage routes share: refusals, responses, the secrets headers, byte ranges and bodies.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::grid::storage::http::wire;
use crate::grid::storage::{Error, LeaseSecrets};

/// A response body: small ones whole, share reads streamed.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub(super) const CBOR: &str = "application/cbor";

/// A refused request: the status and a short plain-text reason (never a secret; a 5xx's is
/// logged, not sent).
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

impl Refusal {
    pub(super) fn new(status: StatusCode, why: impl Into<String>) -> Self {
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

pub(super) type Answer = Result<Response<Body>, Refusal>;

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub(super) fn respond(status: StatusCode, content_type: Option<&'static str>, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

pub(super) fn cbor(status: StatusCode, value: &ciborium::value::Value) -> Response<Body> {
    respond(status, Some(CBOR), full(wire::encode(value)))
}

pub(super) fn empty(status: StatusCode) -> Response<Body> {
    respond(status, None, full(Bytes::new()))
}

/// Which secrets a route takes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum SecretKind {
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
pub(super) fn secrets(headers: &HeaderMap, wanted: &[SecretKind]) -> Result<BTreeMap<SecretKind, Vec<u8>>, Refusal> {
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

pub(super) fn hash32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

pub(super) fn lease_secrets(found: &BTreeMap<SecretKind, Vec<u8>>) -> LeaseSecrets {
    LeaseSecrets {
        renew: hash32(&found[&SecretKind::LeaseRenew]),
        cancel: hash32(&found[&SecretKind::LeaseCancel]),
    }
}

/// `Range: bytes=a-b`, one closed range only.
pub(super) fn parse_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, Refusal> {
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
pub(super) fn parse_content_range(headers: &HeaderMap) -> Result<(u64, u64), Refusal> {
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

pub(super) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Refusal> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
        }
        Err(_) => Err(Refusal::new(StatusCode::BAD_REQUEST, "request body could not be read")),
    }
}

pub(super) async fn read_cbor(request: Request<Incoming>, limit: usize) -> Result<ciborium::value::Value, Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
