//! Response bodies (whole or streamed) and reading request bodies within a limit.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use crate::web::errors::WebError;

/// A response body: whole, or streamed from a task.
pub type WebBody = BoxBody<Bytes, std::io::Error>;

/// A streamed body's pieces, sent by the task producing them.
pub type Chunks = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Pieces in flight between a producing task and the connection: with pieces of at most a
/// segment, what a slow client costs is bounded.
const STREAM_PIECES: usize = 2;

/// A whole body.
pub fn full(data: impl Into<Bytes>) -> WebBody {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

/// A body streamed from what is sent on the returned sender; dropping the sender ends it, and
/// an error sent aborts the connection (the client sees a truncated body, not a wrong one).
pub fn streamed() -> (Chunks, WebBody) {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(STREAM_PIECES);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece.map(Frame::data), receiver))
    });
    (sender, StreamBody::new(stream).boxed())
}

/// A response of `status` with `content_type` and `body`.
pub fn respond(status: StatusCode, content_type: &'static str, body: WebBody) -> Response<WebBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 `text/plain` answer.
pub fn text(body: impl Into<Bytes>) -> Response<WebBody> {
    respond(StatusCode::OK, "text/plain", full(body))
}

/// A 200 `text/html` answer (Tahoe sends caps as `text/html`).
pub fn html(body: impl Into<Bytes>) -> Response<WebBody> {
    respond(StatusCode::OK, "text/html; charset=utf-8", full(body))
}

/// A redirect to `location` with Tahoe's meta-refresh body.
pub fn redirect(status: StatusCode, location: &str) -> Response<WebBody> {
    let escaped = crate::web::pages::escape(location);
    let mut response = respond(
        status,
        "text/html; charset=utf-8",
        full(format!(
            "<html><head><meta http-equiv=\"refresh\" content=\"0;URL={escaped}\"></head><body bgcolor=\"#FFFFFF\" text=\"#000000\"><a href=\"{escaped}\">click here</a></body></html>"
        )),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(hyper::header::LOCATION, value);
    }
    response
}

/// The whole request body, refused with 413 past `limit` bytes.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, WebError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(WebError::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("FileTooLargeError: this request body is over {limit} bytes"),
        )),
        Err(e) => Err(WebError::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
    }
}
