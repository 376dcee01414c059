//! Mutable files (SDMF, MDMF) inside directories: their size for stat and listings, their
//! contents read whole within the memory budget, and a write published as their next version.
//!
//! A mutable file is one signed, erasure-coded whole: the grid reads and publishes it whole
//! (as Tahoe does). So its contents are held in memory only while they are decoded or encoded,
//! under a permit of the node's memory budget, and only up to [`MAX_MUTABLE_FILE_SIZE`]; the
//! frontends keep what a client has open in their encrypted spool, not in memory. Its size
//! comes from the shares' signed headers (a few KiB each), not from reading it.

use futures::StreamExt;

use super::{EntryMetadata, Error, ErrorKind, Stat, Vfs, split_path, uri_paths};
use crate::grid::Grid;
use crate::grid::budget::BudgetPermit;
use crate::grid::uri::{Cap, MutableAccess, MutableCap};

/// The largest mutable file read or written through SFTP and FTP: 64 MiB, the web API's limit
/// too. Reading one holds its N shares (N/k times its size) and its plaintext in memory at once,
/// and publishing one its plaintext and N new shares: about 280 MiB at 64 MiB with 3-of-10, under
/// the memory budget (a file that needs more than the whole budget waits until it runs alone).
/// Bigger files belong in immutable files, which stream.
pub const MAX_MUTABLE_FILE_SIZE: u64 = 64 << 20;

/// Mutable files whose size a listing asks the grid for at once.
const SIZES_AT_ONCE: usize = 8;

/// Memory a mutable file of `size` bytes needs while it is decoded or encoded: its plaintext and
/// N shares of size/k.
pub fn working_memory(grid: &Grid, size: u64) -> u64 {
    let params = grid.params();
    let shares = size.div_ceil(params.needed.max(1) as u64) * params.total as u64;
    size.saturating_add(shares)
}

/// The newest contents of the mutable file `cap` and the budget permit that accounts for them;
/// `TooLarge` past [`MAX_MUTABLE_FILE_SIZE`] (before anything is read).
pub async fn read_whole(grid: &Grid, cap: &MutableCap) -> Result<(Vec<u8>, BudgetPermit), Error> {
    let size = grid.mutable_size(cap).await?;
    if size > MAX_MUTABLE_FILE_SIZE {
        return Err(Error::new(ErrorKind::TooLarge));
    }
    // Waiting is allowed: the permit is given back when this read is done, needing nothing more.
    let mut permit = grid.memory_budget().acquire(working_memory(grid, size)).await;
    let data = grid.read_mutable(cap).await?;
    if data.len() as u64 > MAX_MUTABLE_FILE_SIZE {
        // A version published since the size was read.
        return Err(Error::new(ErrorKind::TooLarge));
    }
    permit.shrink_to(data.len() as u64);
    Ok((data, permit))
}

impl Vfs {
    /// `stat` with a mutable file's size from the grid (other caps' stats are complete already).
    pub(super) async fn sized(&self, cap: &Cap, stat: Stat) -> Result<Stat, Error> {
        match cap {
            Cap::Mutable(m) => Ok(Stat {
                size: self.grid.mutable_size(m).await?,
                ..stat
            }),
            _ => Ok(stat),
        }
    }

    /// The stats of a listing's entries with the sizes of its mutable files filled in, several
    /// asked at once. A mutable file whose size cannot be read now is listed with size 0.
    pub(super) async fn sized_listing(&self, entries: Vec<(String, Cap, Stat)>) -> Vec<(String, Stat)> {
        futures::stream::iter(entries)
            .map(|(name, cap, stat)| async move {
                match self.sized(&cap, stat.clone()).await {
                    Ok(sized) => (name, sized),
                    Err(e) => {
                        tracing::debug!("size of mutable file {name:?} unknown: {e}");
                        (name, stat)
                    }
                }
            })
            .buffered(SIZES_AT_ONCE)
            .collect()
            .await
    }

    /// The writable mutable file at a `/uri/<cap>` path, which is written in place like one
    /// in a directory (it has no directory to link into). `None`: the path is not such a cap.
    pub(super) fn bare_mutable_cap(&self, path: &[u8]) -> Result<Option<Cap>, Error> {
        let names = split_path(path)?;
        match uri_paths::cap_start(&names) {
            Some((cap @ Cap::Mutable(_), [])) => Ok(Some(cap)),
            _ => Ok(None),
        }
    }

    /// Publishes `data` as the next version of the mutable file `cap` linked at `path`; returns
    /// once the grid holds it (servers of happiness met). The entry then records the client's
    /// mtime and mode, else the time of the write, when its directory is writable. `permit` is
    /// the budget for [`working_memory`], taken by the caller before it gathered `data` (taking
    /// more here, holding the plaintext's, could wait for ever).
    pub async fn publish_mutable(
        &self,
        path: &[u8],
        cap: &MutableCap,
        data: Vec<u8>,
        permit: BudgetPermit,
        metadata: EntryMetadata,
    ) -> Result<(), Error> {
        if self.is_read_only() || !matches!(cap.access, MutableAccess::Write(_)) {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if data.len() as u64 > MAX_MUTABLE_FILE_SIZE {
            return Err(Error::new(ErrorKind::TooLarge));
        }
        self.grid.update_mutable(cap, &data).await?;
        drop((data, permit));
        if self.bare_mutable_cap(path)?.is_some() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let attributes = EntryMetadata {
            mtime: Some(metadata.mtime.unwrap_or(now)),
            mode: metadata.mode,
            // Whoever holds the cap may publish without us: a recorded digest would go stale.
            sha256: None,
        };
        match self.set_attributes(path, attributes).await {
            // The contents are published; a read-only directory only keeps the old times.
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(()),
            other => other,
        }
    }
}
