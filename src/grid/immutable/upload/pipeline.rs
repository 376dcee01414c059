//! The pipelined encrypt → encode → write path of an upload of known or streamed size.
//!
//! Three stages run at once so both cores stay busy: a blocking reader that encrypts and hashes
//! ciphertext, a blocking encoder that erasure-codes and hashes blocks, and the async writer that
//! sends blocks to the servers.

use std::io::Read;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::grid::budget::BudgetPermit;
use crate::grid::erasure::Codec;
use crate::grid::hashutil::storage_index_hash;
use crate::grid::immutable::chk::{self, ChkHashes};
use crate::grid::immutable::layout::{FileShape, ShareLayout};
use crate::grid::immutable::upload::placement::Placement;
use crate::grid::immutable::upload::source::{PlaintextSource, read_full, source_changed};
use crate::grid::uri::{Cap, StorageIndex};
use crate::grid::{EncodingParams, Error, Grid};

/// The provisional size of a streamed upload (the largest a share's offsets can describe);
/// its real size replaces it when the stream ends.
pub(super) const STREAM_BOUND_SIZE: u64 = 1 << 50;

/// The URI extension block length the share layout of a file of `shape` reserves.
fn placeholder_ueb_len(shape: &FileShape) -> u64 {
    ChkHashes::placeholder_ueb(shape).pack().len() as u64
}

/// One file's encoding, fixed before its first byte is read.
pub(super) struct Encoding {
    /// The AES key.
    pub(super) key: [u8; 16],
    /// k, N and the segment size the shape was made from.
    pub(super) params: EncodingParams,
    /// The file's shape; for a stream, provisional (its size is [`STREAM_BOUND_SIZE`]).
    pub(super) shape: FileShape,
    /// Where each part of a share goes.
    pub(super) layout: ShareLayout,
    /// The k-of-N erasure codec.
    pub(super) codec: Codec,
}

impl Encoding {
    /// A file of `size` bytes: its shape and the share layout that size calls for.
    pub(super) fn for_file(key: [u8; 16], params: EncodingParams, size: u64) -> Result<Self, Error> {
        let shape = FileShape::new(size, params.needed, params.total, params.max_segment_size);
        let layout = ShareLayout::for_upload(&shape, placeholder_ueb_len(&shape));
        Self::with_layout(key, params, shape, layout)
    }

    /// A stream of unknown size: the provisional shape of [`STREAM_BOUND_SIZE`] bytes and the
    /// 64-bit (v2) share layout, the only one whose offsets can describe it.
    pub(super) fn for_stream(key: [u8; 16], params: EncodingParams) -> Result<Self, Error> {
        let shape = FileShape::new(STREAM_BOUND_SIZE, params.needed, params.total, params.max_segment_size);
        let layout = ShareLayout::with_version(&shape, 2);
        Self::with_layout(key, params, shape, layout)
    }

    fn with_layout(
        key: [u8; 16],
        params: EncodingParams,
        shape: FileShape,
        layout: ShareLayout,
    ) -> Result<Self, Error> {
        Ok(Encoding {
            key,
            params,
            shape,
            layout,
            codec: Codec::new(params.needed, params.total)?,
        })
    }

    /// The file's storage index, from its key.
    pub(super) fn storage_index(&self) -> StorageIndex {
        StorageIndex(storage_index_hash(&self.key))
    }

    /// The size each share is allocated at (for a stream, the most it could grow to).
    pub(super) fn share_size(&self) -> u64 {
        self.layout.share_size(placeholder_ueb_len(&self.shape))
    }

    /// A stream's size is learned only when it ends: its header is written last, with the real shape.
    fn streamed(&self) -> bool {
        self.shape.size == STREAM_BOUND_SIZE
    }
}

impl Grid {
    /// Reads, encrypts, erasure-codes and writes the whole file into the placed shares, header,
    /// blocks and trailers; the shares are left open for [`Grid::finish_upload`].
    pub(super) async fn encode_and_write<R: Read + Send + 'static>(
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
