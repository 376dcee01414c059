//! The subset of Foolscap (the RPC protocol of Tahoe-LAFS's introducer) this gateway speaks:
//! fURLs, tub IDs, connection negotiation, the Banana token codec and PB calls, all pure
//! (no I/O), plus the TLS settings and the async connection that drive them.
//!
//! The wire reference is `../shared/docs/foolscap-introducer.md` (checked against Foolscap
//! 24.9.0 and Tahoe-LAFS 1.20.0 traffic); section numbers in comments point into it.

pub mod banana;
pub mod call;
pub mod connection;
pub mod furl;
pub mod negotiation;
pub mod tls;
pub mod tub_id;
