//! Real Tahoe-LAFS 1.20 against our gateway and storage nodes: `tests/interop/tahoe_interop.sh`
//! installs tahoe-lafs 1.20.0 from PyPI into a venv (kept in `target/tahoe-venv`), starts real
//! Tahoe nodes on loopback and checks (a)–(d) of issue 4 in both directions.

use std::path::Path;
use std::process::Command;

#[test]
fn real_tahoe_1_20_and_lafs_read_each_others_files_and_directories() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root.join("tests/interop/tahoe_interop.sh"))
        .arg(env!("CARGO_BIN_EXE_lafs"))
        .arg(work.path())
        .env("TAHOE_VENV", root.join("target/tahoe-venv"))
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "interop script failed:\n{stdout}\n{stderr}");
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    for scenario in ["(a)", "(b)", "(c)", "(d)"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("PASS") && l.contains(scenario)),
            "no passing {scenario} check:\n{stdout}"
        );
    }
    assert!(passed >= 20, "only {passed} checks passed:\n{stdout}");
}
