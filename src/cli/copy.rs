//! `lafs cp [-r]`: files and trees between the local disk and the grid, and within the grid
//! (by cap: an immutable file is linked, never copied byte by byte).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::StreamExt;

use super::shared::{complain, count_bar, open_path, parse_cap};
use crate::grid::directory::child_cap;
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::uri::Cap;
use crate::node::{self, Node};
use crate::vfs::{Kind, Vfs};

/// Files uploaded at once while copying a directory.
const UPLOADS_IN_FLIGHT: usize = 4;

/// One side of a copy.
enum Place {
    Local(PathBuf),
    /// A view and a path in it (`path` may be empty: the view's root).
    Grid {
        vfs: Vfs,
        path: String,
        shown: String,
    },
    /// A bare cap (a source only).
    Cap(Cap),
}

/// Whether `text` names something on the grid: a cap, or `alias:path` with a known alias.
fn parse_place(dir: &Path, text: &str) -> anyhow::Result<Place> {
    if text.starts_with("URI:") && !text.contains('/') {
        let cap = parse_cap(text)?;
        if !matches!(cap, Cap::Directory(_)) {
            return Ok(Place::Cap(cap));
        }
    }
    let alias = text.split_once(':').map(|(alias, _)| alias);
    let is_grid = text.starts_with("URI:")
        || alias.is_some_and(|a| !a.contains('/') && node::read_aliases(dir).is_ok_and(|m| m.contains_key(a)));
    if !is_grid {
        return Ok(Place::Local(PathBuf::from(text)));
    }
    let (_, vfs, path) = open_path(dir, text)?;
    Ok(Place::Grid {
        vfs,
        path,
        shown: super::files::display_path(text),
    })
}

/// The last name of a path argument (`alias:` and the directory part left out; names may hold `:`).
pub(crate) fn base_name(text: &str) -> String {
    let path = match text.split_once(':') {
        Some((alias, rest)) if !alias.contains('/') => rest,
        _ => text,
    };
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn cp(dir: &Path, sources: &[String], target: &str, recursive: bool) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    let target_place = parse_place(dir, target)?;
    let froms = sources
        .iter()
        .map(|source| parse_place(dir, source).map(|place| (source, place)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // As Tahoe's cp: an existing directory target, or a missing one with several sources or a
    // directory source, receives the sources by name (a bare dircap gives its contents).
    let target_state = match &target_place {
        Place::Local(path) => path.is_dir().then_some(true).or(path.exists().then_some(false)),
        Place::Grid { path, .. } if path.trim_matches('/').is_empty() => Some(true),
        Place::Grid { vfs, path, .. } => vfs.stat(path.as_bytes()).await.ok().map(|s| s.kind == Kind::Directory),
        Place::Cap(_) => bail!("a file cap cannot be a copy's target"),
    };
    let single_file = froms.len() == 1 && is_file_source(&froms[0].1).await;
    let into = match target_state {
        Some(is_dir) => is_dir,
        None => !single_file,
    };
    if target.ends_with('/') && !into {
        bail!("target is not a directory, but ends with a slash");
    }
    if froms.len() > 1 && !into {
        bail!("copying several sources needs a directory as the target");
    }
    if into && target_state.is_none() {
        match &target_place {
            Place::Local(path) => {
                std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?
            }
            Place::Grid { vfs, path, shown } => vfs
                .mkdir(path.trim_end_matches('/').as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?,
            Place::Cap(_) => {}
        }
    }
    let mut copier = Copier {
        node,
        recursive,
        bar: count_bar("files copied"),
        problems: 0,
    };
    for (source, from) in froms {
        let unnamed_directory = matches!(&from, Place::Grid { path, .. } if path.trim_matches('/').is_empty())
            && source.starts_with("URI:");
        let name = match &from {
            Place::Cap(_) if into => bail!(
                "{}: when copying into a directory, every source file needs a name",
                super::files::display_path(source)
            ),
            _ if unnamed_directory => String::new(),
            _ => base_name(source),
        };
        let to = match (&target_place, into) {
            (Place::Local(path), true) if name.is_empty() => Place::Local(path.clone()),
            (Place::Grid { vfs, path, shown }, true) if name.is_empty() => Place::Grid {
                vfs: vfs.clone(),
                path: path.clone(),
                shown: shown.clone(),
            },
            (Place::Local(path), true) => Place::Local(path.join(&name)),
            (Place::Local(path), false) => Place::Local(path.clone()),
            (Place::Grid { vfs, path, shown }, true) => Place::Grid {
                vfs: vfs.clone(),
                path: format!("{}/{name}", path.trim_end_matches('/')),
                shown: format!("{shown}/{name}"),
            },
            (Place::Grid { vfs, path, shown }, false) => Place::Grid {
                vfs: vfs.clone(),
                path: path.clone(),
                shown: shown.clone(),
            },
            (Place::Cap(_), _) => unreachable_target(),
        };
        copier.copy(from, to).await?;
    }
    if let Some(bar) = &copier.bar {
        bar.finish_and_clear();
    }
    if copier.problems > 0 {
        return Err(super::Incomplete(format!("{} entries could not be copied", copier.problems)).into());
    }
    Ok(())
}

/// Whether a copy source is a file (not a directory).
async fn is_file_source(place: &Place) -> bool {
    match place {
        Place::Local(path) => !path.is_dir(),
        Place::Cap(cap) => !matches!(cap, Cap::Directory(_)),
        Place::Grid { vfs, path, .. } => vfs.stat(path.as_bytes()).await.is_ok_and(|s| s.kind != Kind::Directory),
    }
}

fn unreachable_target() -> Place {
    Place::Local(PathBuf::new())
}

struct Copier {
    node: Node,
    recursive: bool,
    bar: Option<indicatif::ProgressBar>,
    problems: u64,
}

impl Copier {
    async fn copy(&mut self, from: Place, to: Place) -> anyhow::Result<()> {
        // What the source is: a local path, or a cap (from a path on the grid).
        let source_cap = match &from {
            Place::Local(_) => None,
            Place::Cap(cap) => Some(cap.clone()),
            Place::Grid { vfs, path, shown } => Some(
                vfs.cap_of(path.as_bytes())
                    .await
                    .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?,
            ),
        };
        match (from, source_cap, to) {
            (Place::Local(src), _, to) => {
                let meta = std::fs::metadata(&src).with_context(|| format!("cannot stat {}", src.display()))?;
                if meta.is_dir() {
                    if !self.recursive {
                        bail!("{} is a directory (use -r)", src.display());
                    }
                    match to {
                        Place::Grid { vfs, path, .. } => self.local_tree_to_grid(&src, &vfs, &path).await,
                        Place::Local(dst) => bail!(
                            "{} -> {}: use your system's cp for local copies",
                            src.display(),
                            dst.display()
                        ),
                        Place::Cap(_) => Ok(()),
                    }
                } else {
                    match to {
                        Place::Grid { vfs, path, shown } => {
                            let cap = self.upload(&src).await?;
                            vfs.link_file(path.as_bytes(), &cap, true, mtime_of(&meta))
                                .await
                                .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
                            self.done();
                            Ok(())
                        }
                        _ => bail!("{}: use your system's cp for local copies", src.display()),
                    }
                }
            }
            (_, Some(cap), Place::Local(dst)) => {
                if matches!(cap, Cap::Directory(_)) {
                    if !self.recursive {
                        bail!("{} is a directory (use -r)", dst.display());
                    }
                    self.grid_tree_to_local(cap, &dst).await
                } else {
                    self.download(&cap, &dst).await
                }
            }
            (_, Some(cap), Place::Grid { vfs, path, shown }) => {
                if matches!(cap, Cap::Directory(_)) {
                    if !self.recursive {
                        bail!("{shown}: the source is a directory (use -r)");
                    }
                    self.grid_tree_to_grid(cap, &vfs, &path).await
                } else {
                    vfs.link_file(path.as_bytes(), &cap, true, None)
                        .await
                        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
                    self.done();
                    Ok(())
                }
            }
            (_, _, Place::Cap(_)) | (_, None, _) => bail!("nothing to copy"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn problem(&mut self, line: String) {
        complain(self.bar.as_ref(), &line);
        self.problems += 1;
    }

    async fn upload(&self, src: &Path) -> anyhow::Result<Cap> {
        let file = std::fs::File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot stat {}", src.display()))?
            .len();
        Ok(self.node.grid.upload(file, size, KeyChoice::Convergent, None).await?)
    }

    async fn download(&self, cap: &Cap, dst: &Path) -> anyhow::Result<()> {
        let text = cap.to_string();
        super::files::get_quiet(&self.node, &text, dst).await?;
        self.done();
        Ok(())
    }

    /// Copies a local tree under `path` (made if missing), one directory write per directory.
    async fn local_tree_to_grid(&mut self, src: &Path, vfs: &Vfs, path: &str) -> anyhow::Result<()> {
        let mut to_copy = vec![(src.to_path_buf(), path.trim_end_matches('/').to_string())];
        while let Some((local, remote)) = to_copy.pop() {
            match vfs.stat(remote.as_bytes()).await {
                Ok(stat) if stat.kind == Kind::Directory => {}
                Ok(_) => {
                    self.problem(format!("{remote}: a file is in the way of a directory"));
                    continue;
                }
                Err(_) => vfs
                    .mkdir(remote.as_bytes())
                    .await
                    .map_err(|e| anyhow::anyhow!("{remote}: {e}"))?,
            }
            let mut files = Vec::new();
            let mut entries: Vec<_> = std::fs::read_dir(&local)
                .with_context(|| format!("cannot read {}", local.display()))?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    self.problem(format!("{}: name is not UTF-8, skipped", entry.path().display()));
                    continue;
                };
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => to_copy.push((entry.path(), format!("{remote}/{name}"))),
                    Ok(meta) if meta.is_file() => files.push((name, entry.path(), meta)),
                    Ok(_) => self.problem(format!("{}: not a file or directory, skipped", entry.path().display())),
                    Err(e) => self.problem(format!("{}: {e}", entry.path().display())),
                }
            }
            let grid = self.node.grid.clone();
            let uploads = futures::stream::iter(files.into_iter().map(|(name, local_path, meta)| {
                let grid = grid.clone();
                async move {
                    let result = async {
                        let file = std::fs::File::open(&local_path)?;
                        let cap = grid.upload(file, meta.len(), KeyChoice::Convergent, None).await?;
                        anyhow::Ok(cap)
                    }
                    .await;
                    (name, local_path, mtime_of(&meta).unwrap_or(0.0), result)
                }
            }))
            .buffered(UPLOADS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
            let mut linked = Vec::new();
            for (name, local_path, mtime, result) in uploads {
                match result {
                    Ok(cap) => linked.push((name, cap, mtime)),
                    Err(e) => self.problem(format!("{}: {e:#}", local_path.display())),
                }
            }
            let count = linked.len() as u64;
            let refused = vfs
                .link_files(remote.as_bytes(), &linked)
                .await
                .map_err(|e| anyhow::anyhow!("{remote}: {e}"))?;
            for name in &refused {
                self.problem(format!("{remote}/{name}: is a directory; a file cannot replace it"));
            }
            if let Some(bar) = &self.bar {
                bar.inc(count - refused.len() as u64);
            }
        }
        Ok(())
    }

    /// Downloads a grid tree into `dst` (made if missing).
    async fn grid_tree_to_local(&mut self, root: Cap, dst: &Path) -> anyhow::Result<()> {
        let mut to_copy = vec![(root, dst.to_path_buf())];
        while let Some((cap, local)) = to_copy.pop() {
            std::fs::create_dir_all(&local).with_context(|| format!("cannot create {}", local.display()))?;
            let children = self.node.grid.list_directory(&cap).await?;
            for (name, child) in children {
                let Some(child) = child_cap(&child) else {
                    self.problem(format!("{}: unknown cap kind, skipped", local.join(&name).display()));
                    continue;
                };
                if name.contains('/') || name == ".." || name == "." {
                    self.problem(format!("{name:?}: not a safe local name, skipped"));
                    continue;
                }
                let path = local.join(&name);
                if matches!(child, Cap::Directory(_)) {
                    to_copy.push((child, path));
                } else if let Err(e) = self.download(&child, &path).await {
                    self.problem(format!("{}: {e:#}", path.display()));
                }
            }
        }
        Ok(())
    }

    /// Copies a grid tree to `path` in `vfs`: new directories, files linked by cap.
    async fn grid_tree_to_grid(&mut self, root: Cap, vfs: &Vfs, path: &str) -> anyhow::Result<()> {
        let mut to_copy = vec![(root, path.trim_end_matches('/').to_string())];
        while let Some((cap, remote)) = to_copy.pop() {
            if vfs.stat(remote.as_bytes()).await.is_err() {
                vfs.mkdir(remote.as_bytes())
                    .await
                    .map_err(|e| anyhow::anyhow!("{remote}: {e}"))?;
            }
            let children = self.node.grid.list_directory(&cap).await?;
            let mut linked = Vec::new();
            for (name, child) in children {
                let mtime = child.metadata.get("mtime").and_then(serde_json::Value::as_f64);
                match child_cap(&child) {
                    Some(sub @ Cap::Directory(_)) => to_copy.push((sub, format!("{remote}/{name}"))),
                    Some(file) => linked.push((name, file, mtime.unwrap_or_else(crate::grid::directory::now))),
                    None => self.problem(format!("{remote}/{name}: unknown cap kind, skipped")),
                }
            }
            let count = linked.len() as u64;
            let refused = vfs
                .link_files(remote.as_bytes(), &linked)
                .await
                .map_err(|e| anyhow::anyhow!("{remote}: {e}"))?;
            for name in &refused {
                self.problem(format!("{remote}/{name}: is a directory; a file cannot replace it"));
            }
            if let Some(bar) = &self.bar {
                bar.inc(count - refused.len() as u64);
            }
        }
        Ok(())
    }
}

/// A local file's modification time, in Unix seconds.
pub(crate) fn mtime_of(meta: &std::fs::Metadata) -> Option<f64> {
    meta.modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}
