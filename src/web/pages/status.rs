//! `/status`: current and recent uploads, downloads, publishes and retrieves.

use hyper::Response;

use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::pages::layout;

/// `GET|POST /status[?t=json]`.
pub fn page(_state: &WebState, _args: &Args) -> Result<Response<WebBody>, WebError> {
    Ok(html(layout("Recent and Active Operations", "", "<h1>Status</h1>")))
}
