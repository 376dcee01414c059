//! `/statistics`: Tahoe's counters and stats as JSON, OpenMetrics or a page.

use hyper::Response;

use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, text};
use crate::web::errors::WebError;

/// `GET /statistics[?t=json|openmetrics]`.
pub fn page(_state: &WebState, _args: &Args) -> Result<Response<WebBody>, WebError> {
    Ok(text("{}"))
}
