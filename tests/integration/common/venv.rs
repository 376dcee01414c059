//! The Python venvs the tests drive, made on first use by `tests/make_venv.sh` (which `.ci/run`
//! also calls ahead of the build), so that `cargo test` provisions itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `tests/make_venv.sh kind` (a no-op when the venv is ready) and returns `target/<dir>`.
pub fn ensure(kind: &str, dir: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let made = Command::new(root.join("tests/make_venv.sh")).arg(kind).status();
    assert!(
        made.is_ok_and(|status| status.success()),
        "tests/make_venv.sh {kind} failed: the tests need python3 with venv (Debian: python3-venv), \
         gcc and the Python headers (python3-dev), and PyPI"
    );
    root.join("target").join(dir)
}
