//! The real `tahoe` CLI (tahoe-lafs 1.20) against `lafs run`'s web API, every output compared
//! with the same command against a real Tahoe client node on the same storage servers
//! (`tests/interop/tahoe_webapi.py` sets it up and compares), and mutable files the real client
//! made read and written in place through `lafs run`'s SFTP and FTP (`mutable_frontends.py`).

use std::path::Path;
use std::process::Command;

/// The commands the script compares and the SFTP/FTP checks of mutable files (one PASS line each).
const EXPECTED_CHECKS: usize = 49;

#[test]
fn the_real_tahoe_cli_gets_the_same_answers_from_lafs_as_from_tahoe() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate::common::tahoe::venv().join("bin/python");
    let work = crate::common::scratch_dir();
    let out = Command::new("timeout")
        // A hung node must fail the test, not the whole CI run.
        .args(["--kill-after=10", "300"])
        .arg(python)
        .arg(root.join("tests/interop/tahoe_webapi.py"))
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
            "web API comparison failed (nodes' logs in {}):\n{stdout}\n{stderr}",
            kept.display()
        );
    }
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert_eq!(passed, EXPECTED_CHECKS, "{stdout}");
}
