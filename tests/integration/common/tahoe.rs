//! The real Tahoe-LAFS 1.20 the interop tests drive: a venv in `target/tahoe-venv`, made on first
//! use (pinned by `tests/interop/constraints.txt`) by one test process while the others wait.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = "tahoe-lafs/1.20.0";

/// The venv's directory, after installing tahoe-lafs 1.20.0 into it if it is missing.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target");
        fs::create_dir_all(&target).expect("target directory");
        let venv = target.join("tahoe-venv");
        let lock = fs::File::create(target.join("tahoe-venv.lock")).expect("venv lock file");
        lock.lock().expect("lock the tahoe venv");
        let installed = Command::new(venv.join("bin/tahoe"))
            .arg("--version")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(VERSION));
        if !installed {
            let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
            assert!(
                made.is_ok_and(|s| s.success()),
                "python3 -m venv failed (Debian: python3-venv)"
            );
            let pip = Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--no-cache-dir", "--retries", "3", "-c"])
                .arg(root.join("tests/interop/constraints.txt"))
                .arg("tahoe-lafs==1.20.0")
                .status();
            assert!(
                pip.is_ok_and(|s| s.success()),
                "pip could not install tahoe-lafs 1.20.0"
            );
        }
        lock.unlock().expect("unlock the tahoe venv");
        venv
    })
}
