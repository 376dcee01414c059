//! Deep traversals of a directory tree: `t=stream-manifest` and `t=stream-deep-check`.

use hyper::Response;

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::WebBody;
use crate::web::errors::WebError;

/// `t=stream-manifest` / `t=stream-deep-check` on the directory `dir`.
pub fn stream(_state: &WebState, _dir: &Cap, t: &str, _args: &Args) -> Result<Response<WebBody>, WebError> {
    Err(WebError::bad_request(format!("POST to a directory with bad t={t}")))
}
