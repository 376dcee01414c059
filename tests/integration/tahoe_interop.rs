//! Real Tahoe-LAFS 1.20 against our gateway and storage nodes: `tests/interop/tahoe_interop.sh`
//! installs tahoe-lafs 1.20.0 from PyPI into a venv (kept in `target/tahoe-venv`), starts real
//! Tahoe nodes on loopback and checks (a)–(d) of issue 4 in both directions, and (e)–(g) of issue 19 (the introducer).

use std::path::Path;
use std::process::Command;

/// Every check the script makes with its defaults (each prints one PASS line).
const EXPECTED_CHECKS: usize = 36;

#[test]
fn real_tahoe_1_20_and_lafs_read_each_others_files_and_directories() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Made under a lock: the web API's test uses the same venv.
    let venv = crate::common::tahoe::venv();
    let work = tempfile::tempdir().unwrap();
    let mut script = Command::new("timeout");
    // A hung node must fail the test, not the whole CI run.
    script
        .args(["--kill-after=10", "900", "bash"])
        .arg(root.join("tests/interop/tahoe_interop.sh"))
        .arg(env!("CARGO_BIN_EXE_lafs"))
        .arg(work.path())
        .env("TAHOE_VENV", venv)
        .env_remove("LAFS_NODE_DIR");
    // The script's knobs would let a caller's environment skip checks: the test runs them all.
    for knob in [
        "SCENARIOS",
        "EXTRA_MUTABLE",
        "SAME_CONVERGENCE",
        "KEEP_RUNNING",
        "READY_TIMEOUT",
        "CMD_TIMEOUT",
        "REAL_SERVERS",
        "REAL_K",
        "REAL_HAPPY",
        "REAL_N",
        "OURS_SERVERS",
        "OURS_K",
        "OURS_HAPPY",
        "OURS_N",
    ] {
        script.env_remove(knob);
    }
    let out = script.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Keep the nodes' logs for whoever reads the failure.
        let kept = work.keep();
        panic!(
            "interop script failed (logs kept in {}):\n{stdout}\n{stderr}",
            kept.display()
        );
    }
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    for scenario in ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("PASS") && l.contains(scenario)),
            "no passing {scenario} check:\n{stdout}"
        );
    }
    assert_eq!(passed, EXPECTED_CHECKS, "{passed} checks passed:\n{stdout}");
}
