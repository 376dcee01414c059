//! The top-level paths: `/`, `/uri` (and `/cap`), `/file` (and `/named`), `/status`,
//! `/statistics`, `/operations`, `/storage`, `/private`; anything else is Tahoe's 404 page.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, full, respond};
use crate::web::errors::WebError;

/// What Tahoe leaves unescaped when it puts a cap or a name in a URL (Python's `quote(s, safe="")`).
const URL_QUOTED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `s` as one URL path segment or query value (`URI:DIR2:…` becomes `URI%3ADIR2%3A…`).
pub fn quote(s: &str) -> String {
    utf8_percent_encode(s, URL_QUOTED).to_string()
}

/// Answers one request.
pub async fn route(state: &WebState, request: Request<Incoming>) -> Result<Response<WebBody>, WebError> {
    let path = request.uri().path().to_string();
    let args = Args::from_query(request.uri().query());
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    for segment in &raw {
        let decoded = percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| WebError::bad_request("path segments must be UTF-8"))?;
        segments.push(decoded.into_owned());
    }
    let method = request.method().clone();
    match segments[0].as_str() {
        "" if segments.len() == 1 => match method {
            Method::GET | Method::HEAD | Method::PUT => crate::web::pages::welcome::page(state, &request, &args).await,
            _ => Err(not_allowed()),
        },
        "uri" | "cap" => crate::web::routes_uri::route(state, request, &segments[1..], args).await,
        "file" | "named" => crate::web::download::named(state, request, &segments[1..], &args).await,
        "status" if segments.len() <= 2 && segments.get(1).is_none_or(String::is_empty) => {
            crate::web::pages::status::page(state, &args)
        }
        "statistics" if segments.len() == 1 => crate::web::metrics::page(state, &args),
        "operations" if segments.len() == 2 => crate::web::operations::route(state, &method, &segments[1], &args),
        "storage" if segments.len() == 1 => crate::web::pages::storage::page(state).await,
        "private" => private(state, &request),
        "report_incident" => Err(WebError::bad_request("/report_incident can only be used with POST")),
        _ => Err(no_such_resource()),
    }
}

fn not_allowed() -> WebError {
    WebError::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Tahoe's 404 for an unknown path.
pub fn no_such_resource() -> WebError {
    WebError::page(StatusCode::NOT_FOUND, "Sorry. No luck finding that resource.")
}

/// `/private/…`: only with `Authorization: tahoe-lafs <api_auth_token>` (Tahoe serves its log
/// stream there; this node serves nothing there yet, so an authorized request gets 404).
fn private(state: &WebState, request: &Request<Incoming>) -> Result<Response<WebBody>, WebError> {
    let expected = format!("tahoe-lafs {}", state.token);
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| bool::from(subtle::ConstantTimeEq::ct_eq(v.as_bytes(), expected.as_bytes())));
    if !authorized {
        let mut response = respond(StatusCode::UNAUTHORIZED, "text/html", full("Unauthorized"));
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("tahoe-lafs realm=\"tahoe-lafs\""),
        );
        return Ok(response);
    }
    Err(no_such_resource())
}

/// The base URL for Tahoe's absolute redirects: the Host header's name with the node's own port.
pub fn absolute_base(state: &WebState, request_host: Option<&str>) -> String {
    let host = match request_host {
        Some(h) if h.starts_with('[') => h.split_inclusive(']').next().unwrap_or(h),
        Some(h) => h.split(':').next().unwrap_or(h),
        None => "127.0.0.1",
    };
    format!("http://{host}:{}", state.port)
}
