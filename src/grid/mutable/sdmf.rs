//! The SDMF share format (version 0): signed prefix, verification key, signature, hash chain, block, encrypted private key.
//!
//! Pure: encodes a whole SDMF version into N share images, and parses and
//! verifies share images back into plaintext.

use std::collections::BTreeMap;

use rsa::RsaPrivateKey;

use crate::grid::crypto::aes_ctr_at;
use crate::grid::erasure::Codec;
use crate::grid::hashtree;
use crate::grid::hashutil::{Hash, block_hash, tag, tagged_pair_hash};
use crate::grid::immutable::layout::{be_uint, next_multiple};
use crate::grid::mutable::keys::MutableKeys;
use crate::grid::mutable::{FormatError, signing};
use crate::grid::uri::MutableFormat;

/// The format every error from here names.
const FORMAT: MutableFormat = MutableFormat::Sdmf;

/// Bytes of the fixed header (`>BQ32s16sBBQQLLLLQQ`).
pub const HEADER_LEN: usize = 107;
/// Bytes of the signed prefix (`>BQ32s16sBBQQ`).
pub const SIGNED_PREFIX_LEN: usize = 75;
/// Bytes of the checkstring a writer tests (`>BQ32s16s`).
pub const CHECKSTRING_LEN: usize = 57;

/// The signed fields of one version of an SDMF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Version number; every publish increments it.
    pub seqnum: u64,
    /// Root of the share hash tree.
    pub root_hash: Hash,
    /// The per-version salt (Tahoe's IV) the data key is derived from.
    pub salt: [u8; 16],
    /// k.
    pub needed: u8,
    /// N.
    pub total: u8,
    /// The one segment's size (data length rounded up to a multiple of k).
    pub segment_size: u64,
    /// Plaintext length.
    pub data_length: u64,
}

impl Prefix {
    /// The 75 signed bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_PREFIX_LEN);
        out.push(0);
        out.extend_from_slice(&self.seqnum.to_be_bytes());
        out.extend_from_slice(&self.root_hash);
        out.extend_from_slice(&self.salt);
        out.push(self.needed);
        out.push(self.total);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out.extend_from_slice(&self.data_length.to_be_bytes());
        out
    }

    /// The bytes a writer tests before replacing this version.
    pub fn checkstring(&self) -> Vec<u8> {
        self.encode()[..CHECKSTRING_LEN].to_vec()
    }

    fn decode(bytes: &[u8]) -> Option<Prefix> {
        let b = bytes.get(..SIGNED_PREFIX_LEN)?;
        if b[0] != 0 {
            return None;
        }
        let u64_at = |at: usize| b[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        Some(Prefix {
            seqnum: u64_at(1)?,
            root_hash: b[9..41].try_into().ok()?,
            salt: b[41..57].try_into().ok()?,
            needed: b[57],
            total: b[58],
            segment_size: u64_at(59)?,
            data_length: u64_at(67)?,
        })
    }
}

/// One parsed (not yet verified) SDMF share.
#[derive(Clone)]
pub struct Share {
    /// The signed fields.
    pub prefix: Prefix,
    /// SubjectPublicKeyInfo DER.
    pub verification_key: Vec<u8>,
    /// RSA-PSS signature over the prefix.
    pub signature: Vec<u8>,
    /// Share-hash-tree nodes this share needs, by index.
    pub share_hash_chain: BTreeMap<usize, Hash>,
    /// This share's block hash tree (one node for one segment).
    pub block_hash_tree: Vec<Hash>,
    /// The erasure-coded block.
    pub block: Vec<u8>,
    /// The private key (PKCS#8 DER) encrypted under the writekey.
    pub encrypted_private_key: Vec<u8>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SdmfShare(seqnum={}, {} block bytes)",
            self.prefix.seqnum,
            self.block.len()
        )
    }
}

impl Share {
    /// The share image, as stored in a mutable container.
    pub fn encode(&self) -> Vec<u8> {
        let sig_at = HEADER_LEN + self.verification_key.len();
        let chain_at = sig_at + self.signature.len();
        let tree_at = chain_at + 34 * self.share_hash_chain.len();
        let data_at = tree_at + 32 * self.block_hash_tree.len();
        let key_at = data_at + self.block.len();
        let eof = key_at + self.encrypted_private_key.len();
        let mut out = self.prefix.encode();
        for offset in [sig_at, chain_at, tree_at, data_at] {
            out.extend_from_slice(&(offset as u32).to_be_bytes());
        }
        for offset in [key_at, eof] {
            out.extend_from_slice(&(offset as u64).to_be_bytes());
        }
        out.extend_from_slice(&self.verification_key);
        out.extend_from_slice(&self.signature);
        hashtree::encode_chain(&self.share_hash_chain, &mut out);
        self.block_hash_tree.iter().for_each(|h| out.extend_from_slice(h));
        out.extend_from_slice(&self.block);
        out.extend_from_slice(&self.encrypted_private_key);
        out
    }

    /// Parses a share image.
    pub fn parse(bytes: &[u8]) -> Result<Share, FormatError> {
        let prefix = Prefix::decode(bytes).ok_or(FormatError::Malformed { format: FORMAT })?;
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(FormatError::Malformed { format: FORMAT })?;
        let u32_at =
            |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]) as usize;
        let u64_at = |at: usize| be_uint(&header[at..at + 8]) as usize;
        let offsets = [
            HEADER_LEN,
            u32_at(75),
            u32_at(79),
            u32_at(83),
            u32_at(87),
            u64_at(91),
            u64_at(99),
        ];
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets[6] > bytes.len() {
            return Err(FormatError::Malformed { format: FORMAT });
        }
        let region = |i: usize| &bytes[offsets[i]..offsets[i + 1]];
        let chain_bytes = region(2);
        let tree_bytes = region(3);
        if !tree_bytes.len().is_multiple_of(32) {
            return Err(FormatError::Malformed { format: FORMAT });
        }
        Ok(Share {
            prefix,
            verification_key: region(0).to_vec(),
            signature: region(1).to_vec(),
            share_hash_chain: hashtree::parse_chain(chain_bytes).ok_or(FormatError::Malformed { format: FORMAT })?,
            block_hash_tree: tree_bytes
                .chunks_exact(32)
                .map(|c| c.try_into().unwrap_or([0; 32]))
                .collect(),
            block: region(4).to_vec(),
            encrypted_private_key: region(5).to_vec(),
        })
    }

    /// Checks the key, the signature and the hash chain of share `shnum` against the cap's fingerprint.
    pub fn verify(&self, shnum: usize, fingerprint: &Hash) -> Result<(), FormatError> {
        signing::verify(
            &self.verification_key,
            fingerprint,
            &self.prefix.encode(),
            &self.signature,
            FORMAT,
        )?;
        let leaves: Vec<Hash> = if self.prefix.data_length == 0 {
            Vec::new()
        } else {
            vec![block_hash(&self.block)]
        };
        let tree = hashtree::build(&leaves);
        if tree != self.block_hash_tree {
            return Err(FormatError::HashMismatch { format: FORMAT });
        }
        let total = self.prefix.total as usize;
        if shnum >= total
            || !hashtree::verify_leaf(shnum, total, &tree[0], &self.share_hash_chain, &self.prefix.root_hash)
        {
            return Err(FormatError::HashMismatch { format: FORMAT });
        }
        Ok(())
    }
}

/// The key that encrypts one version's data: H(salt, readkey)[:16].
pub fn data_key(salt: &[u8; 16], readkey: &[u8; 16]) -> [u8; 16] {
    let hash = tagged_pair_hash(tag::MUTABLE_DATAKEY, salt, readkey);
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

/// Encodes one version of an SDMF file into its N shares (share `i` at index `i`).
pub fn encode(
    keys: &MutableKeys,
    signing_key: &RsaPrivateKey,
    plaintext: &[u8],
    seqnum: u64,
    needed: u8,
    total: u8,
    salt: [u8; 16],
) -> Result<Vec<Share>, FormatError> {
    let codec = Codec::new(needed as usize, total as usize)?;
    let segment_size = next_multiple(plaintext.len() as u64, needed as u64);
    let mut data = plaintext.to_vec();
    aes_ctr_at(&data_key(&salt, &keys.readkey), 0, &mut data);
    data.resize(segment_size as usize, 0);
    let blocks = codec.encode_padded(&data)?;
    let block_trees: Vec<Vec<Hash>> = blocks
        .iter()
        .map(|b| {
            hashtree::build(&if plaintext.is_empty() {
                Vec::new()
            } else {
                vec![block_hash(b)]
            })
        })
        .collect();
    let share_tree = hashtree::build(&block_trees.iter().map(|t| t[0]).collect::<Vec<_>>());
    let prefix = Prefix {
        seqnum,
        root_hash: share_tree[0],
        salt,
        needed,
        total,
        segment_size,
        data_length: plaintext.len() as u64,
    };
    let signature = signing::sign(signing_key, &prefix.encode(), FORMAT)?;
    let encrypted_private_key = keys.encrypted_private_key();
    Ok(blocks
        .into_iter()
        .zip(block_trees)
        .enumerate()
        .map(|(shnum, (block, block_hash_tree))| Share {
            prefix,
            verification_key: keys.public_key_der.clone(),
            signature: signature.clone(),
            share_hash_chain: hashtree::chain(&share_tree, shnum, total as usize, false),
            block_hash_tree,
            block,
            encrypted_private_key: encrypted_private_key.clone(),
        })
        .collect())
}

/// Decodes one version from at least k verified shares of it.
pub fn decode(readkey: &[u8; 16], prefix: &Prefix, shares: Vec<(usize, Vec<u8>)>) -> Result<Vec<u8>, FormatError> {
    let codec = Codec::new(prefix.needed as usize, prefix.total as usize)?;
    if prefix.data_length == 0 {
        return Ok(Vec::new());
    }
    let pieces = codec.decode(shares)?;
    let mut data = pieces.concat();
    data.truncate(prefix.data_length as usize);
    aes_ctr_at(&data_key(&prefix.salt, readkey), 0, &mut data);
    Ok(data)
}

/// Test helpers shared by the mutable-format tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use rsa::RsaPrivateKey;

    use crate::grid::mutable::keys::MutableKeys;

    /// The first RSA key of Tahoe's test vectors (../shared/vectors), so no key is kept in the tree.
    pub(crate) fn vector_key() -> (MutableKeys, RsaPrivateKey) {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/tahoe-test-vectors.yaml");
        let vectors: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pem = vectors["vector"]
            .as_sequence()
            .unwrap()
            .iter()
            .find_map(|v| v["format"]["params"]["key"].as_str())
            .unwrap();
        let key = RsaPrivateKey::from_pkcs1_pem(pem).unwrap();
        (MutableKeys::from_signing_key(&key).unwrap(), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (MutableKeys, RsaPrivateKey) {
        super::tests_support::vector_key()
    }

    #[test]
    fn shares_round_trip_verify_and_decode_from_any_k() {
        let (keys, key) = keys();
        for plaintext in [Vec::new(), b"hello".to_vec(), (0..5000u32).map(|i| i as u8).collect()] {
            let shares = encode(&keys, &key, &plaintext, 3, 3, 10, [9; 16]).unwrap();
            assert_eq!(shares.len(), 10);
            let mut parsed = Vec::new();
            for (shnum, share) in shares.iter().enumerate() {
                let image = share.encode();
                let back = Share::parse(&image).unwrap();
                assert_eq!(back.encode(), image);
                back.verify(shnum, &keys.fingerprint).unwrap();
                assert_eq!(
                    back.verify((shnum + 1) % 10, &keys.fingerprint),
                    Err(FormatError::HashMismatch { format: FORMAT })
                );
                parsed.push((shnum, back));
            }
            let prefix = parsed[0].1.prefix;
            let picked = parsed
                .iter()
                .skip(5)
                .take(3)
                .map(|(n, s)| (*n, s.block.clone()))
                .collect();
            assert_eq!(decode(&keys.readkey, &prefix, picked).unwrap(), plaintext);
        }
    }

    #[test]
    fn tampering_is_caught() {
        let (keys, key) = keys();
        let shares = encode(&keys, &key, b"some data here", 1, 3, 10, [1; 16]).unwrap();
        let image = shares[4].encode();
        // A changed seqnum breaks the signature; a changed block breaks the hash chain.
        let mut seq = image.clone();
        seq[8] ^= 1;
        assert_eq!(
            Share::parse(&seq).unwrap().verify(4, &keys.fingerprint),
            Err(FormatError::BadSignature { format: FORMAT })
        );
        let mut block = Share::parse(&image).unwrap();
        block.block[0] ^= 1;
        assert_eq!(
            block.verify(4, &keys.fingerprint),
            Err(FormatError::HashMismatch { format: FORMAT })
        );
        assert_eq!(
            Share::parse(&image).unwrap().verify(4, &[0; 32]),
            Err(FormatError::WrongKey { format: FORMAT })
        );
        assert_eq!(
            Share::parse(&image[..50]).map(|_| ()),
            Err(FormatError::Malformed { format: FORMAT })
        );
    }
}
