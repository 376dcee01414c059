//! Protocol frontends (SFTP, FTP, drop-upload) that translate user operations into grid calls.
//!
//! None is built yet: the directory layer they share comes first. Until then
//! `lafs run` serves only the storage servers.
