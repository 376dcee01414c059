//! The node's pages in a real browser (headless Chromium: welcome, a directory, an upload and a
//! mkdir with the directory's forms, a download, the status page; `tests/web/browser.py`), and
//! its OpenMetrics output through Prometheus's own checker, on one `lafs run` node.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{scratch_dir, spawn_lafs_run, wait_for};

/// Kills the node when the test ends, passed or not.
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(url: &str) -> String {
    let out = Command::new("curl").args(["-sS", "--fail", url]).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn chromium_uses_the_pages_and_promtool_accepts_the_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = scratch_dir();
    let dir = work.path().join("node");
    let init = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(init.status.success());
    std::fs::write(
        dir.join("lafs.toml"),
        "[grid]\nneeded = 1\nhappy = 1\ntotal = 1\n[storage]\nservers = 1\n[frontends]\nsftp = false\nftp = false\n",
    )
    .unwrap();
    let log = std::fs::File::create(work.path().join("node.log")).unwrap();
    let _node = Node(spawn_lafs_run(&dir, log));
    let node_url = dir.join("node.url");
    wait_for("node.url", Duration::from_secs(60), || node_url.exists());
    let url = std::fs::read_to_string(&node_url).unwrap().trim().to_string();

    let shots = root.join("target/web-screenshots");
    let browser = Command::new("timeout")
        .args(["--kill-after=10", "120", "python3"])
        .arg(root.join("tests/web/browser.py"))
        .arg(&url)
        .arg(&shots)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&browser.stdout);
    assert!(
        browser.status.success() && stdout.contains("6 passed, 0 failed"),
        "browser steps failed (is chromium installed? see .ci/run):\n{stdout}\n{}",
        String::from_utf8_lossy(&browser.stderr)
    );
    for shot in ["welcome.png", "directory.png", "status.png"] {
        let png = std::fs::read(shots.join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }

    // The browser's upload and download are counted, and Prometheus's checker takes the text.
    let metrics = curl(&format!("{url}statistics?t=openmetrics"));
    assert!(
        metrics.contains("tahoe_counters_uploader_files_uploaded 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lafs_operation_duration_seconds_count{kind=\"upload\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; see .ci/run)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool refuses the metrics:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let json = curl(&format!("{url}statistics?t=json"));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["counters"]["uploader.files_uploaded"], 1, "{json}");
    assert!(parsed["stats"]["node.uptime"].as_f64().unwrap() > 0.0, "{json}");
}

/// Ten `PUT ?offset=` edits of one mutable file at once (curl), each a different byte: every one
/// lands. Each reads, changes and publishes the file under its write lock; edits that read the
/// same version and published one after the other had lost eight of ten.
#[test]
fn offset_writes_to_one_mutable_file_at_once_all_land() {
    let work = scratch_dir();
    let dir = work.path().join("node");
    let init = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(init.status.success());
    let log = std::fs::File::create(work.path().join("node.log")).unwrap();
    let _node = Node(spawn_lafs_run(&dir, log));
    let node_url = dir.join("node.url");
    wait_for("node.url", Duration::from_secs(60), || node_url.exists());
    let url = std::fs::read_to_string(&node_url).unwrap().trim().to_string();
    let put = |target: &str, body: &str| {
        Command::new("curl")
            .args(["-sS", "--fail", "-X", "PUT", "--data-binary", body])
            .arg(format!("{url}{target}"))
            .output()
            .unwrap()
    };
    let created = put("uri?format=MDMF", "AAAAAAAAAA");
    assert!(created.status.success());
    let cap = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let edits: Vec<_> = (0..10)
        .map(|i| {
            let (url, cap) = (url.clone(), cap.clone());
            std::thread::spawn(move || {
                Command::new("curl")
                    .args(["-sS", "--fail", "-X", "PUT", "--data-binary", "B"])
                    .arg(format!("{url}uri/{cap}?offset={i}"))
                    .status()
                    .unwrap()
                    .success()
            })
        })
        .collect();
    assert!(edits.into_iter().all(|edit| edit.join().unwrap()), "an edit failed");
    assert_eq!(curl(&format!("{url}uri/{cap}")), "BBBBBBBBBB");
}
