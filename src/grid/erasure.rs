//! zfec-compatible k-of-N erasure coding over GF(2^8) (polynomial 0x11D).
//!
//! reed-solomon-erasure builds the same systematic matrix `V · V_top⁻¹` as zfec
//! but evaluates its Vandermonde rows at 0, 1, 2, 3, …; zfec evaluates them at
//! 0, 1, α, α², … with α = 2. Swapping the evaluation points through a custom
//! [`Field`] gives shares byte-identical to zfec while keeping the crate's
//! SIMD multiply-accumulate kernels.

use reed_solomon_erasure::{Field, ReedSolomon, galois_8};

/// GF(2^8) as reed-solomon-erasure's `galois_8`, but with zfec's evaluation points.
#[derive(Debug, Clone, Copy)]
pub struct ZfecField;

impl Field for ZfecField {
    const ORDER: usize = 256;
    type Elem = u8;

    fn add(a: u8, b: u8) -> u8 {
        a ^ b
    }
    fn mul(a: u8, b: u8) -> u8 {
        galois_8::mul(a, b)
    }
    fn div(a: u8, b: u8) -> u8 {
        galois_8::div(a, b)
    }
    fn exp(a: u8, n: usize) -> u8 {
        galois_8::exp(a, n)
    }
    fn zero() -> u8 {
        0
    }
    fn one() -> u8 {
        1
    }
    fn nth_internal(n: usize) -> u8 {
        if n == 0 { 0 } else { galois_8::exp(2, n - 1) }
    }
    fn mul_slice(c: u8, input: &[u8], out: &mut [u8]) {
        galois_8::mul_slice(c, input, out)
    }
    fn mul_slice_add(c: u8, input: &[u8], out: &mut [u8]) {
        galois_8::mul_slice_xor(c, input, out)
    }
}

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// k or N is outside 1 <= k <= N <= 256.
    #[error("invalid erasure parameters {needed}-of-{total}: need 1 <= k <= N <= 256")]
    InvalidParameters {
        /// k
        needed: usize,
        /// N
        total: usize,
    },
    /// Blocks given to the codec differ in length or count.
    #[error("erasure blocks have inconsistent shapes")]
    BadShape,
    /// Fewer than k distinct blocks were given to the decoder.
    #[error("{found} distinct blocks given, {needed} needed to decode")]
    NotEnoughBlocks {
        /// k
        needed: usize,
        /// distinct blocks given
        found: usize,
    },
}

/// A k-of-N code; cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Codec {
    needed: usize,
    total: usize,
    /// `None` when k == N: the shares are just the input chunks.
    rs: Option<std::sync::Arc<ReedSolomon<ZfecField>>>,
}

impl Codec {
    /// A code that needs `needed` of `total` blocks.
    pub fn new(needed: usize, total: usize) -> Result<Self, Error> {
        if needed == 0 || needed > total || total > 256 {
            return Err(Error::InvalidParameters { needed, total });
        }
        let rs = if needed == total {
            None
        } else {
            Some(std::sync::Arc::new(
                ReedSolomon::new(needed, total - needed).map_err(|_| Error::InvalidParameters { needed, total })?,
            ))
        };
        Ok(Codec { needed, total, rs })
    }

    /// k
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// N
    pub fn total(&self) -> usize {
        self.total
    }

    /// Computes the N-k check blocks for k equal-length input chunks.
    ///
    /// Blocks 0..k are the inputs themselves (the code is systematic), so only
    /// the check blocks are produced; `check` must hold N-k buffers of the chunk length.
    pub fn encode_check_blocks(&self, data: &[&[u8]], check: &mut [Vec<u8>]) -> Result<(), Error> {
        if data.len() != self.needed || check.len() != self.total - self.needed {
            return Err(Error::BadShape);
        }
        let Some(rs) = &self.rs else { return Ok(()) };
        rs.encode_sep(data, check).map_err(|_| Error::BadShape)
    }

    /// Zero-pads `data` to k equal pieces and returns all N blocks (the pieces, then the check blocks).
    pub fn encode_padded(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let piece = data.len().div_ceil(self.needed);
        let mut padded = data.to_vec();
        padded.resize(piece * self.needed, 0);
        let mut blocks: Vec<Vec<u8>> = if piece == 0 {
            vec![Vec::new(); self.needed]
        } else {
            padded.chunks(piece).map(<[u8]>::to_vec).collect()
        };
        let mut check = vec![vec![0u8; piece]; self.total - self.needed];
        if piece > 0 {
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            self.encode_check_blocks(&refs, &mut check)?;
        }
        blocks.extend(check);
        Ok(blocks)
    }

    /// Recovers the k input chunks from any k blocks, given as `(block number, bytes)`.
    pub fn decode(&self, blocks: Vec<(usize, Vec<u8>)>) -> Result<Vec<Vec<u8>>, Error> {
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; self.total];
        let mut found = 0;
        let mut len = None;
        for (number, bytes) in blocks {
            if number >= self.total || *len.get_or_insert(bytes.len()) != bytes.len() {
                return Err(Error::BadShape);
            }
            if slots[number].is_none() {
                found += 1;
            }
            slots[number] = Some(bytes);
        }
        if found < self.needed {
            return Err(Error::NotEnoughBlocks {
                needed: self.needed,
                found,
            });
        }
        let primary_missing = slots[..self.needed].iter().any(Option::is_none);
        if primary_missing {
            let rs = self.rs.as_ref().ok_or(Error::BadShape)?;
            // Keep exactly k blocks so the decoder never reads more than it needs.
            let mut kept = 0;
            for slot in slots.iter_mut() {
                if slot.is_some() {
                    kept += 1;
                    if kept > self.needed {
                        *slot = None;
                    }
                }
            }
            rs.reconstruct_data(&mut slots).map_err(|_| Error::BadShape)?;
        }
        slots.truncate(self.needed);
        slots.into_iter().map(|slot| slot.ok_or(Error::BadShape)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(codec: &Codec, chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let mut check = vec![vec![0u8; chunks[0].len()]; codec.total() - codec.needed()];
        codec.encode_check_blocks(&refs, &mut check).unwrap();
        chunks.iter().cloned().chain(check).collect()
    }

    #[test]
    fn matches_zfec_known_answer() {
        // zfec 1.6.0.0, k=3 N=10: share 3 of [1,2,3,4]/[5,6,7,8]/[9,10,11,12] is
        // [17,18,19,84]; stock reed-solomon-erasure would give [13,14,15,0].
        let codec = Codec::new(3, 10).unwrap();
        let shares = encode_all(&codec, &[vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10, 11, 12]]);
        assert_eq!(shares[3], vec![17, 18, 19, 84]);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Codec::new(0, 1).is_err());
        assert!(Codec::new(4, 3).is_err());
        assert!(Codec::new(2, 257).is_err());
        assert!(Codec::new(1, 1).is_ok());
        assert!(Codec::new(256, 256).is_ok());
    }

    #[test]
    fn too_few_blocks_is_reported_with_counts() {
        let codec = Codec::new(3, 5).unwrap();
        let err = codec
            .decode(vec![(0, vec![1]), (4, vec![2]), (4, vec![2])])
            .unwrap_err();
        assert_eq!(err, Error::NotEnoughBlocks { needed: 3, found: 2 });
    }

    proptest! {
        #[test]
        fn any_k_blocks_decode(
            (needed, total) in (1usize..=40).prop_flat_map(|k| (Just(k), k..=48)),
            len in 1usize..64,
            seed in any::<u64>(),
        ) {
            let codec = Codec::new(needed, total).unwrap();
            let chunks: Vec<Vec<u8>> = (0..needed)
                .map(|i| (0..len).map(|j| (seed.wrapping_mul(31).wrapping_add((i * 131 + j * 7) as u64) >> 3) as u8).collect())
                .collect();
            let shares = encode_all(&codec, &chunks);
            // Take k blocks starting from a seed-chosen point, walking backwards.
            let start = (seed as usize) % total;
            let picked: Vec<(usize, Vec<u8>)> = (0..needed)
                .map(|i| { let n = (start + total - i) % total; (n, shares[n].clone()) })
                .collect();
            prop_assert_eq!(codec.decode(picked).unwrap(), chunks);
        }
    }
}
