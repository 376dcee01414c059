//! `lafs put`, `get`, `mkdir`, `ls`, `mv` and `rm`: files and directories on the grid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;

use super::shared::{open_path, parse_cap, progress_bar};
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::uri::Cap;
use crate::node::Node;
use crate::vfs::LinkMode;

pub(crate) async fn put(dir: &Path, file: &Path, target: Option<&str>, random_key: bool) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    let source = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let meta = source
        .metadata()
        .with_context(|| format!("cannot stat {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", file.display());
    }
    let size = meta.len();
    // The target is checked before the upload, so a refused one costs nothing.
    let target = match target {
        Some(target) => {
            let (_, vfs, path) = open_path(dir, target)?;
            vfs.prepare_write(path.as_bytes())
                .await
                .map_err(|e| put_error(target, e))?;
            Some((target, vfs, path))
        }
        None => None,
    };
    let bar = progress_bar(size);
    let progress = bar
        .clone()
        .map(|b| Arc::new(move |done: u64| b.set_position(done)) as crate::grid::immutable::upload::Progress);
    let key = if random_key {
        KeyChoice::Random
    } else {
        KeyChoice::Convergent
    };
    let cap = node.grid.upload(source, size, key, progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some((target, vfs, path)) = target {
        // A directory made there since the check is refused here too.
        vfs.link_file(path.as_bytes(), &cap, true, None)
            .await
            .map_err(|e| put_error(target, e))?;
    }
    println!("{cap}");
    Ok(())
}

fn put_error(target: &str, e: crate::vfs::Error) -> anyhow::Error {
    if e.kind() == crate::vfs::ErrorKind::IsADirectory {
        anyhow::anyhow!("{}: is a directory; a file cannot replace it", display_path(target))
    } else {
        anyhow::anyhow!("{}: {e}", display_path(target))
    }
}

pub(crate) async fn get(dir: &Path, cap_text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let cap = if cap_text.starts_with("URI:") && !cap_text.contains('/') {
        parse_cap(cap_text)?
    } else {
        let (_, vfs, path) = open_path(dir, cap_text)?;
        vfs.cap_of(path.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("{cap_text}: {e}"))?
    };
    let chk = match cap {
        Cap::Literal(lit) => {
            return write_output(out, &lit.data).await;
        }
        Cap::Chk(chk) => chk,
        Cap::Mutable(mutable) => {
            // Mutable files (SDMF, MDMF) are read whole: Tahoe keeps them small.
            let node = Node::open(dir)?;
            let data = node.grid.read_mutable(&mutable).await?;
            return write_output(out, &data).await;
        }
        other => bail!("{} caps cannot be downloaded as files", other.kind()),
    };
    let node = Node::open(dir)?;
    let mut reader = node.grid.open_file(&chk).await?;
    let bar = progress_bar(reader.size());
    let progress = bar.clone().map(|b| move |done: u64| b.set_position(done));
    let progress_ref = progress.as_ref().map(|p| p as &(dyn Fn(u64) + Send + Sync));
    match out {
        Some(path) => {
            // Write beside the target and rename, so a failed download never leaves a partial file under its name.
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".lafs-partial");
            let tmp = PathBuf::from(tmp);
            let file = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
            if let Err(e) = reader.write_to(&mut writer, progress_ref).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e.into());
            }
            writer.flush().await.context("write download")?;
            drop(writer);
            tokio::fs::rename(&tmp, path)
                .await
                .with_context(|| format!("cannot rename to {}", path.display()))?;
        }
        None => {
            let mut stdout = tokio::io::stdout();
            reader.write_to(&mut stdout, progress_ref).await?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

async fn write_output(out: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => tokio::fs::write(path, data)
            .await
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            let mut stdout = tokio::io::stdout();
            stdout.write_all(data).await?;
            stdout.flush().await.context("write to standard output")
        }
    }
}

/// Creates a directory at `target`.
pub(crate) async fn mkdir(dir: &Path, target: &str) -> anyhow::Result<()> {
    let (_, vfs, path) = open_path(dir, target)?;
    vfs.mkdir(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

pub(crate) async fn ls(dir: &Path, target: &str, long: bool) -> anyhow::Result<()> {
    let (_, vfs, path) = open_path(dir, target)?;
    let entries = vfs
        .list(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    for (name, stat) in entries {
        if long {
            let kind = if stat.kind == crate::vfs::Kind::Directory {
                'd'
            } else {
                '-'
            };
            let mode = if stat.read_only { "r--" } else { "rw-" };
            let mtime = stat.mtime.map_or_else(|| "-".to_string(), |t| format!("{t:.0}"));
            println!("{kind}{mode} {:>12} {:>11} {name}", stat.size, mtime);
        } else {
            println!("{name}");
        }
    }
    Ok(())
}

/// Moves (`mv`) or links (`ln`) an entry, Tahoe style: a target ending in `/` means "into that
/// directory, under the same name"; a file at the target is replaced, a directory never is.
pub(crate) async fn link_or_move(dir: &Path, from: &str, to: &str, mode: LinkMode) -> anyhow::Result<()> {
    let (_, from_vfs, from_path) = open_path(dir, from)?;
    let (_, to_vfs, mut to_path) = open_path(dir, to)?;
    if to_path.is_empty() || to_path.ends_with('/') {
        let name = from_path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        to_path.push_str(name);
    }
    from_vfs
        .link_to(from_path.as_bytes(), &to_vfs, to_path.as_bytes(), mode)
        .await
        .map_err(|e| anyhow::anyhow!("{} -> {}: {e}", display_path(from), display_path(to)))
}

/// A path argument as errors may show it: a cap's secret part is left out.
pub(crate) fn display_path(text: &str) -> String {
    match text.strip_prefix("URI:") {
        Some(rest) => {
            let kind = rest.split(':').next().unwrap_or_default();
            match rest.split_once('/') {
                Some((_, path)) => format!("URI:{kind}:.../{path}"),
                None => format!("URI:{kind}:..."),
            }
        }
        None => text.to_string(),
    }
}

pub(crate) async fn rm(dir: &Path, target: &str) -> anyhow::Result<()> {
    let (_, vfs, path) = open_path(dir, target)?;
    let stat = vfs
        .stat(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    let result = if stat.kind == crate::vfs::Kind::Directory {
        vfs.rmdir(path.as_bytes()).await
    } else {
        vfs.remove(path.as_bytes()).await
    };
    result.map_err(|e| anyhow::anyhow!("{target}: {e}"))
}
