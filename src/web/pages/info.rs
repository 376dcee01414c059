//! `?t=info` pages, the unlinked-upload result page and check result pages.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::pages::{escape, layout};
use crate::web::walk::Found;

/// `GET …?t=info`.
pub async fn page(
    _state: &WebState,
    _request: &Request<Incoming>,
    found: &Found,
) -> Result<Response<WebBody>, WebError> {
    Ok(html(layout(
        "More Info",
        "",
        &format!("<h1>{}</h1>", escape(found.cap.kind())),
    )))
}

/// The page after a browser upload to `/uri`.
pub fn uploaded_page(cap: &Cap) -> String {
    let cap = cap.to_string();
    layout(
        "File Uploaded",
        "",
        &format!(
            "<h1>File Uploaded</h1><p>URI: <span class=\"cap\">{}</span></p>",
            escape(&cap)
        ),
    )
}

/// The HTML check results.
pub fn check_page(results: &Json, _return_to: Option<&str>) -> String {
    layout(
        "Check Results",
        "",
        &format!("<h1>Check Results</h1><pre>{}</pre>", escape(&results.pretty())),
    )
}
