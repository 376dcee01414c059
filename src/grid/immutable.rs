//! Immutable (CHK) files: the share codec and layout, the URI extension block, and the upload, download, check and repair that orchestrate them.
//!
//! The mirror of [`crate::grid::mutable`]: `chk`, `layout` and `ueb` are pure codecs; `upload`,
//! `download`, `check` and `repair` drive them over the grid's storage servers.

pub mod check;
pub mod chk;
pub mod download;
pub mod layout;
pub mod repair;
mod segment;
pub mod ueb;
pub mod upload;
