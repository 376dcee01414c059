//! The CHK codec: convergent keys, per-segment encryption and erasure coding, hash trees and share trailers.
//!
//! Pure: everything here takes bytes and returns bytes; the uploader and
//! downloader decide where those bytes come from and go to.

use bytes::Bytes;
use rayon::prelude::*;

use crate::grid::crypto::aes_ctr_at;
use crate::grid::erasure::{self, Codec};
use crate::grid::hashtree;
use crate::grid::hashutil::{Hash, TaggedHasher, block_hash, convergence_tag, crypttext_segment_hash, tag};
use crate::grid::immutable::layout::{FileShape, ShareLayout};
use crate::grid::immutable::ueb::UriExtension;
use crate::grid::uri::ChkCap;

/// Streams a plaintext into its convergent key.
pub struct ConvergentKeyHasher(TaggedHasher);

impl ConvergentKeyHasher {
    /// Starts the key for a file of `shape` under the node's convergence secret.
    pub fn new(secret: &[u8], shape: &FileShape) -> Self {
        let tag = convergence_tag(shape.needed, shape.total, shape.segment_size, secret);
        ConvergentKeyHasher(TaggedHasher::new(&tag))
    }

    /// Feeds plaintext in file order.
    pub fn update(&mut self, plaintext: &[u8]) {
        self.0.update(plaintext);
    }

    /// The 16-byte AES key.
    pub fn finalize(self) -> [u8; 16] {
        self.0.finalize16()
    }
}

/// Encrypts one plaintext segment in place (segments may be done in any order).
pub fn encrypt_segment(key: &[u8; 16], shape: &FileShape, segnum: u64, segment: &mut [u8]) {
    aes_ctr_at(key, segnum * shape.segment_size, segment);
}

/// The erasure-coded blocks of one segment and their hashes, one per share.
pub struct EncodedSegment {
    /// Block `i` goes to share `i`; the first k are slices of the ciphertext itself.
    pub blocks: Vec<Bytes>,
    /// `block_hash(blocks[i])`.
    pub hashes: Vec<Hash>,
}

/// Pads, splits and erasure-codes one ciphertext segment, and hashes each block.
///
/// The k data blocks are slices of `ciphertext` (only the tail segment is
/// copied, to pad it); the block hashes are computed on the rayon pool because
/// they are most of an upload's CPU time.
pub fn encode_segment(
    codec: &Codec,
    shape: &FileShape,
    segnum: u64,
    ciphertext: Bytes,
) -> Result<EncodedSegment, erasure::Error> {
    let block_len = shape.block_len(segnum) as usize;
    let k = shape.needed;
    let padded = if ciphertext.len() == block_len * k {
        ciphertext
    } else {
        let mut copy = ciphertext.to_vec();
        copy.resize(block_len * k, 0);
        Bytes::from(copy)
    };
    let mut blocks: Vec<Bytes> = (0..k)
        .map(|i| padded.slice(i * block_len..(i + 1) * block_len))
        .collect();
    let mut check = vec![vec![0u8; block_len]; shape.total - k];
    if block_len > 0 {
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        codec.encode_check_blocks(&refs, &mut check)?;
    }
    blocks.extend(check.into_iter().map(Bytes::from));
    let hashes = blocks.par_iter().map(|b| block_hash(b)).collect();
    Ok(EncodedSegment { blocks, hashes })
}

/// Collects the hashes that the trailers and the UEB are built from, segment by segment.
pub struct ChkHashes {
    shape: FileShape,
    /// Set for streamed uploads, whose header had to be chosen before the size was known.
    layout_version: Option<u32>,
    crypttext: TaggedHasher,
    segment_hashes: Vec<Hash>,
    block_hashes: Vec<Vec<Hash>>,
}

/// Everything an uploader needs after the last segment.
pub struct FinishedEncoding {
    /// The read cap.
    pub cap: ChkCap,
    /// Where each region lives in every share.
    pub layout: ShareLayout,
    /// Per share: the bytes from `layout.plaintext_hash_tree` to the end of the share.
    pub trailers: Vec<Vec<u8>>,
}

impl ChkHashes {
    /// Starts collecting for a file of `shape`.
    pub fn new(shape: FileShape) -> Self {
        // A streamed upload's provisional shape is huge; the vectors grow as needed.
        let expected = shape.num_segments.min(4096) as usize;
        ChkHashes {
            shape,
            layout_version: None,
            crypttext: TaggedHasher::new(tag::CIPHERTEXT),
            segment_hashes: Vec::with_capacity(expected),
            block_hashes: vec![Vec::with_capacity(expected); shape.total],
        }
    }

    /// The file turned out to be `shape` (a streamed upload learns its size at the end), written
    /// with share layout `version`.
    pub fn reshape(mut self, shape: FileShape, version: u32) -> ChkHashes {
        self.shape = shape;
        self.layout_version = Some(version);
        self
    }

    /// Feeds one ciphertext segment (unpadded), in order.
    pub fn add_ciphertext(&mut self, ciphertext: &[u8]) {
        // Two independent hashes of the same bytes: run them on both cores.
        let crypttext = &mut self.crypttext;
        let ((), segment_hash) = rayon::join(|| crypttext.update(ciphertext), || crypttext_segment_hash(ciphertext));
        self.segment_hashes.push(segment_hash);
    }

    /// Feeds the block hashes of one segment, in order.
    pub fn add_block_hashes(&mut self, hashes: &[Hash]) {
        for (share, hash) in self.block_hashes.iter_mut().zip(hashes) {
            share.push(*hash);
        }
    }

    /// Takes the block hashes collected by another collector (the two halves of a pipelined encode).
    pub fn merge_block_hashes(mut self, other: ChkHashes) -> ChkHashes {
        self.block_hashes = other.block_hashes;
        self
    }

    /// The UEB with placeholder hashes: same length as the real one, so the share size is known before encoding.
    pub fn placeholder_ueb(shape: &FileShape) -> UriExtension {
        ueb_for(shape, [0; 32], [0; 32], [0; 32])
    }

    /// Builds the trees, the UEB, the cap and every share's trailer.
    pub fn finish(self, key: [u8; 16]) -> FinishedEncoding {
        let shape = self.shape;
        let crypttext_tree = hashtree::build(&self.segment_hashes);
        let block_trees: Vec<Vec<Hash>> = self.block_hashes.iter().map(|h| hashtree::build(h)).collect();
        let share_leaves: Vec<Hash> = block_trees.iter().map(|t| t[0]).collect();
        let share_tree = hashtree::build(&share_leaves);
        let ueb = ueb_for(&shape, self.crypttext.finalize(), crypttext_tree[0], share_tree[0]);
        let packed = ueb.pack();
        let layout = match self.layout_version {
            Some(version) => ShareLayout::with_version(&shape, version),
            None => ShareLayout::for_upload(&shape, packed.len() as u64),
        };
        let trailers = block_trees
            .iter()
            .enumerate()
            .map(|(shnum, block_tree)| {
                let mut out = vec![0u8; (layout.crypttext_hash_tree - layout.plaintext_hash_tree) as usize];
                crypttext_tree.iter().for_each(|h| out.extend_from_slice(h));
                block_tree.iter().for_each(|h| out.extend_from_slice(h));
                hashtree::encode_chain(&hashtree::chain(&share_tree, shnum, shape.total, true), &mut out);
                if layout.version == 1 {
                    out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
                } else {
                    out.extend_from_slice(&(packed.len() as u64).to_be_bytes());
                }
                out.extend_from_slice(&packed);
                out
            })
            .collect();
        let cap = ChkCap {
            key,
            ueb_hash: ueb.hash(),
            needed: shape.needed as u16,
            total: shape.total as u16,
            size: shape.size,
        };
        FinishedEncoding { cap, layout, trailers }
    }
}

fn ueb_for(shape: &FileShape, crypttext_hash: Hash, crypttext_root_hash: Hash, share_root_hash: Hash) -> UriExtension {
    UriExtension {
        codec_name: "crs".into(),
        codec_params: shape.codec_params(),
        tail_codec_params: shape.tail_codec_params(),
        crypttext_hash,
        crypttext_root_hash,
        share_root_hash,
        needed_shares: shape.needed as u64,
        total_shares: shape.total as u64,
        num_segments: shape.num_segments,
        segment_size: shape.segment_size,
        size: shape.size,
    }
}

/// Encodes a whole in-memory file: the reference path the streaming uploader must agree with.
pub fn encode_in_memory(
    plaintext: &[u8],
    secret: &[u8],
    needed: usize,
    total: usize,
    max_segment_size: u64,
) -> Result<(FinishedEncoding, Vec<Vec<u8>>), erasure::Error> {
    let shape = FileShape::new(plaintext.len() as u64, needed, total, max_segment_size);
    let mut hasher = ConvergentKeyHasher::new(secret, &shape);
    hasher.update(plaintext);
    encode_in_memory_with_key(plaintext, hasher.finalize(), needed, total, max_segment_size)
}

/// Encodes a whole in-memory file under `key`; returns the encoding and each share's block data.
pub fn encode_in_memory_with_key(
    plaintext: &[u8],
    key: [u8; 16],
    needed: usize,
    total: usize,
    max_segment_size: u64,
) -> Result<(FinishedEncoding, Vec<Vec<u8>>), erasure::Error> {
    let shape = FileShape::new(plaintext.len() as u64, needed, total, max_segment_size);
    let codec = Codec::new(needed, total)?;
    let mut hashes = ChkHashes::new(shape);
    let mut data = vec![Vec::new(); total];
    for segnum in 0..shape.num_segments {
        let start = (segnum * shape.segment_size) as usize;
        let mut segment = plaintext[start..start + shape.segment_len(segnum) as usize].to_vec();
        encrypt_segment(&key, &shape, segnum, &mut segment);
        hashes.add_ciphertext(&segment);
        let encoded = encode_segment(&codec, &shape, segnum, Bytes::from(segment))?;
        hashes.add_block_hashes(&encoded.hashes);
        for (share, block) in data.iter_mut().zip(encoded.blocks) {
            share.extend_from_slice(&block);
        }
    }
    Ok((hashes.finish(key), data))
}

/// A share whose hash trees were checked against the UEB: its blocks can be verified one by one.
#[derive(Debug, Clone)]
pub struct VerifiedShareHashes {
    /// The block-hash-tree leaves (one per segment).
    pub block_leaves: Vec<Hash>,
}

/// Why a share's hashes did not check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    /// The hash region is too short or its share-hash chain is malformed.
    #[error("share hash region is malformed")]
    Malformed,
    /// A hash tree does not lead to the root in the UEB.
    #[error("share hashes do not match the file's root hashes")]
    HashMismatch,
}

/// Checks one share's hash region (from `layout.crypttext_hash_tree` to `layout.uri_extension`).
pub fn verify_share_hashes(
    region: &[u8],
    layout: &ShareLayout,
    ueb: &UriExtension,
    shnum: usize,
) -> Result<VerifiedShareHashes, ShareError> {
    let num_segments = ueb.num_segments as usize;
    let tree_bytes = hashtree::node_count(num_segments) * 32;
    let at = |offset: u64| (offset - layout.crypttext_hash_tree) as usize;
    let block_tree = region
        .get(at(layout.block_hashes)..at(layout.block_hashes) + tree_bytes)
        .ok_or(ShareError::Malformed)?;
    let chain = region
        .get(at(layout.share_hashes)..at(layout.uri_extension))
        .ok_or(ShareError::Malformed)?;
    let (block_leaves, block_root) = checked_tree(block_tree, num_segments)?;
    let nodes = hashtree::parse_chain(chain).ok_or(ShareError::Malformed)?;
    let total = ueb.total_shares as usize;
    if !nodes.keys().copied().eq(hashtree::needed_hashes(shnum, total, true)) {
        return Err(ShareError::HashMismatch);
    }
    let leaf_index = hashtree::leaf_slots(total) - 1 + shnum;
    if nodes.get(&leaf_index) != Some(&block_root)
        || !hashtree::verify_leaf(shnum, total, &block_root, &nodes, &ueb.share_root_hash)
    {
        return Err(ShareError::HashMismatch);
    }
    Ok(VerifiedShareHashes { block_leaves })
}

/// Reads and checks the crypttext hash tree leaves from a share's hash region.
pub fn verify_crypttext_leaves(region: &[u8], ueb: &UriExtension) -> Result<Vec<Hash>, ShareError> {
    let num_segments = ueb.num_segments as usize;
    let tree_bytes = hashtree::node_count(num_segments) * 32;
    let tree = region.get(..tree_bytes).ok_or(ShareError::Malformed)?;
    let (leaves, root) = checked_tree(tree, num_segments)?;
    if root != ueb.crypttext_root_hash {
        return Err(ShareError::HashMismatch);
    }
    Ok(leaves)
}

/// Parses a whole stored hash tree and checks every stored node against the
/// tree its leaves imply, so no stored byte goes unchecked; returns the leaves and the root.
fn checked_tree(stored: &[u8], num_leaves: usize) -> Result<(Vec<Hash>, Hash), ShareError> {
    let first_leaf = hashtree::leaf_slots(num_leaves) - 1;
    let leaves: Vec<Hash> = stored
        .chunks_exact(32)
        .skip(first_leaf)
        .take(num_leaves)
        .map(|c| c.try_into().map_err(|_| ShareError::Malformed))
        .collect::<Result<_, _>>()?;
    let rebuilt = hashtree::build(&leaves);
    if !same_nodes(stored, &rebuilt) {
        return Err(ShareError::HashMismatch);
    }
    Ok((leaves, rebuilt[0]))
}

fn same_nodes(stored: &[u8], rebuilt: &[Hash]) -> bool {
    stored.len() == rebuilt.len() * 32 && stored.chunks_exact(32).zip(rebuilt).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_official_vector_matches() {
        // convergence "aaaaaaaaaaaaaaaa", 56 x "a", 1-of-1, 128 KiB segments.
        let (done, _) = encode_in_memory(&[b'a'; 56], b"aaaaaaaaaaaaaaaa", 1, 1, 131072).unwrap();
        assert_eq!(
            crate::grid::uri::Cap::Chk(done.cap).to_string(),
            "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56"
        );
    }

    #[test]
    fn trailers_verify_against_their_own_ueb() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (done, _) = encode_in_memory(&data, b"secret", 3, 10, 131072).unwrap();
        let ueb = UriExtension::parse(&done.trailers[0][done.trailers[0].len() - 500..]).ok();
        assert!(ueb.is_none(), "slicing mid-field must not parse");
        for (shnum, trailer) in done.trailers.iter().enumerate() {
            let base = done.layout.plaintext_hash_tree;
            let region = &trailer
                [(done.layout.crypttext_hash_tree - base) as usize..(done.layout.uri_extension - base) as usize];
            let ueb_bytes = &trailer[(done.layout.uri_extension - base + 4) as usize..];
            let ueb = UriExtension::parse(ueb_bytes).unwrap();
            assert_eq!(ueb.hash(), done.cap.ueb_hash);
            let verified = verify_share_hashes(region, &done.layout, &ueb, shnum).unwrap();
            assert_eq!(verified.block_leaves.len(), 3);
            assert_eq!(verify_crypttext_leaves(region, &ueb).unwrap().len(), 3);
            // Another share's position must not verify.
            assert_eq!(
                verify_share_hashes(region, &done.layout, &ueb, (shnum + 1) % 10).err(),
                Some(ShareError::HashMismatch)
            );
        }
    }
}
