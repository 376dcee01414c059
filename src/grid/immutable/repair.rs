//! Repairing an immutable file: re-creating the shares the grid lost from the ones it kept.

use std::path::Path;

use crate::grid::immutable::check::{CheckReport, ShareHealth};
use crate::grid::immutable::download::FileReader;
use crate::grid::immutable::upload::{UploadPlan, blocking};
use crate::grid::spool::Spool;
use crate::grid::uri::{Cap, ChkCap};
use crate::grid::{EncodingParams, Error, Grid};

/// What a repair found and did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The check before the repair.
    pub before: CheckReport,
    /// The check after it (the same as `before` when nothing was needed).
    pub after: CheckReport,
    /// Whether good shares were added (not when the file was healthy or had fewer than k good
    /// shares, nor when no server could take the missing ones).
    pub repaired: bool,
}

impl Grid {
    /// Re-creates the missing shares of a CHK file. The file is downloaded (verified, into an
    /// encrypted spool under `scratch_dir`, so memory does not grow with it), encoded again with
    /// its own key, k, N and segment size, which gives byte-identical shares, and the shares no
    /// server holds are placed; servers that still hold shares keep them, with renewed leases.
    /// With `verify` every block is checked first, and a share whose copy is corrupt is placed
    /// afresh on another server (the corrupt copy is left for its server's operator, as Tahoe does).
    pub async fn repair(&self, cap: &ChkCap, scratch_dir: &Path, verify: bool) -> Result<RepairReport, Error> {
        let before = self.check(cap, verify).await?;
        if before.is_healthy() || !before.is_recoverable() {
            let after = before.clone();
            return Ok(RepairReport {
                before,
                after,
                repaired: false,
            });
        }
        let mut reader = self.open_file(cap).await?;
        let segment_size = reader.ueb().segment_size;
        let spool = spool_plaintext(&mut reader, scratch_dir).await?;
        let bad_copies = before
            .shares
            .iter()
            .filter(|s| s.health != ShareHealth::Good)
            .map(|s| (s.node_id, s.share));
        let plan = UploadPlan::repair(cap, segment_size, bad_copies);
        let stored = self.upload_with_plan(spool.reader(), cap.size, &plan, None).await?;
        if stored != Cap::Chk(cap.clone()) {
            return Err(Error::Internal(
                "repair re-encoded the file to a different cap; shares left as they were".into(),
            ));
        }
        let after = self.check(cap, verify).await?;
        // The upload succeeds with only the shares already there (happy is 1): say whether
        // any share was added, so a repair with nowhere to put them is not called one.
        let repaired = after.good_shares() > before.good_shares();
        Ok(RepairReport {
            before,
            after,
            repaired,
        })
    }
}

/// Plaintext is read into the spool this many bytes at a time: enough segments per read for
/// the download's prefetch to overlap fetching and decoding, few enough to keep memory flat.
const SPOOL_CHUNK: u64 = 8 * 1024 * 1024;

/// Downloads a whole file (verified) into an encrypted spool, so the plaintext never reaches the disk.
async fn spool_plaintext(reader: &mut FileReader, scratch_dir: &Path) -> Result<Spool, Error> {
    let io = |context: &'static str| {
        move |source: std::io::Error| Error::Io {
            context: context.into(),
            source,
        }
    };
    let dir = scratch_dir.to_path_buf();
    let mut spool = blocking(move || Spool::new(&dir).map_err(io("create the repair spool"))).await?;
    let size = reader.size();
    // Whole segments per read, so no segment is fetched and decoded for two reads.
    let segment = reader.ueb().segment_size.max(1);
    let chunk = (SPOOL_CHUNK / segment).max(1) * segment;
    let mut offset = 0;
    while offset < size {
        let mut plain = Vec::with_capacity(chunk.min(size - offset) as usize);
        reader.write_range_to(offset, chunk, &mut plain, None).await?;
        if plain.is_empty() {
            return Err(Error::Internal("the download ended before the file's size".into()));
        }
        let at = offset;
        offset += plain.len() as u64;
        spool = blocking(move || {
            spool
                .write_at(at, &plain)
                .map_err(io("write the repair spool"))
                .map(|()| spool)
        })
        .await?;
    }
    Ok(spool)
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
