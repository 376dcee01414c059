//! `?t=json` of a file or directory, key for key in the order Tahoe 1.20's node writes them.

use serde_json::{Map, Value};

use crate::grid::Grid;
use crate::grid::dirnode::Child;
use crate::grid::uri::{Cap, MutableFormat};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::walk::cap_of_child;

/// The verify cap of `cap`, if it has one (LIT files and directories have none).
pub fn verify_cap(cap: &Cap) -> Option<Cap> {
    match cap {
        Cap::Chk(chk) => Some(Cap::ChkVerifier(chk.verifier())),
        Cap::ChkVerifier(_) => Some(cap.clone()),
        Cap::Mutable(m) => Some(Cap::Mutable(m.verifier())),
        Cap::Directory(inner) => verify_cap(inner).map(|v| Cap::Directory(Box::new(v))),
        Cap::Literal(_) | Cap::Unknown(_) => None,
    }
}

/// `CHK`, `SDMF` or `MDMF` for a file cap.
pub fn format_name(cap: &Cap) -> &'static str {
    match cap {
        Cap::Mutable(m) if m.format == MutableFormat::Mdmf => "MDMF",
        Cap::Mutable(_) => "SDMF",
        _ => "CHK",
    }
}

/// The size a file cap states (immutable files only).
pub fn stated_size(cap: &Cap) -> Option<u64> {
    match cap {
        Cap::Chk(chk) => Some(chk.size),
        Cap::Literal(lit) => Some(lit.data.len() as u64),
        _ => None,
    }
}

/// `["filenode", {...}]` / `["dirnode", {...}]` for one child of a directory listing.
pub fn child_json(child: &Child) -> Json {
    let cap = cap_of_child(child);
    let metadata = Json::from(&Value::Object(child.metadata.clone()));
    let rw = child.write_cap.clone();
    let ro = child.read_cap.clone();
    match &cap {
        Cap::Directory(_) => {
            let mut info = Json::object()
                .with("mutable", !cap.is_immutable())
                .with("metadata", metadata);
            push_caps(&mut info, rw, ro, &cap);
            Json::List(vec!["dirnode".into(), info])
        }
        Cap::Unknown(_) => {
            let mut info = Json::object().with("metadata", metadata);
            if let Some(ro) = ro {
                info.push("ro_uri", ro);
            }
            Json::List(vec!["unknown".into(), info])
        }
        _ => {
            let mut info = Json::object()
                .with("mutable", !cap.is_immutable())
                .with("format", format_name(&cap));
            if let Some(size) = stated_size(&cap) {
                info.push("size", size);
            }
            info.push("metadata", metadata);
            push_caps(&mut info, rw, ro, &cap);
            Json::List(vec!["filenode".into(), info])
        }
    }
}

fn push_caps(info: &mut Json, rw: Option<String>, ro: Option<String>, cap: &Cap) {
    if let Some(rw) = rw {
        info.push("rw_uri", rw);
    }
    if let Some(ro) = ro {
        info.push("ro_uri", ro);
    }
    if let Some(verifier) = verify_cap(cap) {
        info.push("verify_uri", verifier.to_string());
    }
}

/// A directory's children, with links acknowledged from the journal but not yet published.
pub async fn listing(grid: &Grid, dir: &Cap) -> Result<std::collections::BTreeMap<String, Child>, WebError> {
    let mut children = grid.list_directory(dir).await?;
    if let (Some(queue), Some(si)) = (grid.commit_queue(), dir.storage_index()) {
        for (name, pending) in queue.pending_in(si) {
            let mut metadata = Map::new();
            metadata.insert("mtime".into(), Value::from(pending.mtime));
            children.insert(name, crate::grid::directory::child_for(&pending.cap, metadata));
        }
    }
    Ok(children)
}

/// `?t=json` of the node `cap` (with its entry's `metadata` when reached through a path).
pub async fn node_json(grid: &Grid, cap: &Cap, metadata: Option<&Map<String, Value>>) -> Result<Json, WebError> {
    match cap {
        Cap::Directory(_) => {
            let children = listing(grid, cap).await?;
            let mut listed = Json::object();
            for (name, child) in &children {
                listed.push(name, child_json(child));
            }
            let mut info = Json::object().with("children", listed);
            info.push("ro_uri", cap.read_only().to_string());
            if !cap.is_read_only() {
                info.push("rw_uri", cap.to_string());
            }
            if let Some(verifier) = verify_cap(cap) {
                info.push("verify_uri", verifier.to_string());
            }
            info.push("mutable", !cap.is_immutable());
            Ok(Json::List(vec!["dirnode".into(), info]))
        }
        Cap::Unknown(_) | Cap::ChkVerifier(_) => Ok(Json::List(vec!["unknown".into(), Json::object()])),
        Cap::Mutable(m) => {
            let size = grid.read_mutable(m).await?.len() as u64;
            let mut info = Json::object()
                .with("mutable", true)
                .with("format", format_name(cap))
                .with("size", size)
                .with("ro_uri", cap.read_only().to_string());
            if !cap.is_read_only() {
                info.push("rw_uri", cap.to_string());
            }
            if let Some(verifier) = verify_cap(cap) {
                info.push("verify_uri", verifier.to_string());
            }
            if let Some(metadata) = metadata {
                info.push("metadata", Json::from(&Value::Object(metadata.clone())));
            }
            Ok(Json::List(vec!["filenode".into(), info]))
        }
        Cap::Chk(_) | Cap::Literal(_) => {
            let mut info = Json::object()
                .with("mutable", false)
                .with("format", "CHK")
                .with("size", stated_size(cap).unwrap_or(0))
                .with("ro_uri", cap.to_string());
            if let Some(verifier) = verify_cap(cap) {
                info.push("verify_uri", verifier.to_string());
            }
            if let Some(metadata) = metadata {
                info.push("metadata", Json::from(&Value::Object(metadata.clone())));
            }
            Ok(Json::List(vec!["filenode".into(), info]))
        }
    }
}
