//! Tahoe's base32: RFC 4648 with a lowercase alphabet and no padding.

use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};

static TAHOE_BASE32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    // Tahoe's cap regexes reject non-zero unused trailing bits, so we do too:
    // otherwise two spellings would name one cap.
    spec.check_trailing_bits = true;
    spec.encoding()
        .expect("invariant: a 32-symbol alphabet is a valid base32 specification")
});

/// Encodes bytes as lowercase unpadded base32.
pub fn encode(bytes: &[u8]) -> String {
    TAHOE_BASE32.encode(bytes)
}

/// Decodes lowercase unpadded base32; `None` for any other text.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    TAHOE_BASE32.decode(text.as_bytes()).ok()
}

/// Decodes base32 text that must hold exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_rfc4648_lowercase() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(decode("mzxw6ytboi").as_deref(), Some(&b"foobar"[..]));
        let bytes: Vec<u8> = (0u8..=255).collect();
        assert_eq!(decode(&encode(&bytes)), Some(bytes));
    }

    #[test]
    fn rejects_uppercase_padding_and_dirty_trailing_bits() {
        assert_eq!(decode("MZXW6YTBOI"), None);
        assert_eq!(decode("mzxw6ytboi======"), None);
        // 16 bytes = 26 chars; the last char carries 3 unused bits that must be zero.
        let clean = encode(&[0xffu8; 16]);
        assert!(decode(&clean).is_some());
        let mut dirty = clean.clone();
        dirty.pop();
        dirty.push('7');
        assert_eq!(decode(&dirty), None);
        assert_eq!(decode_array::<16>(&clean), Some([0xff; 16]));
        assert_eq!(decode_array::<32>(&clean), None);
    }
}
