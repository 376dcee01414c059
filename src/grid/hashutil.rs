//! Netstrings and Tahoe's tagged SHA-256d hashes, with every tag Tahoe uses.

use sha2::{Digest, Sha256};

/// Tags from Tahoe's `util/hashutil.py`, byte for byte; each is named after its Tahoe constant.
#[allow(missing_docs)]
pub mod tag {
    pub const STORAGE_INDEX: &[u8] = b"allmydata_immutable_key_to_storage_index_v1";
    pub const BLOCK: &[u8] = b"allmydata_encoded_subshare_v1";
    pub const UEB: &[u8] = b"allmydata_uri_extension_v1";
    pub const CIPHERTEXT: &[u8] = b"allmydata_crypttext_v1";
    pub const CIPHERTEXT_SEGMENT: &[u8] = b"allmydata_crypttext_segment_v1";
    pub const CONVERGENT_ENCRYPTION: &[u8] = b"allmydata_immutable_content_to_key_with_added_secret_v1+";
    pub const CLIENT_RENEWAL: &[u8] = b"allmydata_client_renewal_secret_v1";
    pub const CLIENT_CANCEL: &[u8] = b"allmydata_client_cancel_secret_v1";
    pub const FILE_RENEWAL: &[u8] = b"allmydata_file_renewal_secret_v1";
    pub const FILE_CANCEL: &[u8] = b"allmydata_file_cancel_secret_v1";
    pub const BUCKET_RENEWAL: &[u8] = b"allmydata_bucket_renewal_secret_v1";
    pub const BUCKET_CANCEL: &[u8] = b"allmydata_bucket_cancel_secret_v1";
    pub const MUTABLE_WRITEKEY: &[u8] = b"allmydata_mutable_privkey_to_writekey_v1";
    pub const MUTABLE_WRITE_ENABLER_MASTER: &[u8] = b"allmydata_mutable_writekey_to_write_enabler_master_v1";
    pub const MUTABLE_WRITE_ENABLER: &[u8] = b"allmydata_mutable_write_enabler_master_and_nodeid_to_write_enabler_v1";
    pub const MUTABLE_PUBKEY: &[u8] = b"allmydata_mutable_pubkey_to_fingerprint_v1";
    pub const MUTABLE_READKEY: &[u8] = b"allmydata_mutable_writekey_to_readkey_v1";
    pub const MUTABLE_DATAKEY: &[u8] = b"allmydata_mutable_readkey_to_datakey_v1";
    pub const MUTABLE_STORAGE_INDEX: &[u8] = b"allmydata_mutable_readkey_to_storage_index_v1";
    pub const DIRNODE_CHILD_WRITECAP: &[u8] = b"allmydata_mutable_writekey_and_salt_to_dirnode_child_capkey_v1";
    pub const DIRNODE_CHILD_SALT: &[u8] = b"allmydata_dirnode_child_rwcap_to_salt_v1";
    pub const MERKLE_EMPTY_LEAF: &[u8] = b"Merkle tree empty leaf";
    pub const MERKLE_INTERNAL_NODE: &[u8] = b"Merkle tree internal node";
}

/// A 32-byte SHA-256d digest.
pub type Hash = [u8; 32];

/// `len:bytes,` as Tahoe writes it.
pub fn netstring(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
    out.push(b',');
    out
}

/// A streaming `SHA256(SHA256(netstring(tag) + data))`.
#[derive(Clone)]
pub struct TaggedHasher(Sha256);

impl TaggedHasher {
    /// Starts a hash under `tag`.
    pub fn new(tag: &[u8]) -> Self {
        let mut inner = Sha256::new();
        inner.update(netstring(tag));
        TaggedHasher(inner)
    }

    /// Adds bytes to the hashed value.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The full 32-byte digest.
    pub fn finalize(self) -> Hash {
        Sha256::digest(self.0.finalize()).into()
    }

    /// The digest cut to 16 bytes, as keys and storage indexes are.
    pub fn finalize16(self) -> [u8; 16] {
        truncate16(&self.finalize())
    }
}

fn truncate16(hash: &Hash) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

/// `SHA256d(netstring(tag) + value)`.
pub fn tagged_hash(tag: &[u8], value: &[u8]) -> Hash {
    let mut hasher = TaggedHasher::new(tag);
    hasher.update(value);
    hasher.finalize()
}

/// `tagged_hash` cut to 16 bytes.
pub fn tagged_hash16(tag: &[u8], value: &[u8]) -> [u8; 16] {
    truncate16(&tagged_hash(tag, value))
}

/// `SHA256d(netstring(tag) + netstring(a) + netstring(b))`.
pub fn tagged_pair_hash(tag: &[u8], a: &[u8], b: &[u8]) -> Hash {
    let mut hasher = TaggedHasher::new(tag);
    hasher.update(&netstring(a));
    hasher.update(&netstring(b));
    hasher.finalize()
}

/// The hash of one erasure-coded block (a block-hash-tree leaf).
pub fn block_hash(block: &[u8]) -> Hash {
    tagged_hash(tag::BLOCK, block)
}

/// The hash of one ciphertext segment (a crypttext-hash-tree leaf).
pub fn crypttext_segment_hash(segment: &[u8]) -> Hash {
    crypttext_segment_hash_of_parts([segment])
}

/// [`crypttext_segment_hash`] of the segment `parts` make when joined.
pub fn crypttext_segment_hash_of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Hash {
    let mut hasher = TaggedHasher::new(tag::CIPHERTEXT_SEGMENT);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// The storage index of a CHK file: derived from its AES key.
pub fn storage_index_hash(key: &[u8; 16]) -> [u8; 16] {
    tagged_hash16(tag::STORAGE_INDEX, key)
}

/// The tag under which a plaintext is hashed to its convergent key.
pub fn convergence_tag(needed: usize, total: usize, segment_size: u64, secret: &[u8]) -> Vec<u8> {
    let mut tag = tag::CONVERGENT_ENCRYPTION.to_vec();
    tag.extend_from_slice(&netstring(secret));
    tag.extend_from_slice(&netstring(format!("{needed},{total},{segment_size}").as_bytes()));
    tag
}

/// The client-wide lease renewal secret (Tahoe hashes the tag *under* the secret).
pub fn client_renewal_secret(lease_secret: &[u8]) -> Hash {
    tagged_hash(lease_secret, tag::CLIENT_RENEWAL)
}

/// The client-wide lease cancel secret.
pub fn client_cancel_secret(lease_secret: &[u8]) -> Hash {
    tagged_hash(lease_secret, tag::CLIENT_CANCEL)
}

/// The per-server lease renewal secret for one storage index.
pub fn bucket_renewal_secret(client_renew: &Hash, storage_index: &[u8], server_id: &[u8]) -> Hash {
    let file = tagged_pair_hash(tag::FILE_RENEWAL, client_renew, storage_index);
    tagged_pair_hash(tag::BUCKET_RENEWAL, &file, server_id)
}

/// The per-server lease cancel secret for one storage index.
pub fn bucket_cancel_secret(client_cancel: &Hash, storage_index: &[u8], server_id: &[u8]) -> Hash {
    let file = tagged_pair_hash(tag::FILE_CANCEL, client_cancel, storage_index);
    tagged_pair_hash(tag::BUCKET_CANCEL, &file, server_id)
}

/// Tahoe's `hashutil.hmac`: not RFC 2104 (the key is XORed byte by byte, never padded to 64 bytes).
///
/// Only the dirnode child-writecap MAC uses it, and no reader checks that MAC.
pub fn tahoe_hmac(key: &[u8], data: &[u8]) -> Hash {
    let outer_key: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner_key: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let mut inner = Sha256::new();
    inner.update(&inner_key);
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(&outer_key);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Where a storage index puts a server on the permuted ring: `SHA1(SI + seed)`.
pub fn permute_server_hash(storage_index: &[u8], permutation_seed: &[u8]) -> [u8; 20] {
    use sha1::Sha1;
    let mut hasher = Sha1::new();
    hasher.update(storage_index);
    hasher.update(permutation_seed);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::base32;

    fn b32(bytes: &[u8]) -> String {
        base32::encode(bytes)
    }

    // Known answers from Tahoe's test_hashutil.py.
    #[test]
    fn matches_tahoe_hashutil_vectors() {
        assert_eq!(
            b32(&tagged_hash16(tag::STORAGE_INDEX, b"")),
            "qb5igbhcc5esa6lwqorsy7e6am"
        );
        assert_eq!(b32(&storage_index_hash(&[b'x'; 16])), "wvggbrnrezdpa5yayrgiw5nzja");
        let key = base32::decode_array::<16>("2ckv3dfzh6rgjis6ogfqhyxnzy").unwrap();
        assert_eq!(b32(&storage_index_hash(&key)), "aarbseqqrpsfowduchcjbonscq");
        assert_eq!(
            b32(&block_hash(b"")),
            "msjr5bh4evuh7fa3zw7uovixfbvlnstr5b65mrerwfnvjxig2jvq"
        );
        assert_eq!(
            b32(&tagged_hash(tag::UEB, b"")),
            "wthsu45q7zewac2mnivoaa4ulh5xvbzdmsbuyztq2a5fzxdrnkka"
        );
        assert_eq!(
            b32(&tagged_hash(tag::CIPHERTEXT, b"")),
            "itdj6e4njtkoiavlrmxkvpreosscssklunhwtvxn6ggho4rkqwga"
        );
        assert_eq!(
            b32(&crypttext_segment_hash(b"")),
            "aovy5aa7jej6ym5ikgwyoi4pxawnoj3wtaludjz7e2nb5xijb7aa"
        );
        let conv = convergence_tag(3, 10, 100, b"converge");
        assert_eq!(b32(&tagged_hash16(&conv, b"")), "3mo6ni7xweplycin6nowynw2we");
        assert_eq!(
            b32(&client_renewal_secret(b"")),
            "ujhr5k5f7ypkp67jkpx6jl4p47pyta7hu5m527cpcgvkafsefm6q"
        );
        assert_eq!(
            b32(&tagged_pair_hash(tag::FILE_RENEWAL, b"", b"si")),
            "hzshk2kf33gzbd5n3a6eszkf6q6o6kixmnag25pniusyaulqjnia"
        );
        assert_eq!(
            b32(&tagged_pair_hash(tag::BUCKET_RENEWAL, b"", &[0u8; 20])),
            "e7imrzgzaoashsncacvy3oysdd2m5yvtooo4gmj4mjlopsazmvuq"
        );
        assert_eq!(
            b32(&tahoe_hmac(b"tag", b"")),
            "c54ypfi6pevb3nvo6ba42jtglpkry2kbdopqsi7dgrm4r7tw5sra"
        );
        let rwcap_key = &tagged_pair_hash(tag::DIRNODE_CHILD_WRITECAP, b"iv", b"wk")[..16];
        assert_eq!(b32(rwcap_key), "6rvn2iqrghii5n4jbbwwqqsnqu");
        let seed = base32::decode("u33m4y7klhz3bypswqkozwetvabelhxt").unwrap();
        assert_eq!(
            b32(&permute_server_hash(b"SI", &seed)),
            "kb4354zeeurpo3ze5e275wzbynm6hlap"
        );
    }

    #[test]
    fn convergence_tag_is_tahoes() {
        assert_eq!(
            convergence_tag(3, 10, 1024, &[0x42; 16]),
            b"allmydata_immutable_content_to_key_with_added_secret_v1+16:BBBBBBBBBBBBBBBB,9:3,10,1024,"
        );
    }

    #[test]
    fn lease_renewal_vectors_pass() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/lease-renewal-secret-vectors.yaml"
        ))
        .expect("shared vectors present");
        let mut checked = 0;
        for line in text.lines().filter(|l| l.trim_start().starts_with("- {")) {
            let field = |name: &str| {
                let start = line.find(&format!("{name}: ")).unwrap() + name.len() + 2;
                line[start..].split([',', '}']).next().unwrap().trim().to_string()
            };
            let secret = base32::decode(&field("lease_secret")).unwrap();
            let si = base32::decode(&field("storage_index")).unwrap();
            let tubid = base32::decode(&field("tubid")).unwrap();
            let got = bucket_renewal_secret(&client_renewal_secret(&secret), &si, &tubid);
            assert_eq!(b32(&got), field("expected"));
            checked += 1;
        }
        assert_eq!(checked, 4);
    }
}
