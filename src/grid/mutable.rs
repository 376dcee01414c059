//! Mutable files: keys and caps from an RSA signing key, the SDMF share format, publish and retrieve.
//!
//! MDMF (multi-segment) is not written yet; its caps parse and its keys derive.

pub mod key_pool;
pub mod keys;
pub mod mdmf;
pub mod publish;
pub mod retrieve;
pub mod sdmf;
