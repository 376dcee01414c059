//! Downloading an immutable file: find shares, check them against the cap, and stream verified plaintext.
//!
//! Every block is checked against its share's block hash tree, whose root is
//! checked through the share hash tree against the UEB, whose hash is in the
//! cap. A share that fails any check is reported to its server and replaced by
//! another; the download fails only when fewer than k good shares remain.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::grid::budget::{BudgetPermit, MemoryBudget};

use crate::grid::erasure::Codec;
use crate::grid::hashutil::{Hash, block_hash};
use crate::grid::immutable::chk::{self, VerifiedShareHashes};
use crate::grid::immutable::layout::{FileShape, MAX_HEADER, ShareLayout};
use crate::grid::immutable::segment::{Fetched, SegmentWork};
use crate::grid::immutable::ueb::{self, UriExtension};
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::{ChkCap, StorageIndex};
use crate::grid::{Error, Grid};

/// One share on one server.
#[derive(Debug, Clone)]
pub struct ShareLocation {
    /// Share number.
    pub share: ShareNum,
    /// The server holding it.
    pub server: Arc<dyn StorageServer>,
    /// The share's first bytes, read in one request (a small file's whole share).
    prefetched: Option<Prefetched>,
}

/// Bytes of a share read ahead from its start.
#[derive(Debug, Clone)]
struct Prefetched {
    bytes: Arc<Vec<u8>>,
    /// The read came back short: these are all of the share's bytes.
    whole: bool,
}

impl Prefetched {
    /// What a read of `asked` bytes from the start returned.
    fn new(bytes: Vec<u8>, asked: u64) -> Self {
        Prefetched {
            whole: (bytes.len() as u64) < asked,
            bytes: Arc::new(bytes),
        }
    }
}

impl ShareLocation {
    fn new(share: ShareNum, server: Arc<dyn StorageServer>) -> Self {
        ShareLocation {
            share,
            server,
            prefetched: None,
        }
    }

    /// Reads up to `len` bytes from `offset`, from what was prefetched when it covers them.
    async fn read(&self, si: StorageIndex, offset: u64, len: u64) -> Result<Vec<u8>, crate::grid::storage::Error> {
        if let Some(pre) = &self.prefetched {
            let have = pre.bytes.len() as u64;
            let end = offset.saturating_add(len);
            if end <= have || pre.whole {
                let (start, end) = (offset.min(have) as usize, end.min(have) as usize);
                return Ok(pre.bytes[start..end].to_vec());
            }
        }
        self.server.read_share(si, self.share, offset, len).await
    }
}

/// Files up to this size are read with one request per share (one segment at the default size).
const PREFETCH_FILE_SIZE: u64 = 128 << 10;
/// Room for a small file's UEB past its hashes (Tahoe's are about 300-500 bytes).
const PREFETCH_UEB_ROOM: u64 = 1024;

/// How many bytes to ask for to read a small file's share whole (header, hashes, block and UEB),
/// or `None` when the file is not small.
fn small_share_request(cap: &ChkCap) -> Option<u64> {
    if cap.size > PREFETCH_FILE_SIZE {
        return None;
    }
    let shape = FileShape::new(cap.size, cap.needed as usize, cap.total as usize, PREFETCH_FILE_SIZE);
    Some(ShareLayout::with_version(&shape, 1).share_size(PREFETCH_UEB_ROOM))
}

/// Reads the first `count` of `locations` that nothing was read ahead for yet, each whole in one
/// request, where the file is small: header, hashes, UEB and block then come from memory instead
/// of four to six round trips each.
async fn prefetch_small_shares(si: StorageIndex, cap: &ChkCap, locations: &mut [ShareLocation], count: usize) {
    let Some(ask) = small_share_request(cap) else {
        return;
    };
    let count = count.min(locations.len());
    let missing: Vec<usize> = (0..count).filter(|&i| locations[i].prefetched.is_none()).collect();
    let reads = join_all(
        missing
            .iter()
            .map(|&i| locations[i].server.read_share(si, locations[i].share, 0, ask)),
    )
    .await;
    for (i, read) in missing.into_iter().zip(reads) {
        // A failed read is left for the reads that follow to meet and report.
        if let Ok(bytes) = read {
            locations[i].prefetched = Some(Prefetched::new(bytes, ask));
        }
    }
}

/// How long a read waits for the shares it guessed before it asks the servers what they hold:
/// a hung server then costs this, not its connection timeout.
const GUESS_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads shares 0 to k-1 of a small file from where an upload to these servers puts them (share
/// i on the i-th server of the permuted ring, round the ring again past its end), without asking
/// the servers first: when the guess is right, as it is for a file uploaded while these servers
/// were up, opening the file takes one request per share read and no listing at all. What a
/// wrong guess costs is a request that finds nothing; what comes back is checked like any share.
async fn guess_small_shares(grid: &Grid, si: StorageIndex, cap: &ChkCap) -> Vec<ShareLocation> {
    use futures::StreamExt as _;
    let Some(ask) = small_share_request(cap) else {
        return Vec::new();
    };
    let servers = grid.permuted_servers(si);
    if servers.is_empty() {
        return Vec::new();
    }
    let mut reads: futures::stream::FuturesUnordered<_> = (0..ShareNum::from(cap.needed))
        .map(|share| {
            let server = servers[usize::from(share) % servers.len()].clone();
            async move {
                let read = server.read_share(si, share, 0, ask).await;
                (server, share, read)
            }
        })
        .collect();
    let deadline = tokio::time::Instant::now() + GUESS_GRACE;
    let mut found = Vec::new();
    while let Ok(Some((server, share, read))) = tokio::time::timeout_at(deadline, reads.next()).await {
        if let Ok(bytes) = read {
            let mut location = ShareLocation::new(share, server);
            location.prefetched = Some(Prefetched::new(bytes, ask));
            found.push(location);
        }
    }
    found
}

/// Where a share sorts among those to read: primary shares (< k) need no erasure decoding, so
/// they come first.
fn primary_first(location: &ShareLocation, needed: usize) -> (bool, ShareNum) {
    (usize::from(location.share) >= needed, location.share)
}

/// The same share on the same server.
fn same_share(a: &ShareLocation, b: &ShareLocation) -> bool {
    a.share == b.share && a.server.id().node_id == b.server.id().node_id
}

/// Gives the shares the listings found what was already read of them.
fn adopt_guesses(locations: &mut [ShareLocation], guesses: Vec<ShareLocation>) {
    for guess in guesses {
        if let Some(location) = locations.iter_mut().find(|l| same_share(l, &guess)) {
            location.prefetched = guess.prefetched;
        }
    }
}

/// A share whose hashes were verified; its blocks can be read and checked.
#[derive(Debug)]
pub(super) struct GoodShare {
    pub location: ShareLocation,
    pub layout: ShareLayout,
    pub hashes: VerifiedShareHashes,
}

/// An open immutable file: verified UEB plus k verified shares (cloning it is cheap and opens nothing).
#[derive(Clone)]
pub struct FileReader {
    cap: ChkCap,
    si: StorageIndex,
    ueb: UriExtension,
    shape: FileShape,
    codec: Codec,
    crypttext_leaves: Arc<Vec<Hash>>,
    active: Vec<Arc<GoodShare>>,
    spare: Vec<ShareLocation>,
    rejected: Vec<(ShareLocation, String)>,
    budget: MemoryBudget,
    /// The grid, while its servers have not been asked what they hold (the shares read were
    /// found on a guess): asked once these shares run out.
    unlisted: Option<Grid>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileReader(si={}, size={})", self.si, self.cap.size)
    }
}

/// Finds every share of `si` on the grid, in permuted server order.
pub async fn locate_shares(grid: &Grid, si: StorageIndex) -> Vec<ShareLocation> {
    let servers = grid.permuted_servers(si);
    let listings = join_all(servers.iter().map(|s| s.list_shares(si))).await;
    let mut found = Vec::new();
    for (server, listing) in servers.into_iter().zip(listings) {
        match listing {
            Ok(shares) => found.extend(
                shares
                    .into_iter()
                    .map(|share| ShareLocation::new(share, server.clone())),
            ),
            Err(e) => tracing::warn!(server = %server.id().nickname, "cannot list shares: {e}"),
        }
    }
    found
}

/// How long a read waits for the remaining servers' listings once k distinct shares are found:
/// a hung server then costs this, not its connection timeout.
const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a corruption advisory may take, sent in the background.
const ADVISORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Finds the shares of `si` for reading: like [`locate_shares`], but once `needed` distinct
/// shares are known it waits only [`STRAGGLER_GRACE`] for servers still to answer.
pub async fn locate_shares_for_reading(grid: &Grid, si: StorageIndex, needed: usize) -> Vec<ShareLocation> {
    use futures::StreamExt as _;
    let servers = grid.permuted_servers(si);
    let mut pending: futures::stream::FuturesUnordered<_> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            async move { (i, s.list_shares(si).await) }
        })
        .collect();
    let mut listings: Vec<BTreeSet<ShareNum>> = vec![BTreeSet::new(); servers.len()];
    let mut deadline = None;
    loop {
        let next = match deadline {
            None => pending.next().await,
            Some(at) => match tokio::time::timeout_at(at, pending.next()).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::warn!(storage_index = %si, waiting = pending.len(), "reading without the servers that have not answered");
                    break;
                }
            },
        };
        let Some((i, listing)) = next else { break };
        match listing {
            Ok(shares) => listings[i] = shares,
            Err(e) => tracing::warn!(server = %servers[i].id().nickname, "cannot list shares: {e}"),
        }
        let distinct = listings.iter().flatten().collect::<BTreeSet<_>>().len();
        if deadline.is_none() && distinct >= needed {
            deadline = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
        }
    }
    servers
        .into_iter()
        .zip(listings)
        .flat_map(|(server, shares)| {
            shares
                .into_iter()
                .map(move |share| ShareLocation::new(share, server.clone()))
        })
        .collect()
}

/// Why a share could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareFault {
    /// Its server did not answer (or answered an error): the share may be fine.
    Unreadable(String),
    /// Its bytes do not match the cap: corrupt, or not this file's.
    Corrupt(&'static str),
}

impl std::fmt::Display for ShareFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShareFault::Unreadable(why) => write!(f, "unreadable: {why}"),
            ShareFault::Corrupt(why) => f.write_str(why),
        }
    }
}

fn unreadable(e: crate::grid::storage::Error) -> ShareFault {
    ShareFault::Unreadable(e.to_string())
}

/// Reads a share's header and UEB, checking the UEB against `ueb_hash`.
pub async fn read_share_ueb(
    si: StorageIndex,
    location: &ShareLocation,
    ueb_hash: &Hash,
) -> Result<(ShareLayout, UriExtension), ShareFault> {
    const BAD_HEADER: ShareFault = ShareFault::Corrupt("header or URI extension block does not match the cap");
    let header = location.read(si, 0, MAX_HEADER).await.map_err(unreadable)?;
    let layout = ShareLayout::decode_header(&header).map_err(|_| BAD_HEADER)?;
    let field = layout.ueb_length_field();
    let len_bytes = location
        .read(si, layout.uri_extension, field)
        .await
        .map_err(unreadable)?;
    if len_bytes.len() as u64 != field {
        return Err(BAD_HEADER);
    }
    let len = crate::grid::immutable::layout::be_uint(&len_bytes);
    if len > 1 << 20 {
        return Err(BAD_HEADER);
    }
    let packed = location
        .read(si, layout.uri_extension + field, len)
        .await
        .map_err(unreadable)?;
    if ueb::hash_packed(&packed) != *ueb_hash {
        return Err(BAD_HEADER);
    }
    let ueb = UriExtension::parse(&packed).map_err(|_| BAD_HEADER)?;
    Ok((layout, ueb))
}

/// The length of a share's hash region (crypttext tree, block tree, share hash chain), if the
/// header's offsets are ordered and no larger than the file's shape allows.
fn hash_region_len(layout: &ShareLayout, ueb: &UriExtension) -> Option<u64> {
    let len = layout.uri_extension.checked_sub(layout.crypttext_hash_tree)?;
    let total = usize::try_from(ueb.total_shares).ok()?;
    (len <= crate::grid::immutable::layout::max_hash_region(ueb.num_segments, total)).then_some(len)
}

/// The shape a verified UEB describes, if it is consistent (sizes, segments, k).
fn file_shape(ueb: &UriExtension, needed: usize, total: usize) -> Option<FileShape> {
    if ueb.segment_size == 0
        || !ueb.segment_size.is_multiple_of(needed as u64)
        || ueb.size.div_ceil(ueb.segment_size) != ueb.num_segments
    {
        return None;
    }
    let tail_size = match ueb.num_segments {
        0 => 0,
        n => ueb.size.checked_sub((n - 1).checked_mul(ueb.segment_size)?)?,
    };
    Some(FileShape {
        size: ueb.size,
        needed,
        total,
        segment_size: ueb.segment_size,
        num_segments: ueb.num_segments,
        tail_size,
    })
}

impl Grid {
    /// Opens a CHK file for reading (without waiting long for slow servers once k shares are found).
    pub async fn open_file(&self, cap: &ChkCap) -> Result<FileReader, Error> {
        self.open_file_with(cap, false).await
    }

    /// Opens a CHK file with the shares of every server that answers (for verifying all of them).
    pub async fn open_file_with_every_share(&self, cap: &ChkCap) -> Result<FileReader, Error> {
        self.open_file_with(cap, true).await
    }

    async fn open_file_with(&self, cap: &ChkCap, every_share: bool) -> Result<FileReader, Error> {
        let si = cap.storage_index();
        self.check_allowed(si)?;
        let needed = cap.needed as usize;
        let (mut spare, mut unlisted) = if every_share {
            let mut found = locate_shares(self, si).await;
            found.sort_by_key(|l| primary_first(l, needed));
            (found, None)
        } else {
            let guessed = guess_small_shares(self, si, cap).await;
            // The guesses are shares 0 to k-1, one each: all of them came back.
            if guessed.len() >= needed {
                (guessed, Some(self.clone()))
            } else {
                (list_for_reading(self, si, cap, guessed, &[]).await, None)
            }
        };
        let mut found = find_ueb(si, cap, &spare).await?;
        if found.is_none()
            && let Some(grid) = unlisted.take()
        {
            // What was guessed does not check out: the servers say where the shares are.
            spare = list_for_reading(&grid, si, cap, spare, &[]).await;
            found = find_ueb(si, cap, &spare).await?;
        }
        let Some((ueb, crypttext_leaves)) = found else {
            return Err(Error::NotEnoughShares { needed, found: 0 });
        };
        let shape =
            file_shape(&ueb, needed, cap.total as usize).ok_or(Error::IntegrityFailure { storage_index: si })?;
        let mut reader = FileReader {
            cap: cap.clone(),
            si,
            codec: Codec::new(needed, cap.total as usize)?,
            ueb,
            shape,
            crypttext_leaves: Arc::new(crypttext_leaves),
            active: Vec::new(),
            spare,
            rejected: Vec::new(),
            budget: self.memory_budget().clone(),
            unlisted,
        };
        reader.fill_active().await?;
        Ok(reader)
    }
}

/// Asks the servers where the shares of `si` are, for reading: primary shares (< k, which need
/// no erasure decoding) first, with what `known` already read of them, and a small file's first
/// k shares read whole; those `used` names are left out.
async fn list_for_reading(
    grid: &Grid,
    si: StorageIndex,
    cap: &ChkCap,
    known: Vec<ShareLocation>,
    used: &[&ShareLocation],
) -> Vec<ShareLocation> {
    let needed = cap.needed as usize;
    let mut found = locate_shares_for_reading(grid, si, needed).await;
    found.retain(|l| !used.iter().any(|u| same_share(u, l)));
    adopt_guesses(&mut found, known);
    found.sort_by_key(|l| primary_first(l, needed));
    prefetch_small_shares(si, cap, &mut found, needed).await;
    found
}

/// The UEB and crypttext hash tree leaves from the first of `locations` whose copies check out
/// against the cap.
async fn find_ueb(
    si: StorageIndex,
    cap: &ChkCap,
    locations: &[ShareLocation],
) -> Result<Option<(UriExtension, Vec<Hash>)>, Error> {
    for location in locations {
        let Ok((layout, ueb)) = read_share_ueb(si, location, &cap.ueb_hash).await else {
            continue;
        };
        if ueb.needed_shares != u64::from(cap.needed)
            || ueb.total_shares != u64::from(cap.total)
            || ueb.size != cap.size
        {
            return Err(Error::IntegrityFailure { storage_index: si });
        }
        let Some(region_len) = hash_region_len(&layout, &ueb) else {
            continue;
        };
        let region = location.read(si, layout.crypttext_hash_tree, region_len).await;
        if let Ok(leaves) = region
            .map_err(|_| ())
            .and_then(|r| chk::verify_crypttext_leaves(&r, &ueb).map_err(|_| ()))
        {
            return Ok(Some((ueb, leaves)));
        }
    }
    Ok(None)
}

impl FileReader {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.cap.size
    }

    /// The verified URI extension block.
    pub fn ueb(&self) -> &UriExtension {
        &self.ueb
    }

    /// Tops the active set up to k distinct verified shares, or fails with the count found.
    async fn fill_active(&mut self) -> Result<(), Error> {
        let needed = self.shape.needed;
        while self.active.len() < needed {
            let have: BTreeSet<ShareNum> = self.active.iter().map(|g| g.location.share).collect();
            let Some(pos) = self.spare.iter().position(|l| !have.contains(&l.share)) else {
                if let Some(grid) = self.unlisted.take() {
                    self.list_more(&grid).await;
                    continue;
                }
                return Err(Error::NotEnoughShares {
                    needed,
                    found: self.active.len(),
                });
            };
            let location = self.spare.remove(pos);
            match self.verify_share(&location).await {
                Ok(good) => self.active.push(Arc::new(good)),
                Err(fault) => self.report_bad(&location, fault),
            }
        }
        Ok(())
    }

    /// Asks the servers where the shares are, once the ones found on a guess ran out, and keeps
    /// those not already used or set aside.
    async fn list_more(&mut self, grid: &Grid) {
        let used: Vec<&ShareLocation> = (self.active.iter().map(|g| &g.location))
            .chain(self.rejected.iter().map(|(l, _)| l))
            .collect();
        let known = std::mem::take(&mut self.spare);
        self.spare = list_for_reading(grid, self.si, &self.cap, known, &used).await;
    }

    async fn verify_share(&self, location: &ShareLocation) -> Result<GoodShare, ShareFault> {
        const BAD_HASHES: ShareFault = ShareFault::Corrupt("share hashes do not verify");
        let (layout, _) = read_share_ueb(self.si, location, &self.cap.ueb_hash).await?;
        let region_len = hash_region_len(&layout, &self.ueb).ok_or(BAD_HASHES)?;
        let region = location
            .read(self.si, layout.crypttext_hash_tree, region_len)
            .await
            .map_err(unreadable)?;
        let hashes =
            chk::verify_share_hashes(&region, &layout, &self.ueb, location.share as usize).map_err(|_| BAD_HASHES)?;
        // Each share carries its own copy of the crypttext tree; a bad copy marks a bad share.
        if chk::verify_crypttext_leaves(&region, &self.ueb)
            .map_err(|_| BAD_HASHES)?
            .as_slice()
            != self.crypttext_leaves.as_slice()
        {
            return Err(BAD_HASHES);
        }
        if hashes.block_leaves.len() as u64 != self.shape.num_segments {
            return Err(BAD_HASHES);
        }
        Ok(GoodShare {
            location: location.clone(),
            layout,
            hashes,
        })
    }

    /// Sets a share aside; a corrupt one is reported to its server (in the background: a
    /// failing server must not hold up the read), an unreadable one is not.
    fn report_bad(&mut self, location: &ShareLocation, fault: ShareFault) {
        let reason = fault.to_string();
        tracing::warn!(storage_index = %self.si, share = location.share, server = %location.server.id().nickname, "skipping bad share: {reason}");
        if matches!(fault, ShareFault::Corrupt(_)) {
            let (server, si, share, advice) = (location.server.clone(), self.si, location.share, reason.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(ADVISORY_TIMEOUT, server.advise_corrupt_share(si, share, &advice)).await;
            });
        }
        self.rejected.push((location.clone(), reason));
    }

    /// Shares found bad so far.
    pub fn bad_shares(&self) -> usize {
        self.rejected.len()
    }

    fn segment_work(&self, segnum: u64) -> SegmentWork {
        SegmentWork {
            shape: self.shape,
            codec: self.codec.clone(),
            key: self.cap.key,
            crypttext_leaves: self.crypttext_leaves.clone(),
            segnum,
        }
    }

    /// Reads, verifies and decrypts segment `segnum`, in parts that, joined, are its plaintext
    /// (see [`SegmentWork::decode`]).
    async fn read_segment_parts(&mut self, segnum: u64) -> Result<Vec<Vec<u8>>, Error> {
        loop {
            let fetched = fetch_blocks(self.si, &self.active, &self.shape, segnum).await;
            let work = self.segment_work(segnum);
            let outcome = tokio::task::spawn_blocking(move || work.decode(fetched))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            match outcome {
                Ok(plaintext) => return Ok(plaintext),
                Err(bad_shares) if bad_shares.is_empty() => {
                    // Every block checked out yet the segment hash did not: the UEB itself lies.
                    return Err(Error::IntegrityFailure { storage_index: self.si });
                }
                Err(bad_shares) => {
                    for share in bad_shares {
                        if let Some(pos) = self.active.iter().position(|g| g.location.share == share) {
                            let gone = self.active.remove(pos);
                            self.report_bad(
                                &gone.location,
                                ShareFault::Corrupt("block hash mismatch or unreadable block"),
                            );
                        }
                    }
                    self.fill_active().await?;
                }
            }
        }
    }

    /// Streams the whole file into `out`, fetching the next segment while the current one is decoded.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(), Error> {
        self.write_range_to(0, self.size(), out, progress).await
    }

    /// Streams `len` bytes from `offset` into `out`, reading only the segments that cover them.
    pub async fn write_range_to<W: AsyncWrite + Unpin>(
        &mut self,
        offset: u64,
        len: u64,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(), Error> {
        let mut sink = Sink::Write { out, progress, done: 0 };
        self.stream_range(offset, len, &mut sink).await?;
        if let Sink::Write { out, .. } = sink {
            out.flush().await.map_err(|e| Error::Io {
                context: "write download".into(),
                source: e,
            })?;
        }
        Ok(())
    }

    /// Sends the plaintext of `len` bytes from `offset` to `pieces`, one piece per segment,
    /// each with the memory-budget permit that accounts for it: the receiver drops the permit
    /// once it has used the bytes. Ends early (an error) if the receiver goes away.
    pub async fn send_range(
        &mut self,
        offset: u64,
        len: u64,
        pieces: &mpsc::Sender<(Bytes, BudgetPermit)>,
    ) -> Result<(), Error> {
        self.stream_range::<tokio::io::Sink>(offset, len, &mut Sink::Pieces(pieces))
            .await
    }

    /// Hands `sink` the plaintext of `len` bytes from `offset`, segment by segment.
    ///
    /// Segments are fetched and decoded a few ahead, so disk reads, decoding and the output
    /// overlap; each one takes its bytes from the memory budget first. The next segment the
    /// reader needs waits for them; read-ahead beyond it happens only while the budget has
    /// room, so a spent budget slows reads down instead of stalling them behind each other.
    async fn stream_range<W: AsyncWrite + Unpin>(
        &mut self,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_, W>,
    ) -> Result<(), Error> {
        let end = offset.saturating_add(len).min(self.size());
        if offset >= end {
            return Ok(());
        }
        let seg = self.shape.segment_size;
        let first = offset / seg;
        let last = (end - 1) / seg;
        let mut ahead = std::collections::VecDeque::new();
        let mut next = first;
        for segnum in first..=last {
            while next <= last && ahead.len() < PREFETCH_SEGMENTS {
                // The fetched blocks (one segment's worth) and the decoded segment.
                let cost = 2 * self.shape.block_len(next) * self.shape.needed as u64;
                let permit = if ahead.is_empty() {
                    self.budget.acquire(cost).await
                } else {
                    match self.budget.try_acquire(cost) {
                        Some(permit) => permit,
                        None => break,
                    }
                };
                let (si, active, shape, work) = (self.si, self.active.clone(), self.shape, self.segment_work(next));
                ahead.push_back(tokio::spawn(async move {
                    let fetched = fetch_blocks(si, &active, &shape, work.segnum).await;
                    (tokio::task::spawn_blocking(move || work.decode(fetched)).await, permit)
                }));
                next += 1;
            }
            let (decoded, mut permit) = match ahead.pop_front() {
                Some(handle) => handle.await.map_err(|e| Error::Internal(e.to_string()))?,
                None => return Err(Error::Internal("prefetch queue ran dry".into())),
            };
            // A segment that fails its checks takes the slow path, under the same permit.
            let parts = match decoded {
                Ok(Ok(parts)) => parts,
                Ok(Err(_)) => self.read_segment_parts(segnum).await?,
                Err(e) => return Err(Error::Internal(e.to_string())),
            };
            permit.shrink_to(parts.iter().map(|part| part.len() as u64).sum());
            // Each part goes on as it is, with its share of the permit: no copy joins them.
            let mut at = segnum * seg;
            for part in parts {
                let part_end = at + part.len() as u64;
                let part_permit = permit.split_off(part.len() as u64);
                let (from, to) = (offset.max(at), end.min(part_end));
                if from < to {
                    let piece = Bytes::from(part).slice((from - at) as usize..(to - at) as usize);
                    sink.put(piece, part_permit).await?;
                }
                at = part_end;
            }
        }
        Ok(())
    }

    /// Reads `len` bytes from `offset` into memory.
    pub async fn read_range(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.write_range_to(offset, len, &mut out, None).await?;
        Ok(out)
    }

    /// Reads and checks every block of every share found, reporting each share's health.
    pub async fn verify_all(&self) -> Vec<(ShareLocation, Result<(), String>)> {
        let mut locations: Vec<ShareLocation> = self.active.iter().map(|g| g.location.clone()).collect();
        locations.extend(self.spare.iter().cloned());
        let mut report = Vec::new();
        for location in locations {
            let verdict = match self.verify_share(&location).await {
                Err(fault) => Err(fault.to_string()),
                Ok(good) => {
                    let mut verdict = Ok(());
                    for segnum in 0..self.shape.num_segments {
                        let block = read_block(self.si, &good, &self.shape, segnum).await;
                        match block {
                            Ok(b) if block_hash(&b) == good.hashes.block_leaves[segnum as usize] => {}
                            Ok(_) => {
                                verdict = Err(format!("block {segnum} is corrupt"));
                                break;
                            }
                            Err(e) => {
                                verdict = Err(format!("block {segnum} unreadable: {e}"));
                                break;
                            }
                        }
                    }
                    verdict
                }
            };
            report.push((location, verdict));
        }
        report.extend(self.rejected.iter().map(|(l, why)| (l.clone(), Err(why.clone()))));
        report
    }
}

/// Where a streamed read's segments go.
enum Sink<'a, W> {
    /// Written to `out` (the permit is dropped once they are).
    Write {
        out: &'a mut W,
        progress: Option<&'a (dyn Fn(u64) + Send + Sync)>,
        done: u64,
    },
    /// Handed on with their permits.
    Pieces(&'a mpsc::Sender<(Bytes, BudgetPermit)>),
}

impl<W: AsyncWrite + Unpin> Sink<'_, W> {
    async fn put(&mut self, piece: Bytes, permit: BudgetPermit) -> Result<(), Error> {
        match self {
            Sink::Write { out, progress, done } => {
                out.write_all(&piece).await.map_err(|e| Error::Io {
                    context: "write download".into(),
                    source: e,
                })?;
                *done += piece.len() as u64;
                if let Some(progress) = progress {
                    progress(*done);
                }
                Ok(())
            }
            Sink::Pieces(sender) => sender
                .send((piece, permit))
                .await
                .map_err(|_| Error::Internal("the reader went away".into())),
        }
    }
}

/// How many segments a streaming read fetches and decodes ahead of the one it writes.
const PREFETCH_SEGMENTS: usize = 3;

async fn read_block(si: StorageIndex, good: &GoodShare, shape: &FileShape, segnum: u64) -> Result<Vec<u8>, String> {
    let offset = good.layout.data + segnum * shape.block_size();
    let len = shape.block_len(segnum);
    let block = good.location.read(si, offset, len).await.map_err(|e| e.to_string())?;
    if block.len() as u64 != len {
        return Err("short block".into());
    }
    Ok(block)
}

async fn fetch_blocks(si: StorageIndex, active: &[Arc<GoodShare>], shape: &FileShape, segnum: u64) -> Fetched {
    let reads = active
        .iter()
        .map(|g| async move { (g.clone(), read_block(si, g, shape, segnum).await) });
    join_all(reads).await
}
