//! Fuzz targets for shares as read from servers: immutable shares, mutable containers and SDMF/MDMF shares.

use std::collections::BTreeMap;

use lafs_gateway::grid::dirnode::{self, Child};
use lafs_gateway::grid::hashutil::{tag, tagged_hash};
use lafs_gateway::grid::immutable::layout::{FileShape, ShareLayout, be_uint, max_hash_region};
use lafs_gateway::grid::immutable::ueb::UriExtension;
use lafs_gateway::grid::mutable::keys::MutableKeys;
use lafs_gateway::grid::mutable::share::AnyShare;
use lafs_gateway::grid::mutable::{mdmf, sdmf};
use lafs_gateway::grid::storage::{immutable_container, mutable_container};

use super::outcome::class_of;
use crate::engine::Target;

// Immutable shares as read from servers: the share header, the UEB length field and the UEB,
// the immutable container, and the mutable container's header and leases (the on-disk formats
// servers serve from).

fn immutable_share_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (size, k, n) in [
        (1000u64, 3usize, 10usize),
        (56, 1, 1),
        (5 << 20, 3, 10),
        (1 << 34, 2, 255),
    ] {
        let shape = FileShape::new(size, k, n, 128 << 10);
        let ueb = UriExtension {
            codec_name: "crs".into(),
            codec_params: format!("{}-{k}-{n}", shape.segment_size),
            tail_codec_params: format!("{}-{k}-{n}", shape.tail_size),
            crypttext_hash: [1; 32],
            crypttext_root_hash: [2; 32],
            share_root_hash: [3; 32],
            needed_shares: k as u64,
            total_shares: n as u64,
            num_segments: shape.num_segments,
            segment_size: shape.segment_size,
            size,
        };
        let packed = ueb.pack();
        let layout = ShareLayout::for_upload(&shape, packed.len() as u64);
        let mut share = layout.encode_header();
        share.extend_from_slice(&packed);
        // The same share as a server's file holds it: container header, share, one lease.
        let mut file = immutable_container::Header::new(share.len() as u64).encode().to_vec();
        file.extend_from_slice(&share);
        file.extend_from_slice(&[7; immutable_container::LEASE_SIZE as usize]);
        seeds.push(file);
        seeds.push(share);
        seeds.push(packed);
    }
    seeds
}

fn immutable_share_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    match ShareLayout::decode_header(input) {
        Ok(layout) => {
            let field = layout.ueb_length_field();
            let _ = layout.share_size(input.len() as u64);
            let at = usize::try_from(layout.uri_extension).unwrap_or(usize::MAX);
            let len_end = at.saturating_add(field as usize);
            if let Some(len_bytes) = input.get(at..len_end.min(input.len())) {
                let len = be_uint(len_bytes);
                classes.push(format!("header, ueb len {}", len.min(1 << 20) > 0));
            }
        }
        Err(e) => classes.push(class_of(&e.to_string())),
    }
    // The UEB is read wherever it sits; try it at the start and after a v1/v2 header.
    for offset in [0usize, 0x24, 0x44] {
        if let Some(packed) = input.get(offset..) {
            match UriExtension::parse(packed) {
                Ok(ueb) => {
                    assert_eq!(
                        UriExtension::parse(&ueb.pack()).as_ref(),
                        Ok(&ueb),
                        "UEB does not round-trip"
                    );
                    if let Ok(total) = usize::try_from(ueb.total_shares)
                        && total <= 256
                    {
                        let _ = max_hash_region(ueb.num_segments, total);
                    }
                    classes.push("ueb".to_string());
                }
                Err(e) => classes.push(class_of(&e.to_string())),
            }
        }
    }
    match immutable_container::Container::parse(input) {
        Ok(container) => {
            let leases = container.leases().count();
            assert_eq!(
                leases, container.header.num_leases as usize,
                "immutable container leases"
            );
            assert_eq!(
                immutable_container::HEADER_SIZE as usize
                    + container.data.len()
                    + leases * immutable_container::LEASE_SIZE as usize,
                input.len(),
                "immutable container parts"
            );
            assert_eq!(
                immutable_container::Header::decode(&container.header.encode()),
                Ok(container.header),
                "immutable container header"
            );
            classes.push("immutable container".to_string());
        }
        Err(e) => classes.push(class_of(&e.to_string())),
    }
    if let Some(header) = mutable_container::Header::decode(input) {
        assert_eq!(
            mutable_container::Header::decode(&header.encode()),
            Some(header),
            "container header"
        );
        classes.push("container".to_string());
    }
    if mutable_container::Lease::decode(input).is_some() {
        classes.push("lease".to_string());
    }
    classes.join(",")
}

const IMMUTABLE_SHARE_TOKENS: &[&[u8]] = &[
    b"\0\0\0\x01",
    b"\0\0\0\x02",
    b"codec_name:",
    b"codec_params:",
    b"crypttext_hash:",
    b"num_segments:",
    b"segment_size:",
    b"size:",
    b"needed_shares:",
    b"total_shares:",
    b"share_root_hash:",
    b"tail_codec_params:",
    b"crypttext_root_hash:",
    b"3:crs,",
    b"32:",
    b",",
    b"Tahoe mutable container v1\n\x75\x09\x44\x03\x8e",
    b"\0",
    b"\x01",
    b"\0\0\0\0",
    b"\xff\xff\xff\xff",
    b"\0\0\0\0\0\0\0\0",
    b"\0\0\0\0\0\0\x10\0",
    b"0:,",
    b"1:x,",
    b"URI:SSK:",
    b"{\"tahoe\":{}}",
];

// ---------------------------------------------------------------------------------------------
// Mutable shares (SDMF and MDMF) as read from servers, verified as retrieve does, and the
// directory bodies they carry.

fn mutable_share_seeds() -> Vec<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let mut seeds = Vec::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/tahoe-test-vectors.yaml");
    let key = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
        .and_then(|vectors| {
            vectors["vector"]
                .as_sequence()?
                .iter()
                .find_map(|v| v["format"]["params"]["key"].as_str().map(str::to_string))
        })
        .and_then(|pem| rsa::RsaPrivateKey::from_pkcs1_pem(&pem).ok());
    if let Some(key) = key
        && let Ok(keys) = MutableKeys::from_signing_key(&key)
    {
        if let Ok(shares) = sdmf::encode(&keys, &key, b"hello, mutable world", 1, 2, 3, [5; 16]) {
            seeds.extend(shares.iter().take(2).map(sdmf::Share::encode));
        }
        if let Ok(shares) = mdmf::encode(&keys, &key, &[7u8; 3000], 2, 2, 3) {
            seeds.extend(shares.iter().take(2).map(mdmf::Share::encode));
        }
    }
    let child = Child {
        write_cap: Some(
            "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq".into(),
        ),
        read_cap: Some(
            "URI:SSK-RO:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq".into(),
        ),
        metadata: serde_json::json!({"tahoe": {"linkcrtime": 1.5, "linkmotime": 2.5}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let children = BTreeMap::from([("a file".to_string(), child.clone()), ("é".to_string(), child)]);
    seeds.push(dirnode::pack(&children, None));
    seeds.push(dirnode::pack(&children, Some(&[9; 16])));
    seeds
}

fn mutable_share_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    match AnyShare::parse(input) {
        Ok(share) => {
            let image = share.encode();
            let reparsed = AnyShare::parse(&image).map(|s| s.encode());
            assert_eq!(reparsed.as_ref(), Ok(&image), "a share image does not round-trip");
            let key = match &share {
                AnyShare::Sdmf(s) => s.verification_key.clone(),
                AnyShare::Mdmf(s) => s.verification_key.clone(),
            };
            // Verified against its own key's fingerprint, so the checks past it run too.
            let fingerprint = tagged_hash(tag::MUTABLE_PUBKEY, &key);
            let verified = share.verify(0, &fingerprint).map_err(|e| class_of(&e.to_string()));
            let _ = (share.version(), share.needed(), share.total(), share.format());
            classes.push(format!("{:?} {verified:?}", share.format()));
        }
        Err(e) => classes.push(class_of(&e.to_string())),
    }
    for writekey in [None, Some(&[9u8; 16])] {
        match dirnode::unpack(input, writekey) {
            Ok(children) => {
                let packed = dirnode::pack(&children, writekey);
                assert_eq!(
                    dirnode::unpack(&packed, writekey).ok().map(|c| c.len()),
                    Some(children.len()),
                    "a directory body does not round-trip"
                );
                classes.push(format!("dir {}", children.len().min(3)));
            }
            Err(e) => classes.push(class_of(&e.to_string())),
        }
    }
    classes.join(",")
}

fn share_seeds() -> Vec<Vec<u8>> {
    immutable_share_seeds()
        .into_iter()
        .chain(mutable_share_seeds())
        .collect()
}

fn share_run(input: &[u8]) -> String {
    format!("{} / {}", immutable_share_run(input), mutable_share_run(input))
}

pub const SHARES: Target = Target {
    name: "shares",
    seeds: share_seeds,
    dictionary: IMMUTABLE_SHARE_TOKENS,
    max_len: 16 << 10,
    run: share_run,
};
