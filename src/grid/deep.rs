//! Deep operations over a directory tree (Tahoe's manifest, deep-stats and deep-check): one
//! streaming walk, and what each operation makes of the nodes it yields.
//!
//! Nothing here prints: the `lafs` commands and the web API turn the items into their own output.

pub mod check;
pub mod manifest;
pub mod stats;
pub mod walk;

pub use check::{DeepCheckOptions, DeepCheckTally, NodeCheck};
pub use manifest::ManifestEntry;
pub use stats::DeepStats;
pub use walk::{DeepNode, DeepWalk, DirectoryInfo, NodeKind, WalkError};
