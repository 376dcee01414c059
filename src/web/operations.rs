//! Slow operations started with an `ophandle` (`t=start-deep-stats`, `start-manifest`,
//! `start-deep-check`, `start-deep-size`) and read at `/operations/$HANDLE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::{Method, Response, StatusCode};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, html, redirect, text};
use crate::web::check::check_json;
use crate::web::deep::{Traversal, manifest_unit};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::pages::{escape, layout};
use crate::web::routes::{absolute_base, quote};

/// Handles kept at most (the oldest finished ones are dropped beyond it).
const MAX_OPERATIONS: usize = 100;

#[derive(Debug, Clone)]
struct Operation {
    kind: String,
    /// The result so far (`finished` is added when read).
    result: Option<Result<Json, String>>,
    started: std::time::Instant,
}

/// The operations started and not yet released.
#[derive(Debug, Default)]
pub struct Operations {
    table: Arc<Mutex<HashMap<String, Operation>>>,
}

impl Operations {
    fn insert(&self, handle: &str, kind: &str) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_OPERATIONS
            && let Some(oldest) = table
                .iter()
                .filter(|(_, op)| op.result.is_some())
                .min_by_key(|(_, op)| op.started)
                .map(|(h, _)| h.clone())
        {
            table.remove(&oldest);
        }
        table.insert(
            handle.to_string(),
            Operation {
                kind: kind.to_string(),
                result: None,
                started: std::time::Instant::now(),
            },
        );
    }
}

/// `POST $D?t=start-…&ophandle=H`: starts the operation and redirects to its page.
pub fn start(
    state: &WebState,
    dir: &Cap,
    t: &str,
    args: &Args,
    host: Option<&str>,
) -> Result<Response<WebBody>, WebError> {
    let handle = args
        .get("ophandle")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| WebError::bad_request("slow operation requires ophandle="))?
        .to_string();
    let verify = args.boolean("verify", false)?;
    let repair = args.boolean("repair", false)?;
    let kind = t.trim_start_matches("start-").to_string();
    state.operations.insert(&handle, &kind);
    let table = state.operations.table.clone();
    let grid = state.grid.clone();
    let spool_dir = state.spool_dir.clone();
    let root = dir.clone();
    let (task_handle, task_kind) = (handle.clone(), kind.clone());
    tokio::spawn(async move {
        let result = run(&grid, &spool_dir, &root, &task_kind, verify, repair).await;
        let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = table.get_mut(&task_handle) {
            op.result = Some(result.map_err(|e| e.message));
        }
    });
    let mut location = format!("{}/operations/{}", absolute_base(state, host), quote(&handle));
    if let Some(output) = args.get("output") {
        location = format!("{location}?output={}", quote(output));
    }
    Ok(redirect(StatusCode::FOUND, &location))
}

async fn run(
    grid: &crate::grid::Grid,
    spool_dir: &std::path::Path,
    root: &Cap,
    kind: &str,
    verify: bool,
    repair: bool,
) -> Result<Json, WebError> {
    let mut manifest = Vec::new();
    let mut checked = 0u64;
    let mut healthy = 0u64;
    let mut unhealthy = Vec::new();
    let mut walk = Traversal::new(grid, root);
    while let Some(visited) = walk.next().await? {
        match kind {
            "manifest" => manifest.push(visited),
            "deep-check" if !matches!(visited.cap, Cap::Literal(_)) => {
                let results = check_json(grid, spool_dir, &visited.cap, verify, repair).await?;
                let inner = results
                    .get("post-repair-results")
                    .unwrap_or(&results)
                    .get("results")
                    .and_then(|r| r.get("healthy"))
                    .cloned();
                checked += 1;
                if inner == Some(Json::Bool(true)) {
                    healthy += 1;
                } else {
                    unhealthy.push(Json::List(
                        visited.path.iter().map(|n| Json::from(n.as_str())).collect(),
                    ));
                }
            }
            _ => {}
        }
    }
    let stats = walk.stats().clone();
    let stats_json = stats.json();
    Ok(match kind {
        "manifest" => {
            let units: Vec<Json> = manifest.iter().map(manifest_unit).collect();
            let listed = manifest
                .iter()
                .map(|v| {
                    Json::List(vec![
                        Json::List(v.path.iter().map(|n| Json::from(n.as_str())).collect()),
                        v.cap.to_string().into(),
                    ])
                })
                .collect();
            let field = |key: &str| {
                units
                    .iter()
                    .filter_map(|u| match u.get(key) {
                        Some(Json::Str(s)) if !s.is_empty() => Some(Json::from(s.as_str())),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
            Json::object()
                .with("stats", stats_json)
                .with(
                    "origin",
                    root.storage_index().map(|s| s.to_string()).unwrap_or_default(),
                )
                .with("manifest", Json::List(listed))
                .with("verifycaps", Json::List(field("verifycap")))
                .with("storage-index", Json::List(field("storage-index")))
        }
        "deep-check" => Json::object()
            .with(
                "root-storage-index",
                root.storage_index().map(|s| s.to_string()).unwrap_or_default(),
            )
            .with("count-objects-checked", checked)
            .with("count-objects-healthy", healthy)
            .with("count-objects-unhealthy", checked - healthy)
            .with("count-corrupt-shares", 0u64)
            .with("list-corrupt-shares", Json::List(Vec::new()))
            .with("list-unhealthy-files", Json::List(unhealthy))
            .with("stats", stats_json),
        "deep-size" => {
            let size = ["size-immutable-files", "size-literal-files", "size-directories"]
                .iter()
                .filter_map(|k| match stats_json.get(k) {
                    Some(Json::Number(n)) => n.as_u64(),
                    _ => None,
                })
                .sum::<u64>();
            Json::object().with("size", size)
        }
        _ => stats_json,
    })
}

/// `GET /operations/H[?t=status][&output=JSON][&release-after-complete=true]`.
pub fn route(state: &WebState, method: &Method, handle: &str, args: &Args) -> Result<Response<WebBody>, WebError> {
    let gone = || {
        WebError::page(
            StatusCode::NOT_FOUND,
            format!("unknown/expired handle '{}'", escape(handle)),
        )
    };
    let op = {
        let table = state.operations.table.lock().unwrap_or_else(|p| p.into_inner());
        table.get(handle).cloned().ok_or_else(gone)?
    };
    let finished = op.result.is_some();
    if finished && args.boolean("release-after-complete", false)? {
        state
            .operations
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(handle);
    }
    let _ = method;
    let mut result = match op.result {
        Some(Ok(json)) => json,
        Some(Err(message)) => Json::object().with("error", message),
        None => Json::object(),
    };
    result.push("finished", finished);
    let output = args.get("output").unwrap_or("").to_ascii_lowercase();
    match (op.kind.as_str(), output.as_str()) {
        (_, "json") => Ok(text(result.pretty() + "\n")),
        ("deep-size", "text") => {
            let size = result.get("size").map(|s| s.compact()).unwrap_or_default();
            Ok(text(format!(
                "finished: {}\nsize: {size}\n",
                if finished { "yes" } else { "no" }
            )))
        }
        _ => Ok(html(layout(
            "Operation",
            "",
            &format!(
                "<h1>{} {}</h1><pre>{}</pre>",
                escape(&op.kind),
                if finished { "finished" } else { "running (reload)" },
                escape(&result.pretty())
            ),
        ))),
    }
}
