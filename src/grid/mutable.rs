//! Mutable files: keys and caps from an RSA signing key, the SDMF and MDMF share formats, publish and retrieve.

mod format_error;
pub mod key_pool;
pub mod keys;
pub mod mdmf;
pub mod probe;
pub mod publish;
pub mod retrieve;
pub mod sdmf;
pub mod share;
pub mod signing;

pub use format_error::FormatError;
