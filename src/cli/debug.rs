//! `lafs debug`: tools for looking inside the grid.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::grid::base32;
use crate::grid::immutable::layout::ShareLayout;
use crate::grid::immutable::ueb::UriExtension;
use crate::grid::storage::{immutable_container, mutable_container};

/// Debugging subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the container, layout and URI extension block of a share file.
    DumpShare {
        /// Path to the share file.
        path: PathBuf,
    },
}

pub(crate) fn dump_share(path: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(header) = mutable_container::Header::decode(&raw) {
        println!("mutable share container v{}", header.version);
        println!("  server node id: {}", base32::encode(&header.node_id));
        println!("  data length: {}", header.data_length);
        println!("  extra lease offset: {}", header.extra_lease_offset);
        for slot in 0..mutable_container::HEADER_LEASE_SLOTS {
            let at = mutable_container::lease_slot_offset(slot);
            if let Some(lease) = raw.get(at..).and_then(mutable_container::Lease::decode) {
                println!(
                    "  lease slot {slot}: owner {} expires {}",
                    lease.owner_num, lease.expiration
                );
            }
        }
        return Ok(());
    }
    let container = immutable_container::Container::parse(&raw).map_err(|e| match e {
        immutable_container::ContainerError::TooShort => {
            anyhow::anyhow!("{} is too short to be a share", path.display())
        }
        immutable_container::ContainerError::UnknownVersion(version) => anyhow::anyhow!(
            "{} is not a Tahoe share container (version field {version})",
            path.display()
        ),
        immutable_container::ContainerError::LeasesDoNotFit(leases) => {
            anyhow::anyhow!("{} is truncated: {leases} leases do not fit", path.display())
        }
    })?;
    let header = container.header;
    let data = container.data;
    println!(
        "immutable share container v{}, max size {}, {} lease(s), {} bytes of share data",
        header.version,
        header.max_size,
        header.num_leases,
        data.len()
    );
    for (i, lease) in container.leases().enumerate() {
        println!("  lease {i}: owner {} expires {}", lease.owner_num, lease.expiration);
    }
    let layout = ShareLayout::decode_header(data).map_err(|e| anyhow::anyhow!("share layout: {e}"))?;
    println!(
        "share layout v{}: block size {}, share data size {}",
        layout.version, layout.block_size, layout.data_size
    );
    println!(
        "  offsets: data {} crypttext tree {} block hashes {} share hashes {} URI extension {}",
        layout.data, layout.crypttext_hash_tree, layout.block_hashes, layout.share_hashes, layout.uri_extension
    );
    let field = layout.ueb_length_field() as usize;
    let at = layout.uri_extension as usize;
    let len_bytes = data
        .get(at..at + field)
        .context("share is truncated before its URI extension block")?;
    let len = crate::grid::immutable::layout::be_uint(len_bytes) as usize;
    let packed = data
        .get(at + field..at + field + len)
        .context("URI extension block is truncated")?;
    let ueb = UriExtension::parse(packed).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "URI extension block ({len} bytes, hash {}):",
        base32::encode(&ueb.hash())
    );
    println!(
        "  codec {} params {} tail {}",
        ueb.codec_name, ueb.codec_params, ueb.tail_codec_params
    );
    println!(
        "  size {} segment size {} segments {} needed {} total {}",
        ueb.size, ueb.segment_size, ueb.num_segments, ueb.needed_shares, ueb.total_shares
    );
    println!("  crypttext hash {}", base32::encode(&ueb.crypttext_hash));
    println!("  crypttext root hash {}", base32::encode(&ueb.crypttext_root_hash));
    println!("  share root hash {}", base32::encode(&ueb.share_root_hash));
    let chain = data
        .get(layout.share_hashes as usize..layout.uri_extension as usize)
        .unwrap_or(&[]);
    let indexes: Vec<String> = chain
        .chunks_exact(34)
        .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
        .collect();
    println!("share hash chain nodes: {}", indexes.join(", "));
    Ok(())
}
