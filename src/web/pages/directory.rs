//! Directory pages (children with their sizes and times, and forms to upload, make a
//! directory, link a cap, unlink and rename) and the rename form.

use std::fmt::Write;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::body::{WebBody, html};
use crate::web::errors::WebError;
use crate::web::node_json::{listing, stated_size};
use crate::web::pages::{escape, layout};
use crate::web::routes::quote;
use crate::web::walk::cap_of_child;

fn link_times(metadata: &serde_json::Map<String, Value>) -> String {
    // Old links have only `ctime`/`mtime`.
    let time = |key: &str, old_key: &str| {
        metadata
            .get("tahoe")
            .and_then(|t| t.get(key))
            .or_else(|| metadata.get(old_key))
            .and_then(Value::as_f64)
            .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    };
    match (time("linkcrtime", "ctime"), time("linkmotime", "mtime")) {
        (Some(c), Some(m)) => format!("lcr: {c}<br>lmo: {m}"),
        _ => String::new(),
    }
}

/// `GET /uri/$DIRCAP/`.
pub async fn page(state: &WebState, _request: &Request<Incoming>, dir: &Cap) -> Result<Response<WebBody>, WebError> {
    let children = listing(&state.grid, dir).await?;
    let writable = !dir.is_read_only();
    let here = format!("/uri/{}/", quote(&dir.to_string()));
    let mut rows = String::new();
    for (name, child) in &children {
        let cap = cap_of_child(child);
        let text = cap.to_string();
        let (kind, target, size) = match &cap {
            Cap::Directory(_) => {
                let kind = if cap.is_immutable() {
                    "DIR-IMM"
                } else if cap.is_read_only() {
                    "DIR-RO"
                } else {
                    "DIR"
                };
                (kind, format!("/uri/{}/", quote(&text)), "-".to_string())
            }
            Cap::Mutable(_) => (
                "SSK",
                format!("/file/{}/@@named=/{}", quote(&text), quote(name)),
                "?".into(),
            ),
            Cap::Chk(_) | Cap::Literal(_) => (
                "FILE",
                format!("/file/{}/@@named=/{}", quote(&text), quote(name)),
                stated_size(&cap).unwrap_or(0).to_string(),
            ),
            _ => ("?", String::new(), "-".into()),
        };
        let name_cell = if target.is_empty() {
            escape(name)
        } else {
            format!("<a href=\"{target}\" rel=\"noreferrer\">{}</a>", escape(name))
        };
        let actions = if writable {
            format!(
                "<td><form class=\"inline\" action=\"{here}\" method=\"post\"><input type=\"hidden\" name=\"t\" value=\"unlink\">\
<input type=\"hidden\" name=\"name\" value=\"{n}\"><input type=\"hidden\" name=\"when_done\" value=\".\">\
<input type=\"submit\" value=\"unlink\" name=\"unlink\"></form></td>\
<td><form class=\"inline\" action=\"{here}\" method=\"get\"><input type=\"hidden\" name=\"t\" value=\"rename-form\">\
<input type=\"hidden\" name=\"name\" value=\"{n}\"><input type=\"submit\" value=\"rename/relink\" name=\"rename\"></form></td>",
                n = escape(name)
            )
        } else {
            "<td>-</td><td>-</td>".into()
        };
        let _ = write!(
            rows,
            "<tr><td>{kind}</td><td>{name_cell}</td><td align=\"right\">{size}</td><td>{}</td>{actions}\
<td><a href=\"/uri/{}?t=info\">More Info</a></td></tr>",
            link_times(&child.metadata),
            quote(&text)
        );
    }
    if children.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"empty-marker\">This directory is empty.</td></tr>");
    }
    let status = if dir.is_immutable() {
        "immutable"
    } else if writable {
        "modifiable"
    } else {
        "read-only"
    };
    let si: String = dir
        .storage_index()
        .map(|s| s.to_string())
        .unwrap_or_default()
        .chars()
        .take(5)
        .collect();
    let forms = if writable {
        format!(
            "<fieldset><legend>Upload a file to this directory</legend>\
<form action=\"{here}\" method=\"post\" enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"t\" value=\"upload\">\
<input type=\"hidden\" name=\"when_done\" value=\".\">\
<label><input type=\"radio\" name=\"format\" value=\"chk\" checked> Immutable</label> \
<label><input type=\"radio\" name=\"format\" value=\"sdmf\"> SDMF</label> \
<label><input type=\"radio\" name=\"format\" value=\"mdmf\"> MDMF</label> \
<input type=\"file\" name=\"file\" id=\"upload-file\"> <input type=\"submit\" id=\"upload-submit\" value=\"Upload\"></form></fieldset>\
<fieldset><legend>Create a new directory in this directory</legend>\
<form action=\"{here}\" method=\"post\" enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"t\" value=\"mkdir\">\
<input type=\"hidden\" name=\"when_done\" value=\".\"><input type=\"text\" name=\"name\" id=\"mkdir-name\">\
<label><input type=\"radio\" name=\"format\" value=\"sdmf\" checked> SDMF</label> \
<label><input type=\"radio\" name=\"format\" value=\"mdmf\"> MDMF</label> \
<input type=\"submit\" id=\"mkdir-submit\" value=\"Create\"></form></fieldset>\
<fieldset><legend>Add a link to a file or directory which is already in Tahoe-LAFS.</legend>\
<form action=\"{here}\" method=\"post\" enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"t\" value=\"uri\">\
<input type=\"hidden\" name=\"when_done\" value=\".\">New child name: <input type=\"text\" name=\"name\"> \
URI of new child: <input type=\"text\" name=\"uri\"> <input type=\"submit\" value=\"Attach\"></form></fieldset>"
        )
    } else {
        "<div>No upload forms: directory is read-only</div>".into()
    };
    let read_only = quote(&dir.read_only().to_string());
    let body = format!(
        "<h1>Directory SI=<span class=\"data-chars\">{si}</span> ({status})</h1>\
<p><a href=\"?t=info\">More info on this directory</a> · <a href=\"/uri/{read_only}/\">Read-Only Version</a> · <a href=\"?t=json\">JSON</a></p>\
<table class=\"tahoe-directory\"><tr><th>Type</th><th>Filename</th><th>Size</th><th>Times</th><th></th><th></th><th></th></tr>{rows}</table>{forms}"
    );
    Ok(html(layout(&format!("Directory SI={si} ({status})"), "", &body)))
}

/// `GET …?t=rename-form&name=N`: posts `t=rename` back to the directory.
pub fn rename_form(name: &str) -> Response<WebBody> {
    let body = format!(
        "<h1>Rename child</h1><form action=\".\" method=\"post\" enctype=\"multipart/form-data\">\
<input type=\"hidden\" name=\"t\" value=\"rename\"><input type=\"hidden\" name=\"when_done\" value=\".\">\
Rename child: <input type=\"text\" name=\"from_name\" readonly value=\"{}\"> to: <input type=\"text\" name=\"to_name\" id=\"to-name\">\
<input type=\"submit\" value=\"rename\"></form>",
        escape(name)
    );
    html(layout("Rename", "", &body))
}
