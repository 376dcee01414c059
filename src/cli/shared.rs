//! What the commands share: reading caps and `alias:path` arguments, and progress bars.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::grid::uri::Cap;
use crate::node::{self, Node};

pub(crate) fn parse_cap(text: &str) -> anyhow::Result<Cap> {
    // The error never repeats the text: it may be a valid cap with a typo.
    Cap::parse(text).map_err(|e| anyhow::anyhow!("bad cap: {e}"))
}

pub(crate) fn progress_bar(len: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}") {
        bar.set_style(style);
    }
    Some(bar)
}

/// Splits `alias:path`, `URI:DIR2…/path` or a plain path (under the default alias) into a vfs and a path.
pub(crate) fn open_path(dir: &Path, text: &str) -> anyhow::Result<(Node, crate::vfs::Vfs, String)> {
    let node = Node::open(dir)?;
    let (root, path) = if text.starts_with("URI:") {
        let (cap, path) = text.split_once('/').unwrap_or((text, ""));
        (parse_cap(cap)?, path.to_string())
    } else {
        let (alias, path) = text.split_once(':').unwrap_or((node::DEFAULT_ALIAS, text));
        let aliases = node::read_aliases(dir)?;
        let cap = aliases
            .get(alias)
            .with_context(|| format!("no alias {alias:?} (make one with `lafs alias create {alias}`)"))?;
        (parse_cap(cap)?, path.to_string())
    };
    if !matches!(root, Cap::Directory(_)) {
        bail!("{} is not a directory cap", root.kind());
    }
    let vfs = crate::vfs::Vfs::new(node.grid.clone(), root);
    Ok((node, vfs, path))
}

/// The cap an argument names: a cap itself, or what `alias:path` / `URI:DIR2…/path` links.
pub(crate) async fn resolve_target(dir: &Path, text: &str) -> anyhow::Result<(Node, Cap)> {
    if text.starts_with("URI:") && !text.contains('/') {
        return Ok((Node::open(dir)?, parse_cap(text)?));
    }
    let (node, vfs, path) = open_path(dir, text)?;
    let cap = vfs
        .cap_of(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", super::files::display_path(text)))?;
    Ok((node, cap))
}

/// A counter of objects done, on standard error when it is a terminal.
pub(crate) fn count_bar(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    let template = format!("{{spinner}} {{pos}} {what} {{per_sec}} {{elapsed}} {{wide_msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

/// Prints a line to standard output without garbling a progress bar.
pub(crate) fn say(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(bar) => bar.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

/// Prints a problem (one line) to standard error without garbling a progress bar.
pub(crate) fn complain(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Joins a walked path for display (`<root>` for the root, as Tahoe shows it).
pub(crate) fn show_path(path: &[String]) -> String {
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path.join("/")
    }
}
