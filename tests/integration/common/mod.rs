//! Shared test helpers: local grids in temporary directories, share files, the vectors file.

#![allow(dead_code)]

pub mod gateway;
pub mod python;
pub mod tahoe;
pub mod venv;

use std::path::{Path, PathBuf};

use lafs_gateway::grid::{ClientSecrets, EncodingParams, Grid};

/// A grid of on-disk servers in a temporary directory (on tmpfs when available, so tests are not disk-bound).
pub struct TestGrid {
    pub dir: tempfile::TempDir,
    pub grid: Grid,
}

pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temporary directory")
}

impl TestGrid {
    pub fn new(servers: usize, params: EncodingParams, convergence: &[u8]) -> TestGrid {
        let dir = scratch_dir();
        let secrets = ClientSecrets {
            convergence: convergence.to_vec(),
            lease: b"test lease secret".to_vec(),
        };
        let grid = Grid::open_local(dir.path(), servers, params, secrets).expect("open local grid");
        TestGrid { dir, grid }
    }

    /// Every share file of a storage index, as (share number, path).
    pub fn share_files(&self, si: &str) -> Vec<(u16, PathBuf)> {
        let mut out = Vec::new();
        for server in std::fs::read_dir(self.dir.path()).unwrap() {
            let dir = server.unwrap().path().join("shares").join(&si[..2]).join(si);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries {
                    let entry = entry.unwrap();
                    let num = entry.file_name().to_str().unwrap().parse().unwrap();
                    out.push((num, entry.path()));
                }
            }
        }
        out.sort();
        out
    }
}

pub fn params(needed: usize, happy: usize, total: usize, max_segment_size: u64) -> EncodingParams {
    EncodingParams {
        needed,
        happy,
        total,
        max_segment_size,
    }
}

/// Every file and directory under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// A deterministic pseudo-random buffer.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/tahoe-test-vectors.yaml")
}

/// A two-thread runtime for tests that drive async code from a plain `#[test]`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The cap of alias `name` in the node directory `node`, read as `lafs` reads it.
pub fn alias_cap(node: &Path, name: &str) -> String {
    let aliases = lafs_gateway::node::read_aliases(node).expect("aliases readable");
    aliases.get(name).expect("alias written").clone()
}

/// Polls `done` every 100 ms until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Starts `lafs run` for the node at `node` as a child process, SFTP and FTP on free loopback
/// ports, logging at info level to `log`.
pub fn spawn_lafs_run(node: &Path, log: std::fs::File) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args([
            "run",
            "--sftp-listen",
            "127.0.0.1:0",
            "--ftp-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .env_remove("LAFS_NODE_DIR")
        .env("LAFS_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}
