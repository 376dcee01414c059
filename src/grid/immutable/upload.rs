//! Uploading an immutable file: the entry points (known size, in memory, streamed), each run as its [`UploadPlan`] says.
//!
//! A put returns only after every share is closed (fsynced) and servers of happiness is still
//! met; on failure every unfinished share is aborted. `plan` holds an upload's choices, `source`
//! reads its plaintext, `placement` finds servers and finishes or aborts the shares, and
//! `pipeline` encrypts → encodes → writes files longer than one segment; a file of one segment
//! is encoded in memory here.

mod pipeline;
mod placement;
mod plan;
mod source;

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use futures::future::join_all;

pub use plan::{KeyChoice, NodeId, UploadPlan};
pub use source::Progress;

use crate::grid::budget::BudgetPermit;
use crate::grid::crypto::random_bytes;
use crate::grid::immutable::chk::{self, ConvergentKeyHasher};
use crate::grid::immutable::layout::FileShape;
use crate::grid::uri::{Cap, LiteralCap};
use crate::grid::{EncodingParams, Error, Grid};
use pipeline::{Encoding, STREAM_BOUND_SIZE};
use source::{KEY_PASS_CHUNK, PlaintextSource, convergent_key, read_error, read_whole};

/// Files up to this size are stored in the cap itself (`URI:LIT:`).
pub const LITERAL_THRESHOLD: u64 = 55;

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
        let encoding = Encoding::for_file(key, params, size)?;
        let si = encoding.storage_index();
        tracing::debug!(storage_index = %si, elapsed_ms = started.elapsed().as_millis(), "key ready");
        let mut placement = self.place_shares(si, encoding.share_size(), plan).await?;
        tracing::debug!(storage_index = %si, elapsed_ms = started.elapsed().as_millis(), "shares placed");
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
        self.stream_shape().block_len(0) * self.params().total as u64
    }

    /// The plaintext bytes in each segment of a streamed upload but its last (the maximum
    /// segment size, rounded up to a multiple of k).
    pub fn stream_segment_len(&self) -> u64 {
        self.stream_shape().segment_size
    }

    fn stream_shape(&self) -> FileShape {
        let params = self.params();
        FileShape::new(STREAM_BOUND_SIZE, params.needed, params.total, params.max_segment_size)
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
        let encoding = Encoding::for_stream(random_bytes::<16>(), plan.params)?;
        let si = encoding.storage_index();
        let versions = join_all(self.servers().iter().map(|s| s.version())).await;
        let rooms: Vec<u64> = versions
            .into_iter()
            .flatten()
            .map(|v| v.available_space.min(v.maximum_immutable_share_size))
            .collect();
        // Each share may grow to its server's share of the free space (a server holds
        // ceil(N / servers) shares when there are fewer servers than shares).
        let per_server = plan.params.total.div_ceil(rooms.len().max(1)) as u64;
        let room = rooms.iter().copied().max().unwrap_or(0) / per_server;
        // Free space changes while other uploads run; leave an eighth of it as slack so the
        // allocation is not refused by what was written since the servers answered.
        let allocated = encoding.share_size().min(room - room / 8);
        let mut placement = self.place_shares(si, allocated, &plan).await?;
        let source = PlaintextSource {
            reader: source,
            progress: None,
            first_segment,
        };
        let written = self.encode_and_write(source, encoding, &mut placement).await;
        self.finish_upload(&plan, placement, written).await
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

/// The memory-budget bytes a file of `size` bytes (at most one segment) encoded with `params`
/// needs to be stored from memory: the plaintext, its ciphertext and the N shares built from it.
fn one_segment_cost(params: &EncodingParams, size: u64) -> u64 {
    let block = size.div_ceil(params.needed as u64);
    2 * size + block * params.total as u64
}
