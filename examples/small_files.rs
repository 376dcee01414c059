//! Where the time of one small-file put and get goes: the steps an SFTP `put` of a 4 KiB file
//! takes, then those of reading it back, timed one by one over 200 files on the default local
//! grid (3-of-10, 10 on-disk servers).
//!
//! `cargo run --release --example small_files` (BENCH_DIR picks the disk; default `target`).

use std::time::{Duration, Instant};

use lafs_gateway::grid::{ClientSecrets, EncodingParams, Grid};
use lafs_gateway::vfs::Vfs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))?;
    let secrets = ClientSecrets {
        convergence: b"bench".to_vec(),
        lease: b"bench".to_vec(),
    };
    let grid = Grid::open_local(dir.path(), 10, EncodingParams::default(), secrets)?;
    let root = grid.create_directory().await?;
    let vfs = Vfs::new(grid.clone(), root.clone());
    vfs.mkdir(b"d").await?;
    let mut steps = [Duration::ZERO; 4];
    let names = ["stat (missing)", "prepare_write", "upload 4 KiB", "link"];
    let started = Instant::now();
    for i in 0..200u32 {
        let path = format!("d/f{i:03}");
        let data: Vec<u8> = (0..4096u32).map(|b| (b ^ i) as u8).collect();
        let t = Instant::now();
        let _ = vfs.stat(path.as_bytes()).await;
        steps[0] += t.elapsed();
        let t = Instant::now();
        vfs.prepare_write(path.as_bytes()).await?;
        steps[1] += t.elapsed();
        let t = Instant::now();
        let cap = grid.upload_bytes(data).await?;
        steps[2] += t.elapsed();
        let t = Instant::now();
        vfs.link_file(path.as_bytes(), &cap, true, None).await?;
        steps[3] += t.elapsed();
    }
    report(&names, &steps, started.elapsed());
    // Reading each back: the path, the shares (read whole, on a guess), the decoding.
    let mut steps = [Duration::ZERO; 3];
    let names = ["lookup", "open", "read"];
    let started = Instant::now();
    for i in 0..200u32 {
        let path = format!("d/f{i:03}");
        let t = Instant::now();
        let (cap, _) = vfs.lookup(path.as_bytes()).await?;
        steps[0] += t.elapsed();
        let lafs_gateway::grid::uri::Cap::Chk(chk) = cap else {
            anyhow::bail!("{path} is no CHK file");
        };
        let t = Instant::now();
        let mut reader = grid.open_file(&chk).await?;
        steps[1] += t.elapsed();
        let t = Instant::now();
        let data = reader.read_range(0, u64::MAX).await?;
        steps[2] += t.elapsed();
        anyhow::ensure!(data.len() == 4096, "{path} read back {} bytes", data.len());
    }
    report(&names, &steps, started.elapsed());
    Ok(())
}

/// Prints each step's time and the whole per file (of 200).
fn report(names: &[&str], steps: &[Duration], total: Duration) {
    for (name, step) in names.iter().zip(steps) {
        println!("{name:<16} {:7.3} ms per file", step.as_secs_f64() * 1000.0 / 200.0);
    }
    println!(
        "total            {:7.3} ms per file, {:.0} files/s",
        total.as_secs_f64() * 1000.0 / 200.0,
        200.0 / total.as_secs_f64()
    );
}
