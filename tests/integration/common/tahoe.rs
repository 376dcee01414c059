//! The real Tahoe-LAFS 1.20 the interop tests drive: a venv in `target/tahoe-venv`, made on first
//! use (pinned by `tests/interop/constraints.txt`) by one test process while the others wait.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The venv's directory, after installing tahoe-lafs 1.20.0 into it if it is missing.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| super::venv::ensure("tahoe", "tahoe-venv"))
}

/// Runs one of the comparison scripts of `tests/interop/` (`script LAFS WORKDIR`) with the venv's
/// Python, bounded by `timeout_secs`, and checks that it passed exactly `expected` comparisons.
pub fn run_comparison(script: &str, expected: usize, timeout_secs: u32) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = crate::common::scratch_dir();
    let out = std::process::Command::new("timeout")
        // A hung node must fail the test, not the whole CI run.
        .args(["--kill-after=10", &timeout_secs.to_string()])
        .arg(venv().join("bin/python"))
        .arg(root.join("tests/interop").join(script))
        .arg(env!("CARGO_BIN_EXE_lafs"))
        .arg(work.path().join("run"))
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let kept = work.keep();
        panic!(
            "{script} failed (nodes' logs in {}):\n{stdout}\n{stderr}",
            kept.display()
        );
    }
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert_eq!(passed, expected, "{stdout}");
}
