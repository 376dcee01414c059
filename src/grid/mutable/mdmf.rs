//! The MDMF share format (version 1): multi-segment mutable files with a salt per segment.
//!
//! Pure: encodes one version into N share images and parses, verifies and
//! decodes them. Layout (Tahoe's `mutable/layout.py`): a 59-byte signed header
//! and 8 offsets, then the encrypted private key, share hash chain, signature
//! and verification key, the share data at the fixed offset 2167 (each
//! segment's block preceded by its salt), and the full block hash tree.

use std::collections::BTreeMap;

use rsa::RsaPrivateKey;

use crate::grid::crypto::{aes_ctr_at, random_bytes};
use crate::grid::erasure::Codec;
use crate::grid::hashtree;
use crate::grid::hashutil::{Hash, block_hash};
use crate::grid::immutable::layout::{be_uint, next_multiple};
use crate::grid::mutable::keys::MutableKeys;
use crate::grid::mutable::sdmf::data_key;
use crate::grid::mutable::{FormatError, signing};
use crate::grid::uri::MutableFormat;

/// The format every error from here names.
const FORMAT: MutableFormat = MutableFormat::Mdmf;

/// Bytes of the signed header (`>BQ32sBBQQ`).
pub const SIGNED_HEADER_LEN: usize = 59;
/// Bytes of the header with its 8 offsets.
pub const HEADER_LEN: usize = 123;
/// Where the share data starts: room reserved for a 1220-byte key, 260-byte signature,
/// 292-byte verification key and 8 chain entries, whatever the real sizes.
pub const SHARE_DATA_OFFSET: usize = 123 + 1220 + 260 + 292 + 272;
/// Bytes of the checkstring a writer tests (`>BQ32s`).
pub const CHECKSTRING_LEN: usize = 41;
/// MDMF's segment size before rounding up to a multiple of k.
pub const MAX_SEGMENT_SIZE: u64 = 128 * 1024;

/// The signed fields of one MDMF version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Version number.
    pub seqnum: u64,
    /// Root of the share hash tree.
    pub root_hash: Hash,
    /// k.
    pub needed: u8,
    /// N.
    pub total: u8,
    /// Segment size (a multiple of k).
    pub segment_size: u64,
    /// Plaintext length.
    pub data_length: u64,
}

impl Header {
    /// The 59 signed bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_HEADER_LEN);
        out.push(1);
        out.extend_from_slice(&self.seqnum.to_be_bytes());
        out.extend_from_slice(&self.root_hash);
        out.push(self.needed);
        out.push(self.total);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out.extend_from_slice(&self.data_length.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..SIGNED_HEADER_LEN)?;
        if b[0] != 1 {
            return None;
        }
        let u64_at = |at: usize| b[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        Some(Header {
            seqnum: u64_at(1)?,
            root_hash: b[9..41].try_into().ok()?,
            needed: b[41],
            total: b[42],
            segment_size: u64_at(43)?,
            data_length: u64_at(51)?,
        })
    }

    /// Number of segments.
    pub fn num_segments(&self) -> u64 {
        if self.segment_size == 0 {
            0
        } else {
            self.data_length.div_ceil(self.segment_size)
        }
    }

    /// Plaintext bytes in segment `segnum`.
    pub fn segment_len(&self, segnum: u64) -> u64 {
        (self.data_length - segnum * self.segment_size).min(self.segment_size)
    }

    /// Block bytes (without the salt) of segment `segnum` in every share.
    pub fn block_len(&self, segnum: u64) -> u64 {
        self.segment_len(segnum).div_ceil(u64::from(self.needed))
    }
}

/// One parsed (not yet verified) MDMF share.
#[derive(Clone)]
pub struct Share {
    /// The signed fields.
    pub header: Header,
    /// The private key (PKCS#8 DER) encrypted under the writekey.
    pub encrypted_private_key: Vec<u8>,
    /// Share-hash-tree nodes this share needs, by index.
    pub share_hash_chain: BTreeMap<usize, Hash>,
    /// RSA-PSS signature over the header.
    pub signature: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub verification_key: Vec<u8>,
    /// Per segment: (salt, block).
    pub segments: Vec<([u8; 16], Vec<u8>)>,
    /// The full block hash tree.
    pub block_hash_tree: Vec<Hash>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MdmfShare(seqnum={}, {} segments)",
            self.header.seqnum,
            self.segments.len()
        )
    }
}

impl Share {
    /// The share image.
    pub fn encode(&self) -> Vec<u8> {
        let chain_at = HEADER_LEN + self.encrypted_private_key.len();
        let sig_at = chain_at + 34 * self.share_hash_chain.len();
        let key_at = sig_at + self.signature.len();
        let key_end = key_at + self.verification_key.len();
        let data_at = SHARE_DATA_OFFSET.max(key_end);
        let data_len: usize = self.segments.iter().map(|(_, b)| 16 + b.len()).sum();
        let tree_at = data_at + data_len;
        let eof = tree_at + 32 * self.block_hash_tree.len();
        let mut out = self.header.encode();
        for offset in [HEADER_LEN, chain_at, sig_at, key_at, key_end, data_at, tree_at, eof] {
            out.extend_from_slice(&(offset as u64).to_be_bytes());
        }
        out.extend_from_slice(&self.encrypted_private_key);
        hashtree::encode_chain(&self.share_hash_chain, &mut out);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.verification_key);
        out.resize(data_at, 0);
        for (salt, block) in &self.segments {
            out.extend_from_slice(salt);
            out.extend_from_slice(block);
        }
        self.block_hash_tree.iter().for_each(|h| out.extend_from_slice(h));
        out
    }

    /// Parses a share image.
    pub fn parse(bytes: &[u8]) -> Result<Share, FormatError> {
        let header = Header::decode(bytes).ok_or(FormatError::Malformed { format: FORMAT })?;
        let raw = bytes
            .get(..HEADER_LEN)
            .ok_or(FormatError::Malformed { format: FORMAT })?;
        let offset = |i: usize| {
            let at = SIGNED_HEADER_LEN + 8 * i;
            be_uint(&raw[at..at + 8]) as usize
        };
        let o: Vec<usize> = (0..8).map(offset).collect();
        if o[0] != HEADER_LEN || o.windows(2).any(|w| w[0] > w[1]) || o[7] > bytes.len() {
            return Err(FormatError::Malformed { format: FORMAT });
        }
        let chain = &bytes[o[1]..o[2]];
        let tree = &bytes[o[6]..o[7]];
        if !chain.len().is_multiple_of(34) || !tree.len().is_multiple_of(32) || header.needed == 0 {
            return Err(FormatError::Malformed { format: FORMAT });
        }
        let mut segments = Vec::new();
        let mut at = o[5];
        for segnum in 0..header.num_segments() {
            let len = 16 + header.block_len(segnum) as usize;
            let piece = bytes
                .get(at..at + len)
                .filter(|_| at + len <= o[6])
                .ok_or(FormatError::Malformed { format: FORMAT })?;
            let salt: [u8; 16] = piece[..16]
                .try_into()
                .map_err(|_| FormatError::Malformed { format: FORMAT })?;
            segments.push((salt, piece[16..].to_vec()));
            at += len;
        }
        Ok(Share {
            header,
            encrypted_private_key: bytes[o[0]..o[1]].to_vec(),
            share_hash_chain: hashtree::parse_chain(chain).ok_or(FormatError::Malformed { format: FORMAT })?,
            signature: bytes[o[2]..o[3]].to_vec(),
            verification_key: bytes[o[3]..o[4]].to_vec(),
            segments,
            block_hash_tree: tree.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect(),
        })
    }

    /// Checks key, signature, block hash tree and hash chain of share `shnum` against the cap's fingerprint.
    pub fn verify(&self, shnum: usize, fingerprint: &Hash) -> Result<(), FormatError> {
        signing::verify(
            &self.verification_key,
            fingerprint,
            &self.header.encode(),
            &self.signature,
            FORMAT,
        )?;
        let tree = hashtree::build(&segment_leaves(&self.segments));
        if tree != self.block_hash_tree {
            return Err(FormatError::HashMismatch { format: FORMAT });
        }
        let total = self.header.total as usize;
        if shnum >= total
            || !hashtree::verify_leaf(shnum, total, &tree[0], &self.share_hash_chain, &self.header.root_hash)
        {
            return Err(FormatError::HashMismatch { format: FORMAT });
        }
        Ok(())
    }
}

fn segment_leaves(segments: &[([u8; 16], Vec<u8>)]) -> Vec<Hash> {
    segments
        .iter()
        .map(|(salt, block)| block_hash(&[&salt[..], block].concat()))
        .collect()
}

/// Encodes one MDMF version into its N shares.
pub fn encode(
    keys: &MutableKeys,
    signing_key: &RsaPrivateKey,
    plaintext: &[u8],
    seqnum: u64,
    needed: u8,
    total: u8,
) -> Result<Vec<Share>, FormatError> {
    let codec = Codec::new(needed as usize, total as usize)?;
    let segment_size = next_multiple(MAX_SEGMENT_SIZE, u64::from(needed));
    let mut per_share: Vec<Vec<([u8; 16], Vec<u8>)>> = vec![Vec::new(); total as usize];
    for chunk in plaintext.chunks(segment_size as usize) {
        let salt = random_bytes::<16>();
        let mut data = chunk.to_vec();
        aes_ctr_at(&data_key(&salt, &keys.readkey), 0, &mut data);
        let blocks = codec.encode_padded(&data)?;
        for (share, block) in per_share.iter_mut().zip(blocks) {
            share.push((salt, block));
        }
    }
    let block_trees: Vec<Vec<Hash>> = per_share
        .iter()
        .map(|segments| hashtree::build(&segment_leaves(segments)))
        .collect();
    let share_tree = hashtree::build(&block_trees.iter().map(|t| t[0]).collect::<Vec<_>>());
    let header = Header {
        seqnum,
        root_hash: share_tree[0],
        needed,
        total,
        segment_size,
        data_length: plaintext.len() as u64,
    };
    let signature = signing::sign(signing_key, &header.encode(), FORMAT)?;
    let encrypted_private_key = keys.encrypted_private_key();
    Ok(per_share
        .into_iter()
        .zip(block_trees)
        .enumerate()
        .map(|(shnum, (segments, block_hash_tree))| Share {
            header,
            encrypted_private_key: encrypted_private_key.clone(),
            share_hash_chain: hashtree::chain(&share_tree, shnum, total as usize, false),
            signature: signature.clone(),
            verification_key: keys.public_key_der.clone(),
            segments,
            block_hash_tree,
        })
        .collect())
}

/// Decodes one version from at least k verified shares of it, given as (share number, share).
pub fn decode(readkey: &[u8; 16], shares: &[(usize, &Share)]) -> Result<Vec<u8>, FormatError> {
    let Some((_, first)) = shares.first() else {
        return Err(FormatError::Malformed { format: FORMAT });
    };
    let header = first.header;
    let codec = Codec::new(header.needed as usize, header.total as usize)?;
    let mut out = Vec::with_capacity(header.data_length as usize);
    for segnum in 0..header.num_segments() as usize {
        let salt = first.segments[segnum].0;
        let blocks = shares.iter().map(|(n, s)| (*n, s.segments[segnum].1.clone())).collect();
        let mut data = codec.decode(blocks)?.concat();
        data.truncate(header.segment_len(segnum as u64) as usize);
        aes_ctr_at(&data_key(&salt, readkey), 0, &mut data);
        out.extend_from_slice(&data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::mutable::sdmf::tests_support::vector_key;

    #[test]
    fn layout_matches_tahoes_offsets_and_round_trips() {
        let (keys, key) = vector_key();
        let plaintext: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let shares = encode(&keys, &key, &plaintext, 1, 3, 10).unwrap();
        let image = shares[0].encode();
        let offsets: Vec<u64> = (0..8)
            .map(|i| u64::from_be_bytes(image[59 + 8 * i..67 + 8 * i].try_into().unwrap()))
            .collect();
        // tahoe-formats.md §4's example for k=3, N=10, 300000 bytes (key length varies per key).
        let key_len = keys.private_key_der.len() as u64;
        assert_eq!(offsets[0], 123);
        assert_eq!(offsets[1], 123 + key_len);
        assert_eq!(offsets[2] - offsets[1], 4 * 34);
        assert_eq!(offsets[3] - offsets[2], 256);
        assert_eq!(offsets[5], 2167);
        assert_eq!(offsets[6], 102_215);
        assert_eq!(offsets[7], 102_439);
        assert_eq!(shares[0].header.segment_size, 131_073);
        let mut parsed = Vec::new();
        for (shnum, share) in shares.iter().enumerate() {
            let back = Share::parse(&share.encode()).unwrap();
            assert_eq!(back.encode(), share.encode());
            back.verify(shnum, &keys.fingerprint).unwrap();
            parsed.push((shnum, back));
        }
        let picked: Vec<(usize, &Share)> = parsed.iter().skip(7).map(|(n, s)| (*n, s)).collect();
        assert_eq!(decode(&keys.readkey, &picked).unwrap(), plaintext);
        // Tampering with a salt or a block breaks the hash chain.
        let mut bad = parsed[4].1.clone();
        bad.segments[1].0[0] ^= 1;
        assert_eq!(
            bad.verify(4, &keys.fingerprint),
            Err(FormatError::HashMismatch { format: FORMAT })
        );
    }

    #[test]
    fn empty_and_small_files() {
        let (keys, key) = vector_key();
        for plaintext in [Vec::new(), b"tiny".to_vec()] {
            let shares = encode(&keys, &key, &plaintext, 5, 3, 10).unwrap();
            let parsed: Vec<(usize, Share)> = shares
                .iter()
                .enumerate()
                .map(|(n, s)| (n, Share::parse(&s.encode()).unwrap()))
                .collect();
            for (n, s) in &parsed {
                s.verify(*n, &keys.fingerprint).unwrap();
            }
            let picked: Vec<(usize, &Share)> = parsed.iter().take(3).map(|(n, s)| (*n, s)).collect();
            assert_eq!(decode(&keys.readkey, &picked).unwrap(), plaintext);
        }
    }
}
