//! A mutable file's size without reading its data: the head of each share (signed header,
//! verification key, signature), checked against the cap, and the newest recoverable version's
//! length.
//!
//! Listings show mutable files with their size; reading every share whole for that (as a
//! retrieve does) would cost N/k times the file per entry. Both formats keep the key and the
//! signature before the share data, so the first few KiB of a share prove its header: the
//! signature covers the sequence number, root hash, k and the plaintext length. The blocks
//! themselves are checked when the file is read.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;

use crate::grid::hashutil::Hash;
use crate::grid::immutable::layout::be_uint;
use crate::grid::mutable::{mdmf, sdmf, signing};
use crate::grid::storage::ShareNum;
use crate::grid::uri::{MutableCap, MutableFormat};
use crate::grid::{Error, Grid};

/// Bytes read first from each share: enough for the header, an RSA-2048 key and signature and
/// (MDMF) the encrypted private key in front of them.
const HEAD_BYTES: u64 = 4096;
/// The most read when a share's key and signature end further in (larger keys).
const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// The signed facts of one share's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHeader {
    /// The version's sequence number.
    pub seqnum: u64,
    /// The version's share-hash-tree root.
    pub root_hash: Hash,
    /// k: shares needed to recover it.
    pub needed: u8,
    /// The plaintext length.
    pub data_length: u64,
}

/// What a share's head says: its signed header, or how many bytes it needs to say it.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The header, its signature checked against the cap's key fingerprint.
    Verified(SignedHeader),
    /// The key and signature end past what was read: read this many bytes.
    NeedsBytes(u64),
    /// Not a share of this file (wrong key, bad signature, malformed).
    Bad,
}

/// Parses and checks the first bytes of a share image (pure, but the RSA check costs ~0.1 ms;
/// the signing module remembers checked signatures, so N shares of one version cost one).
pub fn parse_head(head: &[u8], fingerprint: &Hash) -> Head {
    let u64_at = |at: usize| head.get(at..at + 8).map(be_uint);
    let u32_at = |at: usize| head.get(at..at + 4).map(be_uint);
    let (signed_len, key, signature, format) = match head.first() {
        Some(0) => {
            let (Some(sig_at), Some(chain_at)) = (u32_at(75), u32_at(79)) else {
                return Head::Bad;
            };
            let key_at = sdmf::HEADER_LEN as u64;
            (
                sdmf::SIGNED_PREFIX_LEN,
                (key_at, sig_at),
                (sig_at, chain_at),
                MutableFormat::Sdmf,
            )
        }
        Some(1) => {
            let (Some(sig_at), Some(key_at), Some(key_end)) = (u64_at(75), u64_at(83), u64_at(91)) else {
                return Head::Bad;
            };
            (
                mdmf::SIGNED_HEADER_LEN,
                (key_at, key_end),
                (sig_at, key_at),
                MutableFormat::Mdmf,
            )
        }
        _ => return Head::Bad,
    };
    if key.0 > key.1 || signature.0 > signature.1 {
        return Head::Bad;
    }
    let end = key.1.max(signature.1);
    if end > head.len() as u64 {
        return if end <= MAX_HEAD_BYTES {
            Head::NeedsBytes(end)
        } else {
            Head::Bad
        };
    }
    let region = |(from, to): (u64, u64)| &head[from as usize..to as usize];
    let signed = &head[..signed_len];
    if signing::verify(region(key), fingerprint, signed, region(signature), format).is_err() {
        return Head::Bad;
    }
    let (needed_at, length_at) = match format {
        MutableFormat::Sdmf => (57, 67),
        MutableFormat::Mdmf => (41, 51),
    };
    let (Some(seqnum), Some(data_length)) = (u64_at(1), u64_at(length_at)) else {
        return Head::Bad;
    };
    let mut root_hash = [0u8; 32];
    root_hash.copy_from_slice(&head[9..41]);
    Head::Verified(SignedHeader {
        seqnum,
        root_hash,
        needed: head[needed_at],
        data_length,
    })
}

/// The newest version that at least k distinct shares carry, from `(share number, header)` pairs.
pub fn newest_recoverable(found: &[(ShareNum, SignedHeader)]) -> Option<SignedHeader> {
    let mut versions: BTreeMap<(u64, Hash), (SignedHeader, BTreeSet<ShareNum>)> = BTreeMap::new();
    for (share, header) in found {
        versions
            .entry((header.seqnum, header.root_hash))
            .or_insert_with(|| (*header, BTreeSet::new()))
            .1
            .insert(*share);
    }
    versions
        .into_values()
        .rev()
        .find(|(header, shares)| shares.len() >= usize::from(header.needed.max(1)))
        .map(|(header, _)| header)
}

impl Grid {
    /// The plaintext length of the newest recoverable version of a mutable file, from the first
    /// few KiB of each share (see the module documentation).
    pub async fn mutable_size(&self, cap: &MutableCap) -> Result<u64, Error> {
        let si = cap.storage_index();
        self.check_allowed(si)?;
        let fingerprint = cap.fingerprint;
        let servers = self.permuted_servers(si);
        let reads = servers.iter().map(|server| async move {
            let mut found = Vec::new();
            let Ok(numbers) = server.list_mutable_shares(si).await else {
                return found;
            };
            for share in numbers {
                let Ok(mut head) = server.read_mutable_share(si, share, 0, HEAD_BYTES).await else {
                    continue;
                };
                let mut parsed = parse_head(&head, &fingerprint);
                if let Head::NeedsBytes(len) = parsed {
                    let Ok(longer) = server.read_mutable_share(si, share, 0, len).await else {
                        continue;
                    };
                    head = longer;
                    parsed = parse_head(&head, &fingerprint);
                }
                match parsed {
                    Head::Verified(header) => found.push((share, header)),
                    _ => tracing::warn!(storage_index = %si, share, server = %server.id().nickname, "mutable share head does not verify"),
                }
            }
            found
        });
        let found: Vec<(ShareNum, SignedHeader)> = join_all(reads).await.into_iter().flatten().collect();
        match newest_recoverable(&found) {
            Some(header) => Ok(header.data_length),
            None => Err(Error::NotEnoughShares {
                needed: self.params().needed,
                found: found.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seqnum: u64, root: u8, data_length: u64) -> SignedHeader {
        SignedHeader {
            seqnum,
            root_hash: [root; 32],
            needed: 2,
            data_length,
        }
    }

    #[test]
    fn the_newest_version_with_k_distinct_shares_gives_the_size() {
        let old = header(1, 1, 100);
        let new = header(2, 2, 200);
        // The newer version has one share (twice): not recoverable, so the older one counts.
        let found = [(0, old), (1, old), (2, new), (2, new)];
        assert_eq!(newest_recoverable(&found), Some(old));
        let found = [(0, old), (1, old), (2, new), (3, new)];
        assert_eq!(newest_recoverable(&found), Some(new));
        assert_eq!(newest_recoverable(&[(0, new)]), None);
    }

    #[test]
    fn a_head_that_is_no_share_of_the_file_is_bad() {
        let fingerprint = [7u8; 32];
        assert_eq!(parse_head(&[], &fingerprint), Head::Bad);
        assert_eq!(parse_head(&[2; 200], &fingerprint), Head::Bad);
        // An SDMF head whose signature would end past what was read asks for more bytes.
        let mut head = vec![0u8; sdmf::HEADER_LEN];
        head[75..79].copy_from_slice(&500u32.to_be_bytes());
        head[79..83].copy_from_slice(&756u32.to_be_bytes());
        assert_eq!(parse_head(&head, &fingerprint), Head::NeedsBytes(756));
        head.resize(756, 0);
        assert_eq!(
            parse_head(&head, &fingerprint),
            Head::Bad,
            "key and signature do not match"
        );
    }
}
