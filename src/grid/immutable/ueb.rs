//! The URI extension block (UEB): a CHK file's encoding parameters and root hashes, whose hash is in the cap.

use crate::grid::hashutil::{Hash, netstring, tag, tagged_hash};

/// Why a UEB could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a sequence of `key:netstring`.
    #[error("malformed URI extension block")]
    Malformed,
    /// A field every reader needs is absent or has the wrong form.
    #[error("URI extension block lacks a valid `{0}`")]
    MissingField(&'static str),
}

/// The decoded UEB of a CHK file (Tahoe 1.20 writes exactly these 11 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriExtension {
    /// `crs`.
    pub codec_name: String,
    /// `segsize-k-N`.
    pub codec_params: String,
    /// `padded_tail-k-N`.
    pub tail_codec_params: String,
    /// Tagged hash of the whole ciphertext.
    pub crypttext_hash: Hash,
    /// Root of the crypttext segment hash tree.
    pub crypttext_root_hash: Hash,
    /// Root of the share hash tree (over the N block-hash-tree roots).
    pub share_root_hash: Hash,
    /// k.
    pub needed_shares: u64,
    /// N.
    pub total_shares: u64,
    /// Number of segments.
    pub num_segments: u64,
    /// Full segment size in bytes.
    pub segment_size: u64,
    /// File size in bytes.
    pub size: u64,
}

impl UriExtension {
    /// Serializes with keys in bytewise order, as `uri.pack_extension` does.
    pub fn pack(&self) -> Vec<u8> {
        let ints = |v: u64| v.to_string().into_bytes();
        let fields: [(&str, Vec<u8>); 11] = [
            ("codec_name", self.codec_name.clone().into_bytes()),
            ("codec_params", self.codec_params.clone().into_bytes()),
            ("crypttext_hash", self.crypttext_hash.to_vec()),
            ("crypttext_root_hash", self.crypttext_root_hash.to_vec()),
            ("needed_shares", ints(self.needed_shares)),
            ("num_segments", ints(self.num_segments)),
            ("segment_size", ints(self.segment_size)),
            ("share_root_hash", self.share_root_hash.to_vec()),
            ("size", ints(self.size)),
            ("tail_codec_params", self.tail_codec_params.clone().into_bytes()),
            ("total_shares", ints(self.total_shares)),
        ];
        let mut out = Vec::with_capacity(400);
        for (key, value) in fields {
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            out.extend_from_slice(&netstring(&value));
        }
        out
    }

    /// The hash that goes into the cap.
    pub fn hash(&self) -> Hash {
        hash_packed(&self.pack())
    }

    /// Parses a packed UEB, ignoring keys this version does not use.
    pub fn parse(mut bytes: &[u8]) -> Result<Self, Error> {
        let mut fields = std::collections::HashMap::new();
        while !bytes.is_empty() {
            let colon = bytes.iter().position(|&b| b == b':').ok_or(Error::Malformed)?;
            let key = std::str::from_utf8(&bytes[..colon]).map_err(|_| Error::Malformed)?;
            let rest = &bytes[colon + 1..];
            let colon2 = rest.iter().position(|&b| b == b':').ok_or(Error::Malformed)?;
            let len: usize = std::str::from_utf8(&rest[..colon2])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or(Error::Malformed)?;
            let value_start = colon2 + 1;
            let value_end = value_start.checked_add(len).ok_or(Error::Malformed)?;
            if rest.get(value_end) != Some(&b',') {
                return Err(Error::Malformed);
            }
            fields.insert(key, &rest[value_start..value_end]);
            bytes = &rest[value_end + 1..];
        }
        let text = |k: &'static str| -> Result<String, Error> {
            fields
                .get(k)
                .and_then(|v| String::from_utf8(v.to_vec()).ok())
                .ok_or(Error::MissingField(k))
        };
        let int = |k: &'static str| -> Result<u64, Error> { text(k)?.parse().map_err(|_| Error::MissingField(k)) };
        let hash = |k: &'static str| -> Result<Hash, Error> {
            fields
                .get(k)
                .and_then(|v| <Hash>::try_from(*v).ok())
                .ok_or(Error::MissingField(k))
        };
        Ok(UriExtension {
            codec_name: text("codec_name")?,
            codec_params: text("codec_params")?,
            tail_codec_params: text("tail_codec_params")?,
            crypttext_hash: hash("crypttext_hash")?,
            crypttext_root_hash: hash("crypttext_root_hash")?,
            share_root_hash: hash("share_root_hash")?,
            needed_shares: int("needed_shares")?,
            total_shares: int("total_shares")?,
            num_segments: int("num_segments")?,
            segment_size: int("segment_size")?,
            size: int("size")?,
        })
    }
}

/// The UEB hash of already-packed bytes.
pub fn hash_packed(packed: &[u8]) -> Hash {
    tagged_hash(tag::UEB, packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UriExtension {
        UriExtension {
            codec_name: "crs".into(),
            codec_params: "131073-3-10".into(),
            tail_codec_params: "102-3-10".into(),
            crypttext_hash: [1; 32],
            crypttext_root_hash: [2; 32],
            share_root_hash: [3; 32],
            needed_shares: 3,
            total_shares: 10,
            num_segments: 2,
            segment_size: 131073,
            size: 131174,
        }
    }

    #[test]
    fn packs_sorted_and_parses_back() {
        let packed = sample().pack();
        assert!(packed.starts_with(b"codec_name:3:crs,codec_params:11:131073-3-10,crypttext_hash:32:"));
        assert!(packed.ends_with(b"tail_codec_params:8:102-3-10,total_shares:2:10,"));
        assert_eq!(UriExtension::parse(&packed), Ok(sample()));
    }

    #[test]
    fn tolerates_unknown_keys_and_rejects_garbage() {
        let mut packed = b"plaintext_hash:32:".to_vec();
        packed.extend_from_slice(&[0u8; 32]);
        packed.push(b',');
        packed.extend_from_slice(&sample().pack());
        assert_eq!(UriExtension::parse(&packed), Ok(sample()));
        assert_eq!(UriExtension::parse(b"size:5:12"), Err(Error::Malformed));
        assert_eq!(
            UriExtension::parse(b"size:2:12,"),
            Err(Error::MissingField("codec_name"))
        );
    }
}
