//! `POST …?t=check[&verify=][&repair=][&add-lease=][&output=JSON]`: Tahoe's check and
//! check-and-repair results for files and directories.

use std::collections::{BTreeMap, BTreeSet};

use hyper::Response;

use crate::grid::Grid;
use crate::grid::base32;
use crate::grid::immutable::check::{CheckReport, ShareHealth};
use crate::grid::uri::{Cap, MutableCap};
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, html, text};
use crate::web::errors::WebError;
use crate::web::json::Json;

/// The answer to `t=check` on `cap`.
pub async fn answer(state: &WebState, cap: &Cap, args: &Args) -> Result<Response<WebBody>, WebError> {
    let verify = args.boolean("verify", false)?;
    let repair = args.boolean("repair", false)?;
    let _add_lease = args.boolean("add-lease", false)?;
    let result = check_json(&state.grid, &state.spool_dir, cap, verify, repair).await?;
    if args.json_output() {
        return Ok(text(result.pretty() + "\n"));
    }
    Ok(html(crate::web::pages::info::check_page(
        &result,
        args.get("return_to"),
    )))
}

/// The check (or, with `repair`, check-and-repair) JSON of `cap`.
pub async fn check_json(
    grid: &Grid,
    spool_dir: &std::path::Path,
    cap: &Cap,
    verify: bool,
    repair: bool,
) -> Result<Json, WebError> {
    let file = match cap {
        Cap::Directory(inner) => inner.as_ref(),
        other => other,
    };
    match file {
        // LIT files: healthy by definition, and the same answer with repair (as Tahoe).
        Cap::Literal(_) => Ok(Json::object()
            .with("storage-index", "")
            .with("results", Json::object().with("healthy", true))),
        Cap::Chk(chk) => {
            let si = chk.storage_index().to_string();
            if !repair {
                let report = grid.check(chk, verify).await?;
                return Ok(immutable_results(grid, &si, &report, false));
            }
            let repaired = grid.repair(chk, spool_dir, verify).await?;
            Ok(repair_results(
                &si,
                repaired.repaired,
                immutable_results(grid, &si, &repaired.before, false),
                immutable_results(grid, &si, &repaired.after, repaired.repaired),
                repaired.before.is_healthy(),
            ))
        }
        Cap::Mutable(m) => {
            let si = m.storage_index().to_string();
            if !repair {
                return Ok(mutable_results(grid, &si, m).await);
            }
            let before = mutable_results(grid, &si, m).await;
            let healthy = before.get("results").and_then(|r| r.get("healthy")) == Some(&Json::Bool(true));
            if healthy {
                return Ok(repair_results(&si, false, before.clone(), before, true));
            }
            let attempt = grid.repair_mutable(m).await;
            let after = mutable_results(grid, &si, m).await;
            Ok(repair_results(&si, attempt.is_ok(), before, after, false))
        }
        _ => Err(WebError::bad_request("cannot check this kind of cap")),
    }
}

fn repair_results(si: &str, repaired: bool, before: Json, mut after: Json, was_healthy: bool) -> Json {
    if repaired {
        // Tahoe's post-repair summary is lowercase.
        if let Json::Object(entries) = &mut after {
            for (key, value) in entries.iter_mut() {
                if key == "summary" && matches!(value, Json::Str(s) if s == "Healthy") {
                    *value = Json::from("healthy");
                }
            }
        }
    }
    Json::object()
        .with("storage-index", si)
        .with("repair-attempted", !was_healthy)
        .with("repair-successful", repaired)
        .with("pre-repair-results", before)
        .with("post-repair-results", after)
}

/// Tahoe's `v0-` server id, where the server has a permutation seed that is its key.
fn server_name(grid: &Grid, node_id: &[u8; 20]) -> String {
    grid.servers()
        .iter()
        .map(|s| s.id())
        .find(|id| &id.node_id == node_id)
        .map(|id| format!("v0-{}", base32::encode(&id.permutation_seed)))
        .unwrap_or_else(|| base32::encode(node_id))
}

fn immutable_results(grid: &Grid, si: &str, report: &CheckReport, _after_repair: bool) -> Json {
    let good: Vec<_> = report.shares.iter().filter(|s| s.health == ShareHealth::Good).collect();
    let mut sharemap: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for share in &good {
        sharemap
            .entry(share.share.to_string())
            .or_default()
            .push(server_name(grid, &share.node_id));
    }
    let hosts: BTreeSet<[u8; 20]> = good.iter().map(|s| s.node_id).collect();
    let corrupt: Vec<Json> = report
        .shares
        .iter()
        .filter(|s| s.health != ShareHealth::Good)
        .map(|s| {
            Json::List(vec![
                server_name(grid, &s.node_id).into(),
                si.into(),
                (s.share as u64).into(),
            ])
        })
        .collect();
    let responding: BTreeSet<String> = grid
        .servers()
        .iter()
        .map(|s| server_name(grid, &s.id().node_id))
        .collect();
    let good_count = report.good_shares();
    let healthy = report.is_healthy();
    let summary = if healthy {
        "Healthy".to_string()
    } else {
        format!(
            "Not Healthy: {good_count} shares (enc {}-of-{})",
            report.needed, report.total
        )
    };
    results(
        si,
        summary,
        Json::object()
            .with("count-happiness", hosts.len())
            .with("count-shares-good", good_count)
            .with("count-shares-needed", report.needed)
            .with("count-shares-expected", report.total)
            .with("count-good-share-hosts", hosts.len())
            .with("count-corrupt-shares", corrupt.len())
            .with("list-corrupt-shares", Json::List(corrupt))
            .with(
                "servers-responding",
                Json::List(responding.into_iter().map(Json::from).collect()),
            )
            .with(
                "sharemap",
                Json::Object(
                    sharemap
                        .into_iter()
                        .map(|(k, v)| (k, Json::List(v.into_iter().map(Json::from).collect())))
                        .collect(),
                ),
            )
            .with("count-wrong-shares", 0u64)
            .with("count-recoverable-versions", u64::from(report.is_recoverable()))
            .with("count-unrecoverable-versions", u64::from(!report.is_recoverable()))
            .with("healthy", healthy)
            .with("recoverable", report.is_recoverable()),
    )
}

async fn mutable_results(grid: &Grid, si: &str, cap: &MutableCap) -> Json {
    match grid.check_mutable(cap).await {
        Ok(health) => {
            let healthy = health.is_healthy();
            let good = health.shares.len();
            let hosts: BTreeSet<&String> = health.shares.iter().map(|(_, server)| server).collect();
            let summary = if healthy {
                "Healthy".to_string()
            } else {
                format!("Not Healthy: {good} shares (enc {}-of-{})", health.needed, health.total)
            };
            results(
                si,
                summary,
                Json::object()
                    .with("count-happiness", hosts.len())
                    .with("count-shares-good", good)
                    .with("count-shares-needed", health.needed)
                    .with("count-shares-expected", health.total)
                    .with("count-good-share-hosts", hosts.len())
                    .with("count-corrupt-shares", 0u64)
                    .with("list-corrupt-shares", Json::List(Vec::new()))
                    .with("count-wrong-shares", health.other_versions)
                    .with("count-recoverable-versions", 1u64)
                    .with("count-unrecoverable-versions", 0u64)
                    .with("healthy", healthy)
                    .with("recoverable", true),
            )
        }
        Err(_) => results(
            si,
            "Not Healthy: unrecoverable".into(),
            Json::object()
                .with("count-shares-good", 0u64)
                .with("count-shares-needed", grid.params().needed)
                .with("count-shares-expected", grid.params().total)
                .with("count-wrong-shares", 0u64)
                .with("list-corrupt-shares", Json::List(Vec::new()))
                .with("count-recoverable-versions", 0u64)
                .with("count-unrecoverable-versions", 1u64)
                .with("healthy", false)
                .with("recoverable", false),
        ),
    }
}

fn results(si: &str, summary: String, results: Json) -> Json {
    Json::object()
        .with("storage-index", si)
        .with("summary", summary)
        .with("results", results)
}
