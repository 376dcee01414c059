//! `/status`: the current and recent uploads, downloads, publishes and retrieves, as a page
//! or as Tahoe's JSON (`{"active": [...], "recent": [...]}`).

use std::fmt::Write;

use hyper::{Response, StatusCode};

use crate::web::WebState;
use crate::web::activity::OpRecord;
use crate::web::args::Args;
use crate::web::body::{WebBody, full, html, respond};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::pages::{escape, layout};

fn op_json(op: &OpRecord) -> Json {
    let mut entry = Json::object().with("storage-index-string", op.storage_index.as_str());
    entry.push("total-size", op.size.map_or(Json::from("-NA-"), Json::from));
    entry.push("status", op.status.as_str());
    entry.push("type", op.kind.name());
    let progress = if op.elapsed.is_some() { 1.0 } else { 0.0 };
    match op.kind.name() {
        "upload" => {
            entry.push("progress-hash", progress);
            entry.push("progress-ciphertext", progress);
            entry.push("progress-encode-push", progress);
        }
        "download" => entry.push("progress", progress),
        _ => {}
    }
    entry
}

fn rows(ops: &[OpRecord]) -> String {
    if ops.is_empty() {
        return "<tr><td colspan=\"5\">none</td></tr>".into();
    }
    let mut out = String::new();
    for op in ops {
        let when = chrono::DateTime::from_timestamp(op.started as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let size = op.size.map_or("-".to_string(), |s| s.to_string());
        let took = op.elapsed.map_or("-".to_string(), |e| format!("{e:.3} s"));
        let _ = write!(
            out,
            "<tr><td>{when}</td><td>{}</td><td><code>{}</code></td><td>{size}</td><td>{took}</td><td>{}</td></tr>",
            op.kind.name(),
            escape(&op.storage_index),
            escape(&op.status)
        );
    }
    out
}

/// `GET|POST /status[?t=json]`.
pub fn page(state: &WebState, args: &Args) -> Result<Response<WebBody>, WebError> {
    let (active, recent) = state.activity.operations();
    if args.t() == "json" {
        let doc = Json::object()
            .with("active", Json::List(active.iter().map(op_json).collect()))
            .with("recent", Json::List(recent.iter().map(op_json).collect()));
        return Ok(respond(StatusCode::OK, "application/json", full(doc.pretty())));
    }
    let head =
        "<tr><th>Started (UTC)</th><th>Type</th><th>Storage index</th><th>Size</th><th>Took</th><th>Status</th></tr>";
    let body = format!(
        "<h1>Recent and Active Operations</h1>\
<h2>Active Operations</h2><table id=\"active\">{head}{}</table>\
<h2>Recent Operations</h2><table id=\"recent\">{head}{}</table>\
<p>Counters and latency histograms: <a href=\"/statistics\">statistics</a>.</p>",
        rows(&active),
        rows(&recent)
    );
    Ok(html(layout("Recent and Active Operations", "", &body)))
}
