//! The `lafs` CLI beside the real `tahoe` CLI (tahoe-lafs 1.20) on a tree of 1,000 files in 50
//! directories (`tests/interop/lafs_cli_compare.py` sets up the nodes and compares).

use std::path::Path;
use std::process::Command;

/// The comparisons the script makes (one PASS line each).
const EXPECTED_CHECKS: usize = 19;

#[test]
fn lafs_commands_give_what_tahoe_gives_on_a_thousand_file_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate::common::tahoe::venv().join("bin/python");
    let work = crate::common::scratch_dir();
    let out = Command::new("timeout")
        // A hung node must fail the test, not the whole CI run.
        .args(["--kill-after=10", "600"])
        .arg(python)
        .arg(root.join("tests/interop/lafs_cli_compare.py"))
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
            "lafs/tahoe CLI comparison failed (nodes' logs in {}):\n{stdout}\n{stderr}",
            kept.display()
        );
    }
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert_eq!(passed, EXPECTED_CHECKS, "{stdout}");
}
