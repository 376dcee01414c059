//! `/`: the welcome page (node, grid, servers) and its JSON.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::pages::layout;

/// `GET /[?t=json]`.
pub async fn page(
    _state: &WebState,
    _request: &Request<Incoming>,
    _args: &Args,
) -> Result<Response<WebBody>, WebError> {
    Ok(html(layout("Welcome", "", "<h1>Welcome</h1>")))
}
