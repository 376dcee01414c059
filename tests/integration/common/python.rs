//! The Python the tests drive paramiko with: a venv under `target/` holding the pinned packages of
//! `tests/python-requirements.txt`, made on first use so that `cargo test` provisions itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The venv's `python3` from async code: making the venv blocks, so it runs off the runtime.
pub async fn interpreter() -> &'static Path {
    tokio::task::spawn_blocking(python).await.expect("venv task")
}

/// The venv's `python3`, after making the venv if it is missing or holds other pins.
///
/// Several test processes may ask at once: a lock file beside the venv lets one build it while
/// the others wait, and a marker written last (the requirements it was built from) tells a
/// finished venv from a half-made one.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let requirements_path = root.join("tests/python-requirements.txt");
        let requirements = fs::read_to_string(&requirements_path).expect("tests/python-requirements.txt");
        let target = root.join("target");
        fs::create_dir_all(&target).expect("target directory");
        let venv = target.join("test-venv");
        let marker = venv.join("lafs-requirements.txt");
        let interpreter = venv.join("bin/python3");
        let lock = fs::File::create(target.join("test-venv.lock")).expect("venv lock file");
        lock.lock().expect("lock the test venv");
        if fs::read_to_string(&marker).ok().as_deref() != Some(requirements.as_str()) {
            let made = Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status();
            assert!(
                made.is_ok_and(|status| status.success()),
                "python3 -m venv failed: the tests need python3 with its venv module (Debian: python3-venv)"
            );
            let installed = Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "-q",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--retries",
                    "3",
                    "-r",
                ])
                .arg(&requirements_path)
                .status();
            assert!(
                installed.is_ok_and(|status| status.success()),
                "pip could not install tests/python-requirements.txt into {} (is PyPI reachable?)",
                venv.display()
            );
            fs::write(&marker, &requirements).expect("venv marker");
        }
        lock.unlock().expect("unlock the test venv");
        interpreter
    })
}
