//! lafs-gateway: SFTP, FTP and a watched folder in front of a Tahoe-LAFS grid.
//!
//! # Layout
//! - [`grid`]: capabilities, the CHK codec, storage servers, upload, download
//!   and check; byte-compatible with Tahoe-LAFS 1.20.
//! - [`node`]: the node directory (config file and private secrets).
//! - [`node::storage_node`]: serving shares over Tahoe's HTTP storage protocol.
//! - [`cli`]: the `lafs` command line.
//! - [`frontends`]: the protocol servers that users connect to.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod frontends;
pub mod grid;
pub mod node;
pub mod vfs;
