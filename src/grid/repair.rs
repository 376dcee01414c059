//! Repairing an immutable file: re-creating the shares the grid lost from the ones it kept.

use std::io::{Seek, SeekFrom};
use std::path::Path;

use crate::grid::check::CheckReport;
use crate::grid::upload::KeyChoice;
use crate::grid::uri::{Cap, ChkCap};
use crate::grid::{EncodingParams, Error, Grid};

/// What a repair found and did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The check before the repair.
    pub before: CheckReport,
    /// The check after it (the same as `before` when nothing was needed).
    pub after: CheckReport,
    /// Whether shares were re-created.
    pub repaired: bool,
}

impl Grid {
    /// Re-creates the missing shares of a CHK file. The file is downloaded (verified, into a
    /// temporary file under `scratch_dir`, so memory does not grow with it), encoded again with
    /// its own key, k, N and segment size, which gives byte-identical shares, and the shares no
    /// server holds are placed; servers that still hold shares keep them, with renewed leases.
    pub async fn repair(&self, cap: &ChkCap, scratch_dir: &Path) -> Result<RepairReport, Error> {
        let before = self.check(cap, false).await?;
        if before.is_healthy() {
            let after = before.clone();
            return Ok(RepairReport {
                before,
                after,
                repaired: false,
            });
        }
        let mut reader = self.open_file(cap).await?;
        let segment_size = reader.ueb().segment_size;
        let io = |context: &str| {
            let context = context.to_string();
            move |source| Error::Io { context, source }
        };
        std::fs::create_dir_all(scratch_dir).map_err(io("create the repair scratch directory"))?;
        let scratch = tempfile::tempfile_in(scratch_dir).map_err(io("create a repair scratch file"))?;
        let mut out = tokio::fs::File::from_std(scratch.try_clone().map_err(io("open the repair scratch file"))?);
        reader.write_to(&mut out, None).await?;
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(io("write the repair scratch file"))?;
        drop(out);
        let mut source = scratch;
        source
            .seek(SeekFrom::Start(0))
            .map_err(io("rewind the repair scratch file"))?;
        let params = EncodingParams {
            needed: cap.needed.into(),
            total: cap.total.into(),
            // Place shares wherever there is room: a repair that improves the file is worth
            // keeping even when fewer servers than `happy` are up.
            happy: 1,
            max_segment_size: segment_size,
        };
        let mut grid = self.clone().with_params(params);
        grid.replace_dropped = false;
        let stored = grid.upload(source, cap.size, KeyChoice::Given(cap.key), None).await?;
        if stored != Cap::Chk(cap.clone()) {
            return Err(Error::Internal(
                "repair re-encoded the file to a different cap; shares left as they were".into(),
            ));
        }
        let after = self.check(cap, false).await?;
        Ok(RepairReport {
            before,
            after,
            repaired: true,
        })
    }
}

/// The newest recoverable version of a mutable file and where its shares are.
#[derive(Debug, Clone)]
pub struct MutableHealth {
    /// k.
    pub needed: usize,
    /// N.
    pub total: usize,
    /// The version's sequence number.
    pub seqnum: u64,
    /// Its distinct good shares: (share number, server nickname).
    pub shares: Vec<(crate::grid::storage::ShareNum, String)>,
    /// Verified shares of older or competing versions.
    pub other_versions: usize,
}

impl MutableHealth {
    /// All N shares of the newest version are there.
    pub fn is_healthy(&self) -> bool {
        self.shares.len() >= self.total && self.other_versions == 0
    }
}

fn mutable_health(map: &crate::grid::mutable::retrieve::ServerMap) -> Option<MutableHealth> {
    let (newest, shares) = map.newest_recoverable()?;
    let version = newest.version();
    let mut found: Vec<_> = shares
        .iter()
        .map(|f| (f.share, f.server.id().nickname.clone()))
        .collect();
    found.sort();
    Some(MutableHealth {
        needed: newest.needed(),
        total: newest.total(),
        seqnum: version.0,
        other_versions: map
            .shares
            .iter()
            .filter(|f| f.verified.as_ref().is_some_and(|s| s.version() != version))
            .count(),
        shares: found,
    })
}

impl Grid {
    /// Finds the newest recoverable version of a mutable file (or directory) and its shares.
    pub async fn check_mutable(&self, cap: &crate::grid::uri::MutableCap) -> Result<MutableHealth, Error> {
        let map = self.settled_servermap(cap).await;
        mutable_health(&map).ok_or(Error::NotEnoughShares {
            needed: map
                .shares
                .first()
                .and_then(|f| f.verified.as_ref())
                .map_or(self.params().needed, |s| s.needed()),
            found: map.versions().values().map(Vec::len).max().unwrap_or(0),
        })
    }

    /// Republishes a mutable file's newest contents to all N share numbers (a new sequence
    /// number, as Tahoe's repairer does); needs the write cap. Returns the health before and after.
    pub async fn repair_mutable(
        &self,
        cap: &crate::grid::uri::MutableCap,
    ) -> Result<(MutableHealth, MutableHealth), Error> {
        if !matches!(cap.access, crate::grid::uri::MutableAccess::Write(_)) {
            return Err(Error::ReadOnly);
        }
        let _turn = self.lock_for_writing(cap.storage_index()).await;
        let map = self.settled_servermap(cap).await;
        let before = self.check_mutable(cap).await?;
        if before.is_healthy() {
            return Ok((before.clone(), before));
        }
        let contents = self.read_mutable_from(cap, &map)?;
        let params = EncodingParams {
            needed: before.needed,
            total: before.total,
            happy: 1,
            max_segment_size: self.params().max_segment_size,
        };
        self.clone()
            .with_params(params)
            .update_mutable_from(cap, &map, &contents)
            .await?;
        let after = self.check_mutable(cap).await?;
        Ok((before, after))
    }
}
