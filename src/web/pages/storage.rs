//! `/storage`: the storage server's page.

use hyper::Response;

use crate::web::WebState;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::pages::layout;

/// `GET /storage`.
pub async fn page(state: &WebState) -> Result<Response<WebBody>, WebError> {
    let body = match &state.storage_server {
        None => "<h1>No Storage Server Running</h1>".to_string(),
        Some(path) => format!(
            "<h1>Storage Server</h1><p>Shares in <code>{}</code></p>",
            crate::web::pages::escape(&path.display().to_string())
        ),
    };
    Ok(html(layout("Storage Server Status", "", &body)))
}
