//! lafs-gateway: SFTP, FTP and a watched folder in front of a Tahoe-LAFS grid.
//!
//! # Layout
//! The layers, each knowing only those below it:
//! - [`grid`]: capabilities, the CHK ([`grid::immutable`]) and SDMF/MDMF ([`grid::mutable`])
//!   codecs, storage servers ([`grid::storage`]), upload, download, check and repair;
//!   byte-compatible with Tahoe-LAFS 1.20. Knows no paths or protocols.
//! - [`vfs`]: paths under a root dircap, mapped onto directory and file operations; every
//!   frontend goes through it. Knows no protocol.
//! - [`frontends`]: what users connect to: [`frontends::sftp`], [`frontends::ftp`] and the
//!   watched folders of [`frontends::drop_upload`], with the accounts, limits and throttle they share.
//! - [`node`]: a node directory and serving it.
//!   - [`node::config`]: `lafs.toml`, one function per section; [`node::secrets`]: `lafs init`
//!     and the `private/` secrets; [`node::aliases`]: `private/aliases`; [`node::error`].
//!   - [`node::open`]: [`node::Node`], a loaded config and the grid it describes.
//!   - [`node::serve`](mod@node::serve): [`node::serve()`](fn@node::serve), every service
//!     `lafs run` starts, from bound [`node::Listeners`] until a shutdown signal (the
//!     integration tests start nodes through it too).
//!   - [`node::storage_node`]: serving this node's shares over Tahoe's HTTP storage protocol.
//! - [`foolscap`]: the Foolscap subset Tahoe's introducer speaks (pure codecs, an async
//!   connection); [`introducer`]: joining a grid by its introducer fURL, publishing to it,
//!   serving as one.
//! - [`web`]: Tahoe's web API (the `tahoe` CLI's protocol) and pages, over [`grid`].
//! - [`cli`]: the `lafs` command line, thin: one file per command family under `cli/`
//!   (`run`, `files`, `alias`, `check`, `account`, `drop_upload`, `debug`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod foolscap;
pub mod frontends;
pub mod grid;
pub mod introducer;
pub mod node;
pub mod vfs;
pub mod web;
