//! AES-128-CTR with a zero IV and a 128-bit big-endian counter, as Tahoe encrypts files.

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Encrypts or decrypts `buf` in place, as the slice of the keystream that starts at `offset`.
///
/// A whole file is one keystream, so segments can be handled independently
/// (and in parallel) by giving each its byte offset.
pub fn aes_ctr_at(key: &[u8; 16], offset: u64, buf: &mut [u8]) {
    let mut cipher = Aes128Ctr::new(key.into(), &[0u8; 16].into());
    cipher.seek(offset);
    cipher.apply_keystream(buf);
}

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("invariant: the OS random source is available");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nist_sp800_38a_ctr_vector_with_zero_iv_layout() {
        // F.5.1 uses a non-zero IV; with a zero IV, block 0 of the keystream is AES(key, 0).
        let key = [0u8; 16];
        let mut block = [0u8; 16];
        aes_ctr_at(&key, 0, &mut block);
        // AES-128 of the zero block under the zero key.
        assert_eq!(
            block,
            [
                0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34, 0x2b, 0x2e
            ]
        );
    }

    #[test]
    fn seeking_gives_the_same_keystream_as_one_pass() {
        let key = [7u8; 16];
        let mut whole = vec![0u8; 1000];
        aes_ctr_at(&key, 0, &mut whole);
        let mut part = vec![0u8; 333];
        aes_ctr_at(&key, 501, &mut part);
        assert_eq!(&whole[501..834], &part[..]);
    }
}
