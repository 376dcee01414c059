//! Slow operations started with an `ophandle` and read at `/operations/$HANDLE`.

use hyper::{Method, Response};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::WebBody;
use crate::web::errors::WebError;

/// The operations started and not yet released.
#[derive(Debug, Default)]
pub struct Operations {}

/// `POST $D?t=start-…&ophandle=H`.
pub fn start(
    _state: &WebState,
    _dir: &Cap,
    t: &str,
    _args: &Args,
    _host: Option<&str>,
) -> Result<Response<WebBody>, WebError> {
    Err(WebError::bad_request(format!("POST to a directory with bad t={t}")))
}

/// `GET /operations/H`.
pub fn route(_state: &WebState, _method: &Method, handle: &str, _args: &Args) -> Result<Response<WebBody>, WebError> {
    Err(WebError::page(
        hyper::StatusCode::NOT_FOUND,
        format!("unknown/expired handle '{}'", crate::web::pages::escape(handle)),
    ))
}
