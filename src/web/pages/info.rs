//! `?t=info` pages, the page after a browser upload to `/uri`, and check result pages.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::node_json::{stated_size, verify_cap};
use crate::web::pages::{escape, layout};
use crate::web::routes::quote;
use crate::web::walk::Found;

fn kind(cap: &Cap) -> &'static str {
    match cap {
        Cap::Directory(_) if cap.is_immutable() => "immutable directory",
        Cap::Directory(_) if cap.is_read_only() => "read-only directory",
        Cap::Directory(_) => "directory",
        Cap::Mutable(_) => "mutable file",
        Cap::Chk(_) | Cap::Literal(_) => "immutable file",
        _ => "unknown",
    }
}

/// `GET …?t=info`.
pub async fn page(
    _state: &WebState,
    _request: &Request<Incoming>,
    found: &Found,
) -> Result<Response<WebBody>, WebError> {
    let cap = &found.cap;
    let link = format!("/uri/{}", quote(&cap.to_string()));
    let mut facts = format!("<li>Object Type: {}</li>", kind(cap));
    if let Some(si) = cap.storage_index() {
        facts.push_str(&format!("<li>Storage Index: <code>{si}</code></li>"));
    }
    if let Some(size) = stated_size(cap) {
        facts.push_str(&format!("<li>Size: {size} bytes</li>"));
    }
    let mut caps = String::new();
    if !cap.is_read_only() {
        caps.push_str(&format!(
            "<li>Write cap: <span class=\"cap\">{}</span></li>",
            escape(&cap.to_string())
        ));
    }
    caps.push_str(&format!(
        "<li>Read cap: <span class=\"cap\">{}</span></li>",
        escape(&cap.read_only().to_string())
    ));
    if let Some(v) = verify_cap(cap) {
        caps.push_str(&format!(
            "<li>Verify cap: <span class=\"cap\">{}</span></li>",
            escape(&v.to_string())
        ));
    }
    let body = format!(
        "<h1>More info on {}</h1><ul>{facts}</ul><h2>Access caps</h2><ul>{caps}</ul>\
<p><a href=\"{link}?t=json\">JSON</a></p>\
<fieldset><legend>Check</legend><form action=\"{link}\" method=\"post\" enctype=\"multipart/form-data\">\
<input type=\"hidden\" name=\"t\" value=\"check\"><input type=\"hidden\" name=\"return_to\" value=\"{link}?t=info\">\
<label><input type=\"checkbox\" name=\"verify\"> Verify every bit</label> \
<label><input type=\"checkbox\" name=\"repair\"> Repair any problems</label> \
<label><input type=\"checkbox\" name=\"add-lease\"> Add/renew lease</label> \
<label><input type=\"checkbox\" name=\"output\" value=\"JSON\"> Emit JSON</label> \
<input type=\"submit\" value=\"Check\"></form></fieldset>",
        kind(cap)
    );
    Ok(html(layout("More Info", "", &body)))
}

/// The page after a browser upload to `/uri`: the cap and a download link.
pub fn uploaded_page(cap: &Cap) -> String {
    let text = cap.to_string();
    let body = format!(
        "<h1>File Uploaded</h1><p>URI: <span class=\"cap\" id=\"uploaded-cap\">{}</span></p>\
<p><a href=\"/uri/{}\">Download</a> · <a href=\"/uri/{}?t=info\">More info</a></p>",
        escape(&text),
        quote(&text),
        quote(&text)
    );
    layout("File Uploaded", "", &body)
}

/// The HTML check results.
pub fn check_page(results: &Json, return_to: Option<&str>) -> String {
    let summary = match results
        .get("summary")
        .or_else(|| results.get("post-repair-results").and_then(|r| r.get("summary")))
    {
        Some(Json::Str(s)) => s.clone(),
        _ => "Healthy (LIT)".into(),
    };
    let back = return_to.map_or(String::new(), |r| {
        format!("<p><a href=\"{}\">Return to file/directory.</a></p>", escape(r))
    });
    let body = format!(
        "<h1>File Check Results</h1><p id=\"summary\">{}</p><pre>{}</pre>{back}",
        escape(&summary),
        escape(&results.pretty())
    );
    layout("Check Results", "", &body)
}
