//! Directory pages with their forms, and the rename form.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::pages::layout;

/// `GET /uri/$DIRCAP/`.
pub async fn page(_state: &WebState, _request: &Request<Incoming>, _dir: &Cap) -> Result<Response<WebBody>, WebError> {
    Ok(html(layout("Directory", "", "<h1>Directory</h1>")))
}

/// `GET …?t=rename-form&name=N`.
pub fn rename_form(_name: &str) -> Response<WebBody> {
    html(layout("Rename", "", "<h1>Rename</h1>"))
}
