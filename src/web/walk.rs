//! Walking `/uri/$CAP/a/b` to what it names, and the directory changes the web API makes,
//! with Tahoe's rules for `replace=` and intermediate directories.
//!
//! Links acknowledged from the commit journal but not yet published (SFTP and FTP closes) are
//! seen as the frontends see them, and a change waits for them to be published first, so the
//! web API and the other frontends agree on every directory.

use hyper::StatusCode;
use serde_json::{Map, Value};

use crate::grid::directory::{DirectoryError, child_cap, now, stamped_child};
use crate::grid::dirnode::{Child, normalize_name};
use crate::grid::uri::{Cap, MutableFormat};
use crate::grid::{Error, Grid};
use crate::web::args::Replace;
use crate::web::errors::WebError;

/// What a path names: the node, and (below the root cap) the directory entry that links it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The node's cap.
    pub cap: Cap,
    /// The directory and name it is linked under, when reached through a path.
    pub parent: Option<(Cap, String)>,
    /// The entry's metadata, when reached through a path.
    pub metadata: Option<Map<String, Value>>,
}

/// The entry `name` of `dir`: a link not yet published first, else the directory's own.
pub async fn child(grid: &Grid, dir: &Cap, name: &str) -> Result<Option<(Cap, Map<String, Value>)>, WebError> {
    let name = normalize_name(name);
    if let (Some(queue), Some(si)) = (grid.commit_queue(), dir.storage_index())
        && let Some(pending) = queue.pending(si, &name)
    {
        let mut metadata = Map::new();
        metadata.insert("mtime".into(), Value::from(pending.mtime));
        return Ok(Some((pending.cap, metadata)));
    }
    Ok(grid
        .directory_child(dir, &name)
        .await?
        .map(|c| (cap_of_child(&c), c.metadata)))
}

/// A child's strongest cap; one this version cannot parse is kept as an unknown cap.
pub fn cap_of_child(child: &Child) -> Cap {
    child_cap(child)
        .unwrap_or_else(|| Cap::Unknown(child.write_cap.clone().or(child.read_cap.clone()).unwrap_or_default()))
}

/// Follows `names` from `root`.
pub async fn walk(grid: &Grid, root: &Cap, names: &[String]) -> Result<Found, WebError> {
    let mut found = Found {
        cap: root.clone(),
        parent: None,
        metadata: None,
    };
    for name in names {
        if !matches!(found.cap, Cap::Directory(_)) {
            return Err(WebError::titled_page(
                StatusCode::BAD_REQUEST,
                format!("Files have no children named '{name}'"),
            ));
        }
        let (cap, metadata) = child(grid, &found.cap, name)
            .await?
            .ok_or_else(|| WebError::no_such_child(name))?;
        found = Found {
            parent: Some((found.cap.clone(), normalize_name(name))),
            cap,
            metadata: Some(metadata),
        };
    }
    Ok(found)
}

/// The directory `names` leads to from `root`, creating missing ones (as SDMF directories)
/// when `create`; a file in the way is Tahoe's 409.
pub async fn directory_at(grid: &Grid, root: &Cap, names: &[String], create: bool) -> Result<Cap, WebError> {
    let mut dir = root.clone();
    for name in names {
        if !matches!(dir, Cap::Directory(_)) {
            return Err(file_in_the_way(name));
        }
        dir = match child(grid, &dir, name).await? {
            Some((cap @ Cap::Directory(_), _)) => cap,
            Some(_) => return Err(file_in_the_way(name)),
            None if create => {
                let made = grid.create_directory().await?;
                link(grid, &dir, name, &made, Replace::Never, None).await?;
                made
            }
            None => return Err(WebError::no_such_child(name)),
        };
    }
    if !matches!(dir, Cap::Directory(_)) {
        return Err(WebError::bad_request("not a directory"));
    }
    Ok(dir)
}

fn file_in_the_way(name: &str) -> WebError {
    WebError::titled_page(
        StatusCode::CONFLICT,
        format!("Unable to create directory '{name}': a file was in the way"),
    )
}

/// Waits until the links of `dir` acknowledged from the journal are published, so a change
/// made next is neither overtaken by them nor by a replay of them.
pub async fn settle(grid: &Grid, dir: &Cap) -> Result<(), WebError> {
    if let (Some(queue), Some(si)) = (grid.commit_queue(), dir.storage_index())
        && queue.has_pending(si)
    {
        queue.flush(si).await?;
    }
    Ok(())
}

/// Refuses changes to read-only and immutable directories as Tahoe does.
fn writable(dir: &Cap) -> Result<(), WebError> {
    if dir.is_read_only() {
        return Err(WebError::not_writeable());
    }
    Ok(())
}

/// Links `cap` as `name` in `dir` under `replace`; `metadata` (user keys) replaces the old
/// entry's when given, else the old entry's are kept. Returns whether a link was replaced.
pub async fn link(
    grid: &Grid,
    dir: &Cap,
    name: &str,
    cap: &Cap,
    replace: Replace,
    metadata: Option<Map<String, Value>>,
) -> Result<bool, WebError> {
    writable(dir)?;
    settle(grid, dir).await?;
    let name = normalize_name(name);
    let replaced = grid
        .modify_directory(dir, |children| {
            let old = children.get(&name);
            let old_is_dir = old.is_some_and(|o| matches!(cap_of_child(o), Cap::Directory(_)));
            match (old, replace) {
                (Some(_), Replace::Never) => return Err(DirectoryError::Exists),
                (Some(_), Replace::OnlyFiles) if old_is_dir => return Err(DirectoryError::Exists),
                _ => {}
            }
            let user = metadata
                .clone()
                .or_else(|| old.map(|o| o.metadata.clone()))
                .unwrap_or_default();
            let child = stamped_child(old, cap, without_tahoe_key(user), now());
            Ok(children.insert(name.clone(), child).is_some())
        })
        .await?;
    Ok(replaced)
}

/// Links several children in one write of `dir` (`t=set_children`).
pub async fn link_many(
    grid: &Grid,
    dir: &Cap,
    entries: Vec<crate::web::dirops::NewChild>,
    replace: Replace,
) -> Result<(), WebError> {
    writable(dir)?;
    settle(grid, dir).await?;
    grid.modify_directory(dir, |children| {
        let stamp = now();
        for (name, cap, metadata) in &entries {
            let name = normalize_name(name);
            let old = children.get(&name);
            if old.is_some() && replace == Replace::Never {
                return Err(DirectoryError::Exists);
            }
            let user = metadata
                .clone()
                .or_else(|| old.map(|o| o.metadata.clone()))
                .unwrap_or_default();
            let child = stamped_child(old, cap, without_tahoe_key(user), stamp);
            children.insert(name, child);
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Removes `name` from `dir`; returns the cap it linked.
pub async fn unlink(grid: &Grid, dir: &Cap, name: &str) -> Result<Cap, WebError> {
    writable(dir)?;
    settle(grid, dir).await?;
    match grid.unlink(dir, name).await {
        Ok(child) => Ok(cap_of_child(&child)),
        Err(Error::Directory(DirectoryError::NotFound)) => {
            Err(WebError::text(StatusCode::NOT_FOUND, format!("No such child: {name}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves `from_name` of `from_dir` to `to_name` of `to_dir` (user metadata kept, link times
/// reset, as Tahoe's rename and relink do).
pub async fn relink(
    grid: &Grid,
    from_dir: &Cap,
    from_name: &str,
    to_dir: &Cap,
    to_name: &str,
    replace: Replace,
) -> Result<(), WebError> {
    writable(from_dir)?;
    writable(to_dir)?;
    let (from_name, to_name) = (normalize_name(from_name), normalize_name(to_name));
    let (cap, metadata) = child(grid, from_dir, &from_name)
        .await?
        .ok_or_else(|| WebError::text(StatusCode::NOT_FOUND, format!("No such child: {from_name}")))?;
    if from_dir == to_dir && from_name == to_name {
        return Ok(());
    }
    let user = without_tahoe_key(metadata);
    if from_dir == to_dir {
        settle(grid, from_dir).await?;
        grid.modify_directory(from_dir, |children| {
            let old = children.get(&to_name);
            let old_is_dir = old.is_some_and(|o| matches!(cap_of_child(o), Cap::Directory(_)));
            match (old, replace) {
                (Some(_), Replace::Never) => return Err(DirectoryError::Exists),
                (Some(_), Replace::OnlyFiles) if old_is_dir => return Err(DirectoryError::Exists),
                _ => {}
            }
            let moving = children.remove(&from_name).ok_or(DirectoryError::NotFound)?;
            let moved_cap = cap_of_child(&moving);
            children.insert(to_name.clone(), stamped_child(None, &moved_cap, user.clone(), now()));
            Ok(())
        })
        .await?;
        return Ok(());
    }
    link(grid, to_dir, &to_name, &cap, replace, Some(user)).await?;
    unlink(grid, from_dir, &from_name).await?;
    Ok(())
}

fn without_tahoe_key(mut metadata: Map<String, Value>) -> Map<String, Value> {
    metadata.remove("tahoe");
    metadata
}

/// A new empty mutable directory in `format`.
pub async fn new_directory(grid: &Grid, format: MutableFormat) -> Result<Cap, WebError> {
    Ok(grid.create_directory_as(format).await?)
}
