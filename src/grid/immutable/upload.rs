//! Uploading an immutable file: convergent key, share placement, and the pipelined encrypt → encode → write path.
//!
//! Three stages run at once so both cores stay busy: a blocking reader that
//! encrypts and hashes ciphertext, a blocking encoder that erasure-codes and
//! hashes blocks, and the async writer that sends blocks to the servers. A
//! put returns only after every share is closed (fsynced) and servers of
//! happiness is still met; on failure every unfinished share is aborted.
//! What an upload encodes with and where its shares may go is its [`UploadPlan`].

mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use tokio::sync::mpsc;

pub use plan::{KeyChoice, NodeId, UploadPlan};

use crate::grid::budget::BudgetPermit;
use crate::grid::crypto::random_bytes;
use crate::grid::erasure::Codec;
use crate::grid::hashutil::storage_index_hash;
use crate::grid::immutable::chk::{self, ChkHashes, ConvergentKeyHasher};
use crate::grid::immutable::layout::{FileShape, ShareLayout};
use crate::grid::selection;
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::{Cap, LiteralCap, StorageIndex};
use crate::grid::{ClientSecrets, EncodingParams, Error, Grid};

/// Files up to this size are stored in the cap itself (`URI:LIT:`).
pub const LITERAL_THRESHOLD: u64 = 55;

/// The provisional size of a streamed upload (the largest a share's offsets can describe);
/// its real size replaces it when the stream ends.
const STREAM_BOUND_SIZE: u64 = 1 << 50;

/// The convergent-key pass reads the source in pieces of this size, three buffers deep.
const KEY_PASS_CHUNK: usize = 4 << 20;

/// How long the aborts sent to a server that failed mid-upload may take, in the background.
const ABORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Called with the number of plaintext bytes encoded so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Where the shares of one upload go.
struct Placement {
    /// The file's storage index.
    si: StorageIndex,
    /// The happiness the upload must keep while servers fail.
    happy: usize,
    servers: Vec<Arc<dyn StorageServer>>,
    /// Shares the servers already hold: server index → shares.
    existing: BTreeMap<usize, BTreeSet<ShareNum>>,
    /// Shares being written: server index → shares.
    allocated: BTreeMap<usize, BTreeSet<ShareNum>>,
    /// Servers that failed during the upload (their shares were given up).
    failed: Vec<NodeId>,
}

/// One file's encoding, fixed before its first byte is read.
struct Encoding {
    /// The AES key.
    key: [u8; 16],
    /// k, N and the segment size the shape was made from.
    params: EncodingParams,
    /// The file's shape; for a stream, provisional (its size is [`STREAM_BOUND_SIZE`]).
    shape: FileShape,
    /// Where each part of a share goes.
    layout: ShareLayout,
    /// The k-of-N erasure codec.
    codec: Codec,
}

impl Encoding {
    /// A stream's size is learned only when it ends: its header is written last, with the real shape.
    fn streamed(&self) -> bool {
        self.shape.size == STREAM_BOUND_SIZE
    }
}

/// The plaintext an upload reads, and who is told how far it got.
struct PlaintextSource<R> {
    /// Read once, segment by segment, from the start.
    reader: R,
    /// Called with the bytes encoded so far.
    progress: Option<Progress>,
    /// The memory-budget permit for the first segment, when the caller has taken it already.
    first_segment: Option<BudgetPermit>,
}

type WriteResults = Vec<(usize, Result<(), crate::grid::storage::Error>)>;

impl Placement {
    fn happiness(&self) -> usize {
        let mut by_share: BTreeMap<ShareNum, BTreeSet<usize>> = BTreeMap::new();
        for (server, shares) in self.existing.iter().chain(self.allocated.iter()) {
            for share in shares {
                by_share.entry(*share).or_default().insert(*server);
            }
        }
        selection::happiness(&by_share)
    }

    fn server_count(&self) -> usize {
        self.existing
            .keys()
            .chain(self.allocated.keys())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Fails with [`Error::HappinessNotMet`] unless the shares placed still meet `happy`.
    fn check_happiness(&self, happy: usize) -> Result<(), Error> {
        let achieved = self.happiness();
        if achieved < happy {
            return Err(Error::HappinessNotMet {
                happy,
                achieved,
                servers: self.server_count(),
            });
        }
        Ok(())
    }

    async fn abort_all(&self) {
        let si = self.si;
        let aborts = self.allocated.iter().flat_map(|(server, shares)| {
            let server = self.servers[*server].clone();
            shares.iter().map(move |share| {
                let server = server.clone();
                async move { server.abort_share(si, *share).await }
            })
        });
        for result in join_all(aborts).await {
            if let Err(e) = result {
                tracing::debug!(storage_index = %si, "abort failed: {e}");
            }
        }
    }

    /// Drops a server that failed mid-upload; the upload goes on if happiness still holds.
    async fn drop_server(&mut self, server: usize) -> Result<(), Error> {
        let si = self.si;
        if let Some(shares) = self.allocated.remove(&server) {
            if !shares.is_empty() {
                self.failed.push(self.servers[server].id().node_id);
            }
            tracing::warn!(storage_index = %si, server = %self.servers[server].id().nickname, "server failed during upload; its shares are dropped");
            // A failing server may hang: its aborts must not hold up the shares still going to the others.
            let failing = self.servers[server].clone();
            tokio::spawn(async move {
                for share in shares {
                    let _ = tokio::time::timeout(ABORT_TIMEOUT, failing.abort_share(si, share)).await;
                }
            });
        }
        self.check_happiness(self.happy)
    }

    /// Starts one write per allocated share; the future owns everything it needs, so
    /// several segments' writes can be in flight while the placement is updated.
    fn start_writes(
        &self,
        what: impl Fn(ShareNum) -> Option<(u64, Bytes)>,
    ) -> impl std::future::Future<Output = WriteResults> + Send + 'static {
        let si = self.si;
        let writes: Vec<_> = self
            .allocated
            .iter()
            .flat_map(|(&server, shares)| {
                let s = self.servers[server].clone();
                let what = &what;
                shares.iter().filter_map(move |&share| {
                    what(share).map(|(offset, data)| (server, s.clone(), share, offset, data))
                })
            })
            .collect();
        join_all(
            writes
                .into_iter()
                .map(move |(server, s, share, offset, data)| async move {
                    (server, s.write_share(si, share, offset, data).await)
                }),
        )
    }

    /// Drops the servers whose writes failed; fails if happiness no longer holds.
    async fn finish_writes(&mut self, results: WriteResults) -> Result<(), Error> {
        let mut failed = BTreeSet::new();
        for (server, result) in results {
            if let Err(e) = result {
                if self.allocated.contains_key(&server) {
                    tracing::warn!(storage_index = %self.si, "share write failed: {e}");
                }
                failed.insert(server);
            }
        }
        for server in failed {
            self.drop_server(server).await?;
        }
        Ok(())
    }

    /// Writes to every allocated share (`what` gives offset and bytes per share number); drops failing servers.
    async fn write_to_all(&mut self, what: impl Fn(ShareNum) -> Option<(u64, Bytes)>) -> Result<(), Error> {
        let results = self.start_writes(what).await;
        self.finish_writes(results).await
    }

    /// Closes (commits) every written share, dropping servers whose close fails while happiness
    /// holds, and renews the leases of shares that were already there.
    async fn close(&mut self, secrets: &ClientSecrets) -> Result<(), Error> {
        let si = self.si;
        let closes = self.allocated.iter().flat_map(|(&server, shares)| {
            let s = self.servers[server].clone();
            shares.iter().map(move |&share| {
                let s = s.clone();
                async move { (server, s.close_share(si, share).await) }
            })
        });
        let mut failed = BTreeSet::new();
        for (server, result) in join_all(closes).await {
            if let Err(e) = result {
                tracing::warn!(storage_index = %si, "closing share failed: {e}");
                failed.insert(server);
            }
        }
        for server in failed {
            self.drop_server(server).await?;
        }
        tracing::debug!(storage_index = %si, "shares closed");
        let renewals = self.existing.keys().map(|&server| {
            let s = self.servers[server].clone();
            let lease = secrets.lease_for(si, &s.id().node_id);
            async move { s.add_or_renew_lease(si, lease).await }
        });
        for result in join_all(renewals).await {
            if let Err(e) = result {
                tracing::warn!(storage_index = %si, "lease renewal failed: {e}");
            }
        }
        self.allocated.clear();
        Ok(())
    }
}

impl Grid {
    /// Stores `data` as an immutable file with a convergent key; returns its cap.
    pub async fn upload_bytes(&self, data: Vec<u8>) -> Result<Cap, Error> {
        let size = data.len() as u64;
        self.upload(std::io::Cursor::new(data), size, KeyChoice::Convergent, None)
            .await
    }

    /// Stores `size` bytes read from `source` as an immutable file with the grid's encoding
    /// parameters; returns its cap.
    ///
    /// With a convergent key the source is read twice (once for the key).
    pub async fn upload<R: Read + Seek + Send + 'static>(
        &self,
        source: R,
        size: u64,
        key_choice: KeyChoice,
        progress: Option<Progress>,
    ) -> Result<Cap, Error> {
        let plan = UploadPlan::new(*self.params(), key_choice);
        self.upload_with_plan(source, size, &plan, progress).await
    }

    /// Stores `size` bytes read from `source` as an immutable file as `plan` says; returns its cap.
    pub async fn upload_with_plan<R: Read + Seek + Send + 'static>(
        &self,
        mut source: R,
        size: u64,
        plan: &UploadPlan,
        progress: Option<Progress>,
    ) -> Result<Cap, Error> {
        if size <= LITERAL_THRESHOLD {
            let data = read_whole(source, size)?;
            return Ok(Cap::Literal(LiteralCap { data }));
        }
        let params = plan.params;
        if size <= params.max_segment_size {
            return self.upload_one_segment(source, size, plan, progress).await;
        }
        let shape = FileShape::new(size, params.needed, params.total, params.max_segment_size);
        let codec = Codec::new(params.needed, params.total)?;
        let started = std::time::Instant::now();
        let (source, key) = match plan.key {
            KeyChoice::Random => (source, random_bytes::<16>()),
            KeyChoice::Given(key) => (source, key),
            KeyChoice::Convergent => {
                let secret = self.secrets().convergence.clone();
                let _buffers = self.memory_budget().acquire(3 * size.min(KEY_PASS_CHUNK as u64)).await;
                blocking(move || {
                    let key = convergent_key(&mut source, size, &secret, &shape)?;
                    source.seek(SeekFrom::Start(0)).map_err(read_error)?;
                    Ok((source, key))
                })
                .await?
            }
        };
        let si = StorageIndex(storage_index_hash(&key));
        tracing::debug!(storage_index = %si, elapsed_ms = started.elapsed().as_millis(), "key ready");
        let ueb_len = ChkHashes::placeholder_ueb(&shape).pack().len() as u64;
        let layout = ShareLayout::for_upload(&shape, ueb_len);
        let mut placement = self.place_shares(si, layout.share_size(ueb_len), plan).await?;
        tracing::debug!(storage_index = %si, elapsed_ms = started.elapsed().as_millis(), "shares placed");
        let encoding = Encoding {
            key,
            params,
            shape,
            layout,
            codec,
        };
        let source = PlaintextSource {
            reader: source,
            progress,
            first_segment: None,
        };
        let written = self.encode_and_write(source, encoding, &mut placement).await;
        self.finish_upload(plan, placement, written).await
    }

    /// A file of one segment at most: encoded in memory in one go and each share written whole,
    /// which for small files costs a fraction of the pipelined path's hand-offs.
    async fn upload_one_segment<R: Read + Send + 'static>(
        &self,
        source: R,
        size: u64,
        plan: &UploadPlan,
        progress: Option<Progress>,
    ) -> Result<Cap, Error> {
        let permit = self.memory_budget().acquire(one_segment_cost(&plan.params, size)).await;
        let data = blocking(move || read_whole(source, size)).await?;
        self.encode_one_segment(data, plan, progress, permit).await
    }

    /// The memory-budget bytes a file of `size` bytes (at most one segment) needs to be stored
    /// from memory: the plaintext, its ciphertext and the N shares built from it.
    pub fn one_segment_cost(&self, size: u64) -> u64 {
        one_segment_cost(self.params(), size)
    }

    /// The memory-budget bytes one segment of a streamed upload holds while it is encrypted,
    /// erasure-coded and written (its N blocks; the first k are the ciphertext itself).
    pub fn stream_segment_cost(&self) -> u64 {
        let params = self.params();
        let shape = FileShape::new(STREAM_BOUND_SIZE, params.needed, params.total, params.max_segment_size);
        shape.block_len(0) * params.total as u64
    }

    /// Stores `data`, a file the caller holds in memory, with `permit` holding at least
    /// [`Grid::one_segment_cost`] of the memory budget for it (it is given back when the upload
    /// ends). Longer than one segment, it is uploaded as [`Grid::upload`] would.
    pub async fn upload_in_memory(
        &self,
        data: Vec<u8>,
        key_choice: KeyChoice,
        permit: BudgetPermit,
    ) -> Result<Cap, Error> {
        let size = data.len() as u64;
        if size <= LITERAL_THRESHOLD {
            return Ok(Cap::Literal(LiteralCap { data }));
        }
        if size > self.params().max_segment_size {
            // Not what callers do: give the bytes back rather than wait for more while holding them.
            drop(permit);
            return self.upload(std::io::Cursor::new(data), size, key_choice, None).await;
        }
        let plan = UploadPlan::new(*self.params(), key_choice);
        self.encode_one_segment(data, &plan, None, permit).await
    }

    /// Encodes a file of one segment at most and writes each share whole; `permit` accounts
    /// for its memory until the shares are written.
    async fn encode_one_segment(
        &self,
        data: Vec<u8>,
        plan: &UploadPlan,
        progress: Option<Progress>,
        permit: BudgetPermit,
    ) -> Result<Cap, Error> {
        let params = plan.params;
        let key_choice = plan.key;
        let size = data.len() as u64;
        let secret = self.secrets().convergence.clone();
        let (finished, shares) = blocking(move || {
            let shape = FileShape::new(size, params.needed, params.total, params.max_segment_size);
            let key = match key_choice {
                KeyChoice::Random => random_bytes::<16>(),
                KeyChoice::Given(key) => key,
                KeyChoice::Convergent => {
                    let mut hasher = ConvergentKeyHasher::new(&secret, &shape);
                    hasher.update(&data);
                    hasher.finalize()
                }
            };
            let (finished, blocks) =
                chk::encode_in_memory_with_key(&data, key, params.needed, params.total, params.max_segment_size)?;
            drop(data);
            // Each block is freed as soon as its share is built: at most N/k times the file
            // is held at once.
            let header = finished.layout.encode_header();
            let shares: Vec<Bytes> = blocks
                .into_iter()
                .zip(&finished.trailers)
                .map(|(block, trailer)| {
                    let mut share = Vec::with_capacity(header.len() + block.len() + trailer.len());
                    share.extend_from_slice(&header);
                    share.extend_from_slice(&block);
                    share.extend_from_slice(trailer);
                    Bytes::from(share)
                })
                .collect();
            Ok((finished, shares))
        })
        .await?;
        let si = finished.cap.storage_index();
        let mut placement = self.place_shares(si, shares[0].len() as u64, plan).await?;
        let written = placement
            .write_to_all(|share| Some((0, shares[share as usize].clone())))
            .await;
        // Freed before the shares are finished: a replacement of dropped shares takes budget of its own.
        drop(shares);
        drop(permit);
        if let (Ok(()), Some(progress)) = (&written, &progress) {
            progress(size);
        }
        let written = written.map(|()| Cap::Chk(finished.cap));
        self.finish_upload(plan, placement, written).await
    }

    /// Stores a file whose size is learned only when `source` ends, encoding and sending its
    /// segments as they arrive (for protocol uploads that stream). It must be longer than one
    /// segment (shorter files are known whole: use [`Grid::upload`]).
    ///
    /// The key is random (a convergent key would need the whole file first). Shares are
    /// allocated at the servers' free space, the most a share could grow to, and written with
    /// the 64-bit (v2) share layout; servers give back what was not written when a share closes.
    pub async fn upload_stream<R: Read + Send + 'static>(&self, source: R) -> Result<Cap, Error> {
        self.upload_stream_with(source, None).await
    }

    /// [`Grid::upload_stream`] with the memory budget for its first segment already taken
    /// ([`Grid::stream_segment_cost`]), by a caller that must not wait for it.
    pub async fn upload_stream_with<R: Read + Send + 'static>(
        &self,
        source: R,
        first_segment: Option<BudgetPermit>,
    ) -> Result<Cap, Error> {
        if !self.accepts_open_ended_shares() {
            return Err(Error::Internal(
                "these storage servers need each upload's size in advance (spool it first)".into(),
            ));
        }
        let plan = UploadPlan::new(*self.params(), KeyChoice::Random);
        let params = plan.params;
        let shape = FileShape::new(STREAM_BOUND_SIZE, params.needed, params.total, params.max_segment_size);
        let codec = Codec::new(params.needed, params.total)?;
        let key = random_bytes::<16>();
        let si = StorageIndex(storage_index_hash(&key));
        let layout = ShareLayout::with_version(&shape, 2);
        let ueb_len = ChkHashes::placeholder_ueb(&shape).pack().len() as u64;
        let versions = join_all(self.servers().iter().map(|s| s.version())).await;
        let rooms: Vec<u64> = versions
            .into_iter()
            .flatten()
            .map(|v| v.available_space.min(v.maximum_immutable_share_size))
            .collect();
        // Each share may grow to its server's share of the free space (a server holds
        // ceil(N / servers) shares when there are fewer servers than shares).
        let per_server = params.total.div_ceil(rooms.len().max(1)) as u64;
        let room = rooms.iter().copied().max().unwrap_or(0) / per_server;
        // Free space changes while other uploads run; leave an eighth of it as slack so the
        // allocation is not refused by what was written since the servers answered.
        let allocated = layout.share_size(ueb_len).min(room - room / 8);
        let mut placement = self.place_shares(si, allocated, &plan).await?;
        let encoding = Encoding {
            key,
            params,
            shape,
            layout,
            codec,
        };
        let source = PlaintextSource {
            reader: source,
            progress: None,
            first_segment,
        };
        let written = self.encode_and_write(source, encoding, &mut placement).await;
        self.finish_upload(&plan, placement, written).await
    }

    /// The one way every upload ends. When its shares were written, they are closed; when the
    /// writing or the closing failed, every unfinished share is aborted. After a success, the
    /// shares of servers that failed during the upload are placed elsewhere if the plan says so.
    async fn finish_upload(
        &self,
        plan: &UploadPlan,
        mut placement: Placement,
        written: Result<Cap, Error>,
    ) -> Result<Cap, Error> {
        let closed = match written {
            Ok(cap) => placement.close(self.secrets()).await.map(|()| cap),
            Err(e) => Err(e),
        };
        match closed {
            Ok(cap) => {
                if plan.replace_dropped {
                    self.replace_dropped_shares(&cap, &placement.failed).await;
                }
                Ok(cap)
            }
            Err(e) => {
                placement.abort_all().await;
                Err(e)
            }
        }
    }

    /// After an upload that met happiness without the shares of servers that failed during
    /// it, places those shares on other servers (a repair, from the shares just written).
    /// The upload has succeeded either way: a failure here is logged, not returned.
    ///
    /// Returned as a boxed trait object: a repair uploads, and an upload may repair.
    fn replace_dropped_shares<'a>(
        &'a self,
        cap: &'a Cap,
        failed: &'a [NodeId],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Cap::Chk(chk) = cap else { return };
            if failed.is_empty() {
                return;
            }
            let si = chk.storage_index();
            tracing::warn!(storage_index = %si, failed = failed.len(), "placing the shares of failed servers elsewhere");
            // The servers that failed are left out: they would take the shares and fail again.
            let others = self.without_servers(failed);
            match others.repair(chk, &std::env::temp_dir(), false).await {
                Ok(report) => tracing::info!(
                    storage_index = %si,
                    good_shares = report.after.good_shares(),
                    "shares of failed servers placed elsewhere"
                ),
                Err(e) => tracing::warn!(storage_index = %si, "could not place the shares of failed servers: {e}"),
            }
        })
    }

    /// Finds servers for all N shares, allocating them; fails if happiness cannot be met.
    async fn place_shares(&self, si: StorageIndex, allocated_size: u64, plan: &UploadPlan) -> Result<Placement, Error> {
        let params = plan.params;
        let servers = self.permuted_servers(si);
        let listings = join_all(servers.iter().map(|s| s.list_shares(si))).await;
        let mut usable: Vec<usize> = Vec::new();
        let mut existing = BTreeMap::new();
        // Share numbers at or past N are none of this file's (a confused or lying server):
        // counting them would let it fake happiness.
        let in_range = |shares: &BTreeSet<ShareNum>| -> BTreeSet<ShareNum> {
            shares
                .iter()
                .copied()
                .filter(|&s| usize::from(s) < params.total)
                .collect()
        };
        // Copies this upload must not count (a repair's corrupt shares), by server index.
        let node_ids: Vec<NodeId> = servers.iter().map(|s| s.id().node_id).collect();
        let avoid = plan.avoided_by_index(&node_ids);
        let countable = |server: usize, shares: BTreeSet<ShareNum>| -> BTreeSet<ShareNum> {
            shares.into_iter().filter(|&s| !avoid.contains(&(server, s))).collect()
        };
        for (i, listing) in listings.into_iter().enumerate() {
            match listing {
                Ok(shares) => {
                    let shares = countable(i, in_range(&shares));
                    usable.push(i);
                    if !shares.is_empty() {
                        existing.insert(i, shares);
                    }
                }
                Err(e) => tracing::warn!(server = %servers[i].id().nickname, "server unusable for upload: {e}"),
            }
        }
        let mut placement = Placement {
            si,
            happy: params.happy,
            servers,
            existing,
            allocated: BTreeMap::new(),
            failed: Vec::new(),
        };
        let all_shares: Vec<ShareNum> = (0..params.total as ShareNum).collect();
        loop {
            let placed: BTreeSet<ShareNum> = placement
                .existing
                .values()
                .chain(placement.allocated.values())
                .flatten()
                .copied()
                .collect();
            let homeless: Vec<ShareNum> = all_shares.iter().copied().filter(|s| !placed.contains(s)).collect();
            if homeless.is_empty() || usable.is_empty() {
                break;
            }
            let load: BTreeMap<usize, usize> = usable
                .iter()
                .map(|&s| {
                    (
                        s,
                        placement.existing.get(&s).map_or(0, BTreeSet::len)
                            + placement.allocated.get(&s).map_or(0, BTreeSet::len),
                    )
                })
                .collect();
            let assignment = selection::assign_homeless_avoiding(&homeless, &usable, &load, &avoid);
            if assignment.is_empty() {
                // What is left may go only to servers holding bad copies of it.
                break;
            }
            let requests = assignment.iter().map(|(&server, shares)| {
                let s = placement.servers[server].clone();
                let lease = self.secrets().lease_for(si, &s.id().node_id);
                let shares = shares.clone();
                async move {
                    (
                        server,
                        shares.clone(),
                        s.allocate_buckets(si, lease, &shares, allocated_size).await,
                    )
                }
            });
            for (server, asked, answer) in join_all(requests).await {
                match answer {
                    Ok(allocation) => {
                        let already_have = countable(server, in_range(&allocation.already_have));
                        // Only shares asked for are written to (the HTTP client refuses others too).
                        let allocated: BTreeSet<ShareNum> =
                            allocation.allocated.intersection(&asked).copied().collect();
                        if !already_have.is_empty() {
                            placement
                                .existing
                                .entry(server)
                                .or_default()
                                .extend(already_have.iter().copied());
                        }
                        if !allocated.is_empty() {
                            placement
                                .allocated
                                .entry(server)
                                .or_default()
                                .extend(allocated.iter().copied());
                        }
                        let answered = asked
                            .iter()
                            .filter(|s| allocated.contains(s) || already_have.contains(s))
                            .count();
                        if answered < asked.len() {
                            // Full (or busy with these shares): ask it for nothing more.
                            usable.retain(|&u| u != server);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(server = %placement.servers[server].id().nickname, "allocation failed: {e}");
                        usable.retain(|&u| u != server);
                    }
                }
            }
        }
        if let Err(e) = placement.check_happiness(params.happy) {
            placement.abort_all().await;
            return Err(e);
        }
        Ok(placement)
    }

    /// Reads, encrypts, erasure-codes and writes the whole file into the placed shares, header,
    /// blocks and trailers; the shares are left open for [`Grid::finish_upload`].
    async fn encode_and_write<R: Read + Send + 'static>(
        &self,
        source: PlaintextSource<R>,
        encoding: Encoding,
        placement: &mut Placement,
    ) -> Result<Cap, Error> {
        let streamed = encoding.streamed();
        let Encoding {
            key,
            params,
            shape,
            layout,
            codec,
        } = encoding;
        let PlaintextSource {
            reader: mut source,
            progress,
            first_segment: mut prepaid,
        } = source;
        let si = placement.si;
        if !streamed {
            let header = Bytes::from(layout.encode_header());
            placement.write_to_all(|_| Some((0, header.clone()))).await?;
        }

        // Each segment holds its memory-budget permit (its N blocks) from before it is read
        // until its blocks are written. The reader waits for it while earlier segments of this
        // upload are still in flight: those finish without needing more, so waiting is safe.
        let (cipher_tx, mut cipher_rx) = mpsc::channel::<(u64, Bytes, FileShape, BudgetPermit)>(2);
        let (block_tx, mut block_rx) = mpsc::channel::<(u64, Vec<Bytes>, BudgetPermit)>(2);
        let max_segment_size = params.max_segment_size;
        let budget = self.memory_budget().clone();
        let reader = tokio::task::spawn_blocking(move || -> Result<(ChkHashes, u64), Error> {
            let mut hashes = ChkHashes::new(shape);
            let mut done = 0u64;
            for segnum in 0..shape.num_segments {
                let permit = match prepaid.take() {
                    Some(permit) => permit,
                    None => budget.blocking_acquire(shape.block_len(segnum) * shape.total as u64),
                };
                let want = shape.segment_len(segnum) as usize;
                let mut segment = vec![0u8; want];
                let got = read_full(&mut source, &mut segment)?;
                if got < want && !streamed {
                    return Err(source_changed());
                }
                if got == 0 {
                    break; // a streamed file that ended on a segment boundary
                }
                segment.truncate(got);
                // The segment that ends a stream is its tail: encode it with the real shape.
                let segment_shape = if got < want {
                    FileShape::new(done + got as u64, shape.needed, shape.total, max_segment_size)
                } else {
                    shape
                };
                chk::encrypt_segment(&key, &shape, segnum, &mut segment);
                hashes.add_ciphertext(&segment);
                done += segment.len() as u64;
                if cipher_tx
                    .blocking_send((segnum, Bytes::from(segment), segment_shape, permit))
                    .is_err()
                {
                    break; // the writer gave up; its error is the one reported
                }
                if let Some(progress) = &progress {
                    progress(done);
                }
                if got < want {
                    break;
                }
            }
            Ok((hashes, done))
        });
        let encoder = tokio::task::spawn_blocking(move || -> Result<ChkHashes, Error> {
            let mut hashes = ChkHashes::new(shape);
            while let Some((segnum, ciphertext, segment_shape, permit)) = cipher_rx.blocking_recv() {
                let encoded = chk::encode_segment(&codec, &segment_shape, segnum, ciphertext)?;
                hashes.add_block_hashes(&encoded.hashes);
                if block_tx.blocking_send((segnum, encoded.blocks, permit)).is_err() {
                    break;
                }
            }
            Ok(hashes)
        });
        // Up to two segments' writes are in flight, so the disks never wait on the encoder.
        let mut written = 0u64;
        let mut write_error = None;
        let mut in_flight = std::collections::VecDeque::new();
        while let Some((segnum, blocks, permit)) = block_rx.recv().await {
            let offset = layout.data + segnum * shape.block_size();
            let writes = placement.start_writes(|share| Some((offset, blocks[share as usize].clone())));
            drop(blocks);
            in_flight.push_back(tokio::spawn(async move {
                let results = writes.await;
                // The blocks are gone once every write has finished with them.
                drop(permit);
                results
            }));
            if in_flight.len() < 2 {
                continue;
            }
            if let Some(handle) = in_flight.pop_front() {
                let results = handle.await.map_err(|e| Error::Internal(e.to_string()))?;
                if let Err(e) = placement.finish_writes(results).await {
                    write_error = Some(e);
                    break;
                }
                written += 1;
            }
        }
        while let Some(handle) = in_flight.pop_front() {
            let results = handle.await.map_err(|e| Error::Internal(e.to_string()))?;
            if write_error.is_none() {
                match placement.finish_writes(results).await {
                    Ok(()) => written += 1,
                    Err(e) => write_error = Some(e),
                }
            }
        }
        drop(block_rx);
        let cipher_hashes = reader.await.map_err(|e| Error::Internal(e.to_string()))?;
        let block_hashes = encoder.await.map_err(|e| Error::Internal(e.to_string()))?;
        if let Some(e) = write_error {
            return Err(e);
        }
        let (cipher_hashes, size) = cipher_hashes?;
        let mut hashes = cipher_hashes.merge_block_hashes(block_hashes?);
        let (shape, layout) = if streamed {
            let real = FileShape::new(size, shape.needed, shape.total, max_segment_size);
            if real.segment_size != shape.segment_size {
                return Err(Error::Internal(
                    "a streamed upload must be longer than one segment".into(),
                ));
            }
            hashes = hashes.reshape(real, layout.version);
            let real_layout = ShareLayout::with_version(&real, layout.version);
            let header = Bytes::from(real_layout.encode_header());
            placement.write_to_all(|_| Some((0, header.clone()))).await?;
            (real, real_layout)
        } else {
            (shape, layout)
        };
        if written != shape.num_segments {
            return Err(source_changed());
        }
        let finished = hashes.finish(key);
        if finished.layout != layout {
            return Err(Error::Internal("share layout changed during encoding".into()));
        }
        tracing::debug!(storage_index = %si, "blocks written");
        let trailers: Vec<Bytes> = finished.trailers.into_iter().map(Bytes::from).collect();
        placement
            .write_to_all(|share| Some((layout.plaintext_hash_tree, trailers[share as usize].clone())))
            .await?;
        Ok(Cap::Chk(finished.cap))
    }
}

/// Hashes `size` bytes of `source` into the convergent key.
///
/// A scoped reader thread fills buffers while this thread hashes the previous
/// one, so the copy out of the page cache overlaps the hashing.
fn convergent_key<R: Read + Seek + Send>(
    source: &mut R,
    size: u64,
    secret: &[u8],
    shape: &FileShape,
) -> Result<[u8; 16], Error> {
    const CHUNK: usize = KEY_PASS_CHUNK;
    source.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let mut hasher = ConvergentKeyHasher::new(secret, shape);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    let chunk = (size.min(CHUNK as u64)) as usize;
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; chunk]);
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<(), Error> {
            let mut remaining = size;
            while remaining > 0 {
                let Ok(mut buf) = empty_rx.recv() else { return Ok(()) };
                let n = remaining.min(chunk as u64) as usize;
                buf.truncate(n);
                buf.resize(n, 0);
                source.read_exact(&mut buf).map_err(read_error)?;
                remaining -= n as u64;
                if full_tx.send(buf).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        });
        for buf in full_rx.iter() {
            hasher.update(&buf);
            let _ = empty_tx.send(buf);
        }
        reader
            .join()
            .map_err(|_| Error::Internal("convergent key reader panicked".into()))?
    })?;
    Ok(hasher.finalize())
}

/// The memory-budget bytes a file of `size` bytes (at most one segment) encoded with `params`
/// needs to be stored from memory: the plaintext, its ciphertext and the N shares built from it.
fn one_segment_cost(params: &EncodingParams, size: u64) -> u64 {
    let block = size.div_ceil(params.needed as u64);
    2 * size + block * params.total as u64
}

/// Reads all of a source of `size` bytes; fails if it holds fewer or more.
fn read_whole<R: Read>(source: R, size: u64) -> Result<Vec<u8>, Error> {
    let mut data = Vec::with_capacity(size as usize);
    source.take(size + 1).read_to_end(&mut data).map_err(read_error)?;
    if data.len() as u64 != size {
        return Err(source_changed());
    }
    Ok(data)
}

/// Reads until `buf` is full or the source ends; returns how much was read.
fn read_full<R: Read>(source: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    Ok(filled)
}

fn read_error(e: std::io::Error) -> Error {
    Error::Io {
        context: "read upload source".into(),
        source: e,
    }
}

fn source_changed() -> Error {
    Error::Io {
        context: "read upload source".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the source changed size during the upload",
        ),
    }
}

/// Runs blocking work (encoding, hashing, file I/O) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::storage::ShareNum;

    fn grid(dir: &std::path::Path) -> Grid {
        let secrets = ClientSecrets {
            convergence: b"convergence".to_vec(),
            lease: b"lease".to_vec(),
        };
        Grid::open_local(dir, 10, EncodingParams::default(), secrets).unwrap()
    }

    /// The servers holding `share` of the file `si`, by node id.
    async fn holders(grid: &Grid, si: StorageIndex, share: ShareNum) -> Vec<NodeId> {
        let mut found = Vec::new();
        for server in grid.servers() {
            if server.list_shares(si).await.unwrap().contains(&share) {
                found.push(server.id().node_id);
            }
        }
        found
    }

    #[tokio::test]
    async fn a_plan_that_avoids_a_copy_places_that_share_again_on_another_server() {
        let dir = tempfile::tempdir().unwrap();
        let grid = grid(dir.path());
        let data = vec![5u8; 5000];
        let Cap::Chk(cap) = grid.upload_bytes(data.clone()).await.unwrap() else {
            panic!("not a CHK cap")
        };
        let si = cap.storage_index();
        let first = holders(&grid, si, 0).await;
        assert_eq!(first.len(), 1);

        // An ordinary plan counts the copy already there and places nothing new.
        let again = grid.upload_bytes(data.clone()).await.unwrap();
        assert_eq!(again, Cap::Chk(cap.clone()));
        assert_eq!(holders(&grid, si, 0).await, first);

        let plan = UploadPlan::repair(&cap, EncodingParams::default().max_segment_size, [(first[0], 0)]);
        let size = data.len() as u64;
        let stored = grid
            .upload_with_plan(std::io::Cursor::new(data), size, &plan, None)
            .await
            .unwrap();
        assert_eq!(stored, Cap::Chk(cap));
        let now = holders(&grid, si, 0).await;
        assert_eq!(now.len(), 2, "share 0 placed once more: {now:?}");
        assert!(now.contains(&first[0]), "the avoided copy is left where it was");
        for share in 1..10 {
            assert_eq!(
                holders(&grid, si, share).await.len(),
                1,
                "share {share} is not placed again"
            );
        }
    }
}
