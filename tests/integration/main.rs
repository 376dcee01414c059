//! One integration test binary; each module drives real parts end to end.

mod common;

/// The `lafs` binary as a user runs it.
mod cli;
/// `lafs` deep commands, `cp -r`, `ln` and `mkdir` on a tree.
mod cli_deep;
/// `lafs mv`, `put` and `ls` on paths by alias and by cap.
mod cli_paths;
/// The `lafs` CLI beside the real `tahoe` CLI on a 1,000-file tree.
mod cli_tahoe_compare;
/// The commit journal through `lafs run`: kill -9 of the gateway and of a storage node, two gateways.
mod commit_journal;
/// Directories: link, unlink, read-only caps, concurrent writers.
mod directory;
/// Drop-upload through the `lafs run` process.
mod drop_upload;
/// Issue 21: `/uri/` paths, modes, OpenSSH extensions and hashes over SFTP and FTP.
mod frontends_more;
/// Issue 21: mutable files in directories over SFTP and FTP.
mod frontends_mutable;
/// The FTP frontend with real clients.
mod ftp;
/// FTP and FTPS through `lafs run` with wget, rclone, ncftp, tnftp, ftplib and raw sessions.
mod ftp_clients;
/// Upload/download round trips, lost and corrupted shares, happiness.
mod grid;
/// Our introducer and introducer client, Rust to Rust.
mod introducer;
/// The node-wide memory budget under real SFTP and FTP clients.
mod memory;
/// Mutable (SDMF) files: publish, retrieve, collisions.
mod mutable;
/// Storage node processes over Tahoe's HTTP storage protocol.
mod network_grid;
/// `node::serve`: every service of a node from bound listeners, and its shutdown.
mod node_serve;
/// The SFTP frontend with real clients.
mod sftp;
/// The SFTP frontend under hostile input and connection floods.
mod sftp_abuse;
/// Many SFTP requests in flight on one session.
mod sftp_pipelining;
/// Real Tahoe-LAFS 1.20 nodes and clients against ours.
mod tahoe_interop;
/// Tahoe's official CHK test vectors through the real upload path.
mod vectors;
/// The vfs semantics table.
mod vfs;
/// The web pages in headless Chromium, and the metrics through promtool.
mod web_pages;
/// The real `tahoe` CLI against our web API, compared with a real Tahoe node.
mod web_tahoe_cli;
