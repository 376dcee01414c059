//! Protocol frontends that translate user operations into vfs calls, and the parts they share.
//!
//! - [`accounts`]: the accounts file (users, keys, password hashes, root dircaps).
//! - [`throttle`]: failed-login limits per source address.
//! - [`limits`]: sessions in total and per address, login grace and idle times.
//! - [`file_reader`] / [`file_writer`]: reading and writing files at client offsets (spooled in
//!   [`crate::grid::spool`]).
//! - [`sftp`]: the SSH/SFTP server; [`ftp`]: the FTP server.

pub mod accounts;
pub mod digest;
pub mod drop_upload;
pub mod file_reader;
pub mod file_writer;
pub mod ftp;
pub mod integrity;
pub mod limits;
pub mod sftp;
pub mod throttle;
