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
        Some(path) => download_to(&mut reader, path, progress_ref).await?,
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

/// Creates a directory at `target`; with none, an unlinked one, and prints its write cap.
pub(crate) async fn mkdir(dir: &Path, target: Option<&str>, format: &str) -> anyhow::Result<()> {
    let format = if format.eq_ignore_ascii_case("MDMF") {
        crate::grid::uri::MutableFormat::Mdmf
    } else {
        crate::grid::uri::MutableFormat::Sdmf
    };
    let Some(target) = target else {
        let node = Node::open(dir)?;
        let cap = node.grid.create_directory_as(format).await?;
        println!("{cap}");
        return Ok(());
    };
    let (_, vfs, path) = open_path(dir, target)?;
    vfs.mkdir_as(path.as_bytes(), format)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(target)))
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

/// Links `from` (a path, or a bare cap) at `to` as well (`lafs ln`).
pub(crate) async fn ln(dir: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    if from.starts_with("URI:") && !from.contains('/') {
        let cap = parse_cap(from)?;
        let (_, to_vfs, mut to_path) = open_path(dir, to)?;
        if to_path.is_empty() || to_path.ends_with('/') {
            bail!("{}: a bare cap has no name to link it under", display_path(from));
        }
        to_path = to_path.trim_end_matches('/').to_string();
        return to_vfs
            .link_file(to_path.as_bytes(), &cap, true, None)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(to)));
    }
    link_or_move(dir, from, to, LinkMode::Link).await
}

/// Downloads the file `cap_text` to `out` without a progress bar (for `cp`, which has its own).
pub(crate) async fn get_quiet(node: &Node, cap_text: &str, out: &Path) -> anyhow::Result<()> {
    let chk = match parse_cap(cap_text)? {
        Cap::Literal(lit) => return write_output(Some(out), &lit.data).await,
        Cap::Mutable(mutable) => {
            let data = node.grid.read_mutable(&mutable).await?;
            return write_output(Some(out), &data).await;
        }
        Cap::Chk(chk) => chk,
        other => bail!("{} caps cannot be downloaded as files", other.kind()),
    };
    let mut reader = node.grid.open_file(&chk).await?;
    download_to(&mut reader, out, None).await
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

/// Writes `reader`'s file to `path` through `<path>.lafs-partial` and a rename, so a failed
/// download never leaves a partial file under its name. A symbolic link is followed (the file it
/// names gets the contents, the link stays); a path that is no regular file (`/dev/null`, a pipe)
/// is written to as it is: a rename would put a regular file in its place.
async fn download_to(
    reader: &mut crate::grid::immutable::download::FileReader,
    path: &Path,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> anyhow::Result<()> {
    let target = match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_dir() => bail!("{} is a directory", path.display()),
        Ok(meta) if !meta.is_file() => {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            return write_download(reader, file, progress).await;
        }
        // A link to a regular file: that file is the one replaced.
        Ok(_) => tokio::fs::canonicalize(path)
            .await
            .unwrap_or_else(|_| path.to_path_buf()),
        // A link to nothing yet: writing through it creates what it names.
        Err(_) if path.is_symlink() => {
            let file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?;
            return write_download(reader, file, progress).await;
        }
        Err(_) => path.to_path_buf(),
    };
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".lafs-partial");
    let tmp = PathBuf::from(tmp);
    let file = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = write_download(reader, file, progress).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, &target)
        .await
        .with_context(|| format!("cannot rename to {}", path.display()))
}

/// Streams `reader`'s file into `file` and flushes it.
async fn write_download(
    reader: &mut crate::grid::immutable::download::FileReader,
    file: tokio::fs::File,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> anyhow::Result<()> {
    let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
    reader.write_to(&mut writer, progress).await?;
    writer.flush().await.context("write download")?;
    Ok(())
}
