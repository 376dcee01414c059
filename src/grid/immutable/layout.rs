//! The immutable (CHK) share layout: the v1/v2 header, the region offsets, and the encoding shape they follow from.

use crate::grid::hashtree;

/// How a file of a given size is cut into segments and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileShape {
    /// File size in bytes.
    pub size: u64,
    /// k.
    pub needed: usize,
    /// N.
    pub total: usize,
    /// Effective segment size: `min(max, size)` rounded up to a multiple of k.
    pub segment_size: u64,
    /// `ceil(size / segment_size)`.
    pub num_segments: u64,
    /// Bytes of file data in the last segment.
    pub tail_size: u64,
}

impl FileShape {
    /// The shape Tahoe's encoder picks for `size` bytes.
    pub fn new(size: u64, needed: usize, total: usize, max_segment_size: u64) -> Self {
        let k = needed as u64;
        let segment_size = next_multiple(max_segment_size.min(size), k);
        let num_segments = if segment_size == 0 {
            0
        } else {
            size.div_ceil(segment_size)
        };
        let tail_size = if num_segments == 0 {
            0
        } else {
            match size % segment_size {
                0 => segment_size,
                rest => rest,
            }
        };
        FileShape {
            size,
            needed,
            total,
            segment_size,
            num_segments,
            tail_size,
        }
    }

    /// The tail segment zero-padded to a multiple of k.
    pub fn padded_tail(&self) -> u64 {
        next_multiple(self.tail_size, self.needed as u64)
    }

    /// The size of a full block (`segment_size / k`).
    pub fn block_size(&self) -> u64 {
        self.segment_size / self.needed as u64
    }

    /// Plaintext bytes in segment `segnum`.
    pub fn segment_len(&self, segnum: u64) -> u64 {
        if segnum + 1 == self.num_segments {
            self.tail_size
        } else {
            self.segment_size
        }
    }

    /// Block size for segment `segnum` (the tail block is shorter).
    pub fn block_len(&self, segnum: u64) -> u64 {
        if segnum + 1 == self.num_segments {
            self.padded_tail() / self.needed as u64
        } else {
            self.block_size()
        }
    }

    /// Bytes of block data in each share: `ceil(size / k)`.
    pub fn share_data_size(&self) -> u64 {
        self.size.div_ceil(self.needed as u64)
    }

    /// `segsize-k-N`, the UEB's `codec_params`.
    pub fn codec_params(&self) -> String {
        format!("{}-{}-{}", self.segment_size, self.needed, self.total)
    }

    /// `padded_tail-k-N`, the UEB's `tail_codec_params`.
    pub fn tail_codec_params(&self) -> String {
        format!("{}-{}-{}", self.padded_tail(), self.needed, self.total)
    }
}

/// Reads a big-endian unsigned integer of up to 8 bytes.
pub fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Rounds `value` up to a multiple of `k`.
pub fn next_multiple(value: u64, k: u64) -> u64 {
    value.div_ceil(k) * k
}

/// Why a share header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Version other than 1 or 2, or a truncated header.
    #[error("share header is not a v1 or v2 immutable share")]
    BadHeader,
    /// Offsets that run backwards or past the share.
    #[error("share offsets are inconsistent")]
    BadOffsets,
}

/// Where each region of an immutable share lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLayout {
    /// 1 (32-bit fields) or 2 (64-bit fields).
    pub version: u32,
    /// The header's block size (informational; readers use the UEB).
    pub block_size: u64,
    /// The header's share data size (informational).
    pub data_size: u64,
    /// Start of the block data.
    pub data: u64,
    /// Start of the (unused, zero-filled) plaintext hash tree.
    pub plaintext_hash_tree: u64,
    /// Start of the crypttext hash tree.
    pub crypttext_hash_tree: u64,
    /// Start of this share's block hash tree.
    pub block_hashes: u64,
    /// Start of the share hash chain.
    pub share_hashes: u64,
    /// Start of the UEB length field.
    pub uri_extension: u64,
}

/// Header size of a v1 share.
pub const V1_HEADER: u64 = 0x24;
/// Header size of a v2 share.
pub const V2_HEADER: u64 = 0x44;
/// Enough bytes to read either header.
pub const MAX_HEADER: u64 = V2_HEADER;

impl ShareLayout {
    /// The layout the uploader writes for `shape` with a UEB of `ueb_len` bytes.
    pub fn for_upload(shape: &FileShape, ueb_len: u64) -> Self {
        let v1 = Self::with_version(shape, 1);
        let fits_v1 = v1.uri_extension + 4 + ueb_len < (1u64 << 32);
        if fits_v1 { v1 } else { Self::with_version(shape, 2) }
    }

    /// The layout with header `version` (1: 32-bit offsets, 2: 64-bit).
    pub fn with_version(shape: &FileShape, version: u32) -> Self {
        let tree = hashtree::node_count(shape.num_segments as usize) as u64 * 32;
        let share_hashes_len = share_hash_count(shape.total) as u64 * 34;
        let data = if version == 1 { V1_HEADER } else { V2_HEADER };
        let plaintext_hash_tree = data + shape.share_data_size();
        let crypttext_hash_tree = plaintext_hash_tree + tree;
        let block_hashes = crypttext_hash_tree + tree;
        let share_hashes = block_hashes + tree;
        ShareLayout {
            version,
            block_size: shape.block_size(),
            data_size: shape.share_data_size(),
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            uri_extension: share_hashes + share_hashes_len,
        }
    }

    /// Width of the UEB length field.
    pub fn ueb_length_field(&self) -> u64 {
        if self.version == 1 { 4 } else { 8 }
    }

    /// The total share size for a UEB of `ueb_len` bytes (the allocated size).
    pub fn share_size(&self, ueb_len: u64) -> u64 {
        // Saturating: a decoded header's offsets are only known to be ordered and addressable.
        self.uri_extension
            .saturating_add(self.ueb_length_field())
            .saturating_add(ueb_len)
    }

    /// The header bytes.
    pub fn encode_header(&self) -> Vec<u8> {
        let fields = [
            self.block_size,
            self.data_size,
            self.data,
            self.plaintext_hash_tree,
            self.crypttext_hash_tree,
            self.block_hashes,
            self.share_hashes,
            self.uri_extension,
        ];
        let mut out = self.version.to_be_bytes().to_vec();
        for field in fields {
            if self.version == 1 {
                // for_upload picks v2 whenever a field would not fit.
                out.extend_from_slice(&(field as u32).to_be_bytes());
            } else {
                out.extend_from_slice(&field.to_be_bytes());
            }
        }
        out
    }

    /// Reads a header from the first bytes of a share.
    pub fn decode_header(bytes: &[u8]) -> Result<Self, Error> {
        let version = u32::from_be_bytes(
            bytes
                .get(..4)
                .ok_or(Error::BadHeader)?
                .try_into()
                .map_err(|_| Error::BadHeader)?,
        );
        let width = match version {
            1 => 4,
            2 => 8,
            _ => return Err(Error::BadHeader),
        };
        let mut fields = [0u64; 8];
        for (i, field) in fields.iter_mut().enumerate() {
            let at = 4 + i * width;
            let raw = bytes.get(at..at + width).ok_or(Error::BadHeader)?;
            *field = be_uint(raw);
        }
        let [
            block_size,
            data_size,
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            uri_extension,
        ] = fields;
        let layout = ShareLayout {
            version,
            block_size,
            data_size,
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            uri_extension,
        };
        let ordered = [
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            uri_extension,
        ];
        // A UEB offset so close to 2^64 that the length field after it cannot be addressed comes
        // only from a lying share: refusing it here keeps every reader's offset arithmetic exact.
        let ueb_addressable = uri_extension.checked_add(2 * width as u64).is_some();
        if data < 4 + 8 * width as u64 || ordered.windows(2).any(|w| w[0] > w[1]) || !ueb_addressable {
            return Err(Error::BadOffsets);
        }
        Ok(layout)
    }
}

/// The most bytes between a share's `crypttext_hash_tree` and `uri_extension` offsets (two hash
/// trees over the segments and the share hash chain) for a file of `num_segments` segments in
/// `total` shares: a reader fetches no more than this, whatever a share's header claims.
pub fn max_hash_region(num_segments: u64, total: usize) -> u64 {
    // hashtree::node_count, saturating: the segment count may come from a lying share.
    let slots = num_segments.max(1).checked_next_power_of_two().unwrap_or(u64::MAX);
    let tree = slots.saturating_mul(2).saturating_sub(1).saturating_mul(32);
    tree.saturating_mul(2)
        .saturating_add(share_hash_count(total) as u64 * 34)
}

/// Share-hash-chain entries stored per share: `log2(next_pow2(N)) + 1`.
pub fn share_hash_count(total: usize) -> usize {
    hashtree::leaf_slots(total).trailing_zeros() as usize + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `shares` fuzz target: a v2 header whose offsets are ordered but whose UEB
    /// offset is within 16 of 2^64 made a reader's `uri_extension + field` overflow.
    #[test]
    fn a_header_whose_ueb_offset_cannot_be_addressed_is_refused() {
        let mut header = 2u32.to_be_bytes().to_vec();
        let fields = [
            1u64,
            1,
            V2_HEADER,
            V2_HEADER,
            V2_HEADER,
            V2_HEADER,
            V2_HEADER,
            u64::MAX - 3,
        ];
        for field in fields {
            header.extend_from_slice(&field.to_be_bytes());
        }
        assert!(matches!(ShareLayout::decode_header(&header), Err(Error::BadOffsets)));
        let last = header.len() - 8;
        header[last..].copy_from_slice(&(u64::MAX - 16).to_be_bytes());
        let layout = ShareLayout::decode_header(&header).expect("an addressable UEB offset is accepted");
        assert_eq!(layout.share_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn shape_follows_tahoe_rules() {
        let s = FileShape::new(1_000_000, 3, 10, 131_072);
        assert_eq!(s.segment_size, 131_073);
        assert_eq!(s.num_segments, 8);
        assert_eq!(s.tail_size, 1_000_000 - 7 * 131_073);
        assert_eq!(s.padded_tail() % 3, 0);
        assert_eq!(s.share_data_size(), 333_334);
        let small = FileShape::new(56, 3, 10, 131_072);
        assert_eq!((small.segment_size, small.num_segments, small.tail_size), (57, 1, 56));
        let exact = FileShape::new(262_146, 3, 10, 131_072);
        assert_eq!((exact.num_segments, exact.tail_size), (2, 131_073));
    }

    #[test]
    fn v1_header_round_trips_and_sizes_add_up() {
        let shape = FileShape::new(1_000_000, 3, 10, 131_072);
        let layout = ShareLayout::for_upload(&shape, 300);
        assert_eq!(layout.version, 1);
        assert_eq!(layout.data, 0x24);
        // 8 segments: 15-node trees; 10 shares: 5 chain entries.
        assert_eq!(layout.uri_extension - layout.share_hashes, 5 * 34);
        assert_eq!(layout.block_hashes - layout.crypttext_hash_tree, 15 * 32);
        assert_eq!(
            max_hash_region(shape.num_segments, shape.total),
            layout.uri_extension - layout.crypttext_hash_tree
        );
        let header = layout.encode_header();
        assert_eq!(header.len(), 0x24);
        assert_eq!(ShareLayout::decode_header(&header), Ok(layout));
    }

    #[test]
    fn v2_is_used_past_four_gib_and_round_trips() {
        let shape = FileShape::new(20 << 30, 3, 10, 1 << 20);
        let layout = ShareLayout::for_upload(&shape, 300);
        assert_eq!(layout.version, 2);
        let header = layout.encode_header();
        assert_eq!(header.len(), 0x44);
        assert_eq!(ShareLayout::decode_header(&header), Ok(layout));
    }

    #[test]
    fn bad_headers_are_rejected() {
        assert_eq!(ShareLayout::decode_header(&[0, 0, 0, 3]), Err(Error::BadHeader));
        assert_eq!(ShareLayout::decode_header(&[0, 0, 0, 1, 0]), Err(Error::BadHeader));
        let mut header = ShareLayout::for_upload(&FileShape::new(100, 3, 10, 1 << 20), 10).encode_header();
        header[0x20..0x24].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(ShareLayout::decode_header(&header), Err(Error::BadOffsets));
    }
}
