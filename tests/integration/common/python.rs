//! The Python the tests drive paramiko with: a venv under `target/` holding the pinned packages of
//! `tests/python-requirements.txt`, made on first use so that `cargo test` provisions itself.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The venv's `python3` from async code: making the venv blocks, so it runs off the runtime.
pub async fn interpreter() -> &'static Path {
    tokio::task::spawn_blocking(python).await.expect("venv task")
}

/// The venv's `python3`, after making the venv if it is missing or holds other pins (several
/// test processes may ask at once: `tests/make_venv.sh` lets one build it while the others wait).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| super::venv::ensure("paramiko", "test-venv").join("bin/python3"))
}
