//! `lafs ls`: a directory's entries as Tahoe's `ls` shows them (`-l` with dates, `--uri`, `-F`),
//! recursively with `-R`, or as Tahoe's `t=json` with `--json`.

use std::path::Path;

use chrono::TimeZone;
use serde_json::{Map, Value, json};

use super::shared::resolve_target;
use crate::grid::Grid;
use crate::grid::deep::manifest::verify_cap;
use crate::grid::directory::child_cap;
use crate::grid::dirnode::Child;
use crate::grid::uri::Cap;

/// Which columns and how deep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Kind and access, size, date.
    pub long: bool,
    /// Subdirectories too.
    pub recursive: bool,
    /// Each entry's cap.
    pub uri: bool,
    /// `/` after directory names.
    pub classify: bool,
    /// Tahoe's JSON instead of text.
    pub json: bool,
}

/// Six months, as GNU `ls` (and Tahoe's) count them: older dates show the year instead of the time.
const SIX_MONTHS: f64 = 6.0 * 30.0 * 24.0 * 60.0 * 60.0;

pub(crate) async fn ls(dir: &Path, target: &str, style: Style) -> anyhow::Result<()> {
    let (node, cap) = resolve_target(dir, target).await?;
    let grid = node.grid.clone();
    if !matches!(cap, Cap::Directory(_)) {
        let name = super::copy::base_name(target);
        if style.json {
            println!("{}", node_json(&cap, None, Map::new()));
            return Ok(());
        }
        let child = crate::grid::directory::child_for(&cap, Map::new());
        print_rows(&[row(&name, &child, style, now())]);
        return Ok(());
    }
    if style.json {
        let children = grid.list_directory(&cap).await?;
        println!("{}", node_json(&cap, Some(&children), Map::new()));
        return Ok(());
    }
    if !style.recursive {
        let children = grid.list_directory(&cap).await?;
        print_listing(&children, style);
        return Ok(());
    }
    list_recursively(&grid, cap, target, style).await
}

/// Lists each directory under its path, depth first (only the directories still to be listed
/// are held, never the listings already printed).
async fn list_recursively(grid: &Grid, root: Cap, target: &str, style: Style) -> anyhow::Result<()> {
    let shown_root = if target.starts_with("URI:") { "." } else { target };
    let mut to_list = vec![(shown_root.to_string(), root)];
    let mut first = true;
    let mut problems = 0u64;
    let mut seen = std::collections::HashSet::new();
    while let Some((path, cap)) = to_list.pop() {
        if let Some(si) = cap.storage_index()
            && !seen.insert(si)
        {
            continue;
        }
        let children = match grid.list_directory(&cap).await {
            Ok(children) => children,
            Err(e) => {
                eprintln!("{path}: cannot read directory: {e}");
                problems += 1;
                continue;
            }
        };
        if !first {
            println!();
        }
        first = false;
        println!("{path}:");
        print_listing(&children, style);
        let base = if path.ends_with(':') || path.ends_with('/') {
            path.clone()
        } else {
            format!("{path}/")
        };
        let subdirectories: Vec<_> = children
            .iter()
            .filter_map(|(name, child)| {
                child_cap(child)
                    .filter(|c| matches!(c, Cap::Directory(_)))
                    .map(|c| (name, c))
            })
            .collect();
        for (name, sub) in subdirectories.into_iter().rev() {
            to_list.push((format!("{base}{name}"), sub));
        }
    }
    if problems > 0 {
        return Err(super::Incomplete(format!("{problems} directories could not be read")).into());
    }
    Ok(())
}

fn now() -> f64 {
    crate::grid::directory::now()
}

fn print_listing(children: &std::collections::BTreeMap<String, Child>, style: Style) {
    let now = now();
    let rows: Vec<Vec<String>> = children
        .iter()
        .map(|(name, child)| row(name, child, style, now))
        .collect();
    print_rows(&rows);
}

/// The cells of one entry, as Tahoe's `ls` builds them.
fn row(name: &str, child: &Child, style: Style, now: f64) -> Vec<String> {
    let cap = child_cap(child);
    let (kind, size, suffix) = match &cap {
        Some(Cap::Directory(_)) => ('d', "-".to_string(), "/"),
        Some(Cap::Chk(chk)) => ('-', chk.size.to_string(), ""),
        Some(Cap::Literal(lit)) => ('-', lit.data.len().to_string(), ""),
        Some(Cap::Mutable(_)) => ('-', "?".to_string(), ""),
        _ => ('?', "?".to_string(), "?"),
    };
    let mut cells = Vec::new();
    if style.long {
        let is_dir = kind == 'd';
        let mode = format!(
            "{kind}{}{}{}",
            if child.read_cap.is_some() { 'r' } else { '-' },
            if child.write_cap.is_some() { 'w' } else { '-' },
            if is_dir { 'x' } else { '-' },
        );
        cells.push(mode);
        cells.push(size);
        cells.push(modification_time(&child.metadata).map_or_else(|| "-".to_string(), |t| format_date(t, now)));
    }
    let classify = if style.classify { suffix } else { "" };
    cells.push(format!("{name}{classify}"));
    if style.uri {
        cells.push(cap.map_or_else(|| "?".to_string(), |c| c.to_string()));
    }
    cells
}

/// The user's `mtime`, else when the entry was last linked (`tahoe.linkmotime`).
fn modification_time(metadata: &Map<String, Value>) -> Option<f64> {
    metadata.get("mtime").and_then(Value::as_f64).or_else(|| {
        metadata
            .get("tahoe")
            .and_then(|t| t.get("linkmotime"))
            .and_then(Value::as_f64)
    })
}

/// A date as GNU `ls` and Tahoe print it, in local time: `Dec 06 14:03`, or `Jun 01  2025`
/// for dates more than six months away.
pub(crate) fn format_date(time: f64, now: f64) -> String {
    let Some(date) = chrono::Local.timestamp_opt(time.floor() as i64, 0).single() else {
        return "-".to_string();
    };
    if (now - time).abs() > SIX_MONTHS {
        date.format("%b %d  %Y").to_string()
    } else {
        date.format("%b %d %H:%M").to_string()
    }
}

/// Prints rows with Tahoe's column layout: each column as wide as its widest cell, right
/// aligned except caps (and a lone name column).
fn print_rows(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    let mut left = vec![false; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
            left[i] |= cell.starts_with("URI");
        }
    }
    if columns == 1 {
        left[0] = true;
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if left[i] {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Tahoe's `t=json` of a node: `["dirnode", {...}]` or `["filenode", {...}]`.
fn node_json(
    cap: &Cap,
    children: Option<&std::collections::BTreeMap<String, Child>>,
    metadata: Map<String, Value>,
) -> Value {
    let mut fields = Map::new();
    if !cap.is_read_only() {
        fields.insert("rw_uri".into(), json!(cap.to_string()));
    }
    fields.insert("ro_uri".into(), json!(cap.read_only().to_string()));
    if let Some(verify) = verify_cap(cap) {
        fields.insert("verify_uri".into(), json!(verify.to_string()));
    }
    fields.insert("mutable".into(), json!(!cap.is_immutable()));
    let kind = match cap {
        Cap::Directory(_) => "dirnode",
        Cap::Unknown(_) => "unknown",
        _ => "filenode",
    };
    match cap {
        Cap::Chk(chk) => {
            fields.insert("size".into(), json!(chk.size));
            fields.insert("format".into(), json!("CHK"));
        }
        Cap::Literal(lit) => {
            fields.insert("size".into(), json!(lit.data.len()));
            fields.insert("format".into(), json!("LIT"));
        }
        Cap::Mutable(_) => {
            fields.insert(
                "format".into(),
                json!(cap.kind().split('-').next().unwrap_or("SDMF").replace("SSK", "SDMF")),
            );
        }
        _ => {}
    }
    if let Some(children) = children {
        let mut listed = Map::new();
        for (name, child) in children {
            let value = match child_cap(child) {
                Some(child_cap) => node_json(&child_cap, None, child.metadata.clone()),
                None => json!(["unknown", {"metadata": child.metadata}]),
            };
            listed.insert(name.clone(), value);
        }
        fields.insert("children".into(), Value::Object(listed));
    } else {
        fields.insert("metadata".into(), Value::Object(metadata));
    }
    json!([kind, fields])
}
