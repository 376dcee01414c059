//! The CPU half of reading an immutable file: fetched blocks checked against the hashes the cap commits to, erasure-decoded when needed, and decrypted.
//!
//! No I/O here: the download fetches the blocks and runs this work off the async runtime.

use std::sync::Arc;

use crate::grid::crypto::aes_ctr_at;
use crate::grid::erasure::Codec;
use crate::grid::hashutil::{Hash, block_hash, crypttext_segment_hash_of_parts};
use crate::grid::immutable::download::GoodShare;
use crate::grid::immutable::layout::FileShape;
use crate::grid::storage::ShareNum;

/// What was read from each share: its block, or why it could not be read.
pub(super) type Fetched = Vec<(Arc<GoodShare>, Result<Vec<u8>, String>)>;

/// The CPU half of reading a segment: check, decode, check again, decrypt.
pub(super) struct SegmentWork {
    pub shape: FileShape,
    pub codec: Codec,
    pub key: [u8; 16],
    pub crypttext_leaves: Arc<Vec<Hash>>,
    pub segnum: u64,
}

impl SegmentWork {
    /// The plaintext in parts that, joined, are the segment, or the share numbers whose blocks
    /// were bad (empty: the segment hash failed). When the primary blocks (shares 0..k) were
    /// fetched, they are the ciphertext itself: each is checked and decrypted where it lies and
    /// becomes a part, so no byte is copied.
    ///
    /// The segment's hash, a leaf of the ciphertext hash tree that the UEB commits to, vouches
    /// for every block it was decoded from, so the blocks' own hashes (a second pass over the
    /// same bytes) are computed only when it fails, to find the shares that lied.
    pub fn decode(self, fetched: Fetched) -> Result<Vec<Vec<u8>>, Vec<ShareNum>> {
        let mut blocks = Vec::with_capacity(fetched.len());
        let mut unreadable = Vec::new();
        for (good, block) in fetched {
            match block {
                Ok(bytes) => blocks.push((good, bytes)),
                Err(_) => unreadable.push(good.location.share),
            }
        }
        if !unreadable.is_empty() {
            return Err(unreadable);
        }
        let leaf = self.segnum as usize;
        let primary: Option<Vec<usize>> = (0..self.codec.needed())
            .map(|share| {
                blocks
                    .iter()
                    .position(|(good, _)| good.location.share as usize == share)
            })
            .collect();
        let mut parts: Vec<Vec<u8>> = match &primary {
            Some(positions) => positions.iter().map(|&p| std::mem::take(&mut blocks[p].1)).collect(),
            None => {
                let numbered = blocks
                    .iter()
                    .map(|(good, bytes)| (good.location.share as usize, bytes.clone()))
                    .collect();
                // Undecodable: no parts, which the hash check below rejects.
                self.codec.decode(numbered).unwrap_or_default()
            }
        };
        // The ciphertext is the parts' first `segment_len` bytes: the rest pads the last segment.
        let mut missing = self.shape.segment_len(self.segnum) as usize;
        let lens: Vec<usize> = parts
            .iter()
            .map(|part| {
                let n = part.len().min(missing);
                missing -= n;
                n
            })
            .collect();
        let hash = crypttext_segment_hash_of_parts(parts.iter().zip(&lens).map(|(part, &n)| &part[..n]));
        if missing == 0 && hash == self.crypttext_leaves[leaf] {
            let mut at = self.segnum * self.shape.segment_size;
            for (part, n) in parts.iter_mut().zip(lens) {
                part.truncate(n);
                aes_ctr_at(&self.key, at, part);
                at += n as u64;
            }
            parts.retain(|part| !part.is_empty());
            return Ok(parts);
        }
        // Find the shares that lied: the primary blocks go back where they came from, untouched.
        if let Some(positions) = primary {
            for (p, part) in positions.into_iter().zip(parts) {
                blocks[p].1 = part;
            }
        }
        Err(blocks
            .iter()
            .filter(|(good, bytes)| block_hash(bytes) != good.hashes.block_leaves[leaf])
            .map(|(good, _)| good.location.share)
            .collect())
    }
}
