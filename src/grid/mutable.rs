//! Mutable files (SDMF and MDMF): the keys and caps derived from an RSA signing key.
//!
//! Publishing and retrieving shares come with the directory layer; this module
//! holds what both sides derive from the key.

pub mod keys;
pub mod sdmf;
