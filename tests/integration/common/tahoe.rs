//! The real Tahoe-LAFS 1.20 the interop tests drive: a venv in `target/tahoe-venv`, made on first
//! use (pinned by `tests/interop/constraints.txt`) by one test process while the others wait.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The venv's directory, after installing tahoe-lafs 1.20.0 into it if it is missing.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| super::venv::ensure("tahoe", "tahoe-venv"))
}
