//! Directory benchmarks on the default local grid (3-of-10, 10 on-disk servers):
//! listing a 10,000-entry directory, mkdir latency with a warm key pool, and stat 5 levels deep.
//!
//! Run with `bench/dirs.sh` (release build). Prints p50/p90 in milliseconds and peak RSS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lafs_gateway::grid::dirnode::{self, Child};
use lafs_gateway::grid::uri::Cap;
use lafs_gateway::grid::{ClientSecrets, EncodingParams, Grid};
use lafs_gateway::vfs::Vfs;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))?;
    let secrets = ClientSecrets {
        convergence: b"bench".to_vec(),
        lease: b"bench".to_vec(),
    };
    let grid = Grid::open_local(dir.path(), 10, EncodingParams::default(), secrets)?.with_key_pool(4)?;

    // A 10,000-entry directory, each entry a real CHK cap with metadata, as a full link would leave it.
    let file = grid.upload_bytes(vec![42u8; 4096]).await?;
    let mut children = BTreeMap::new();
    for i in 0..10_000 {
        let mut metadata = serde_json::Map::new();
        metadata.insert("mtime".into(), serde_json::Value::from(1_700_000_000.0 + i as f64));
        children.insert(
            format!("file-{i:05}.dat"),
            Child {
                write_cap: None,
                read_cap: Some(file.to_string()),
                metadata,
            },
        );
    }
    let big = Cap::Directory(Box::new(Cap::Mutable(
        grid.create_mutable(grid.new_signing_key().await?, &dirnode::pack(&children, None))
            .await?,
    )));
    let root = grid.create_directory().await?;
    grid.link(&root, "big", &big, false, Default::default()).await?;
    let vfs = Vfs::new(grid.clone(), root.clone());
    let mut samples = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let listing = vfs.list(b"/big").await?;
        samples.push(start.elapsed());
        assert_eq!(listing.len(), 10_000);
    }
    println!(
        "list 10,000-entry directory: p50 {:7.1} ms  p90 {:7.1} ms  ({} runs)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.9),
        samples.len()
    );

    // mkdir with a warm key pool: wait for it to fill, then time each mkdir (key, publish, link).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let start = Instant::now();
        vfs.mkdir(format!("/d{i:02}").as_bytes()).await?;
        samples.push(start.elapsed());
        // Let the pool refill between mkdirs, as between a user's commands.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    println!(
        "mkdir (warm key pool):        p50 {:7.1} ms  p90 {:7.1} ms  ({} runs)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.9),
        samples.len()
    );

    // stat of a file 5 directories deep.
    let mut path = String::new();
    for level in ["a", "b", "c", "d", "e"] {
        path.push('/');
        path.push_str(level);
        vfs.mkdir(path.as_bytes()).await?;
    }
    let data = vec![1u8; 10_000];
    vfs.write_file(
        format!("{path}/file").as_bytes(),
        std::io::Cursor::new(data),
        10_000,
        false,
        None,
    )
    .await?;
    let target = format!("{path}/file");
    let mut samples = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let stat = vfs.stat(target.as_bytes()).await?;
        samples.push(start.elapsed());
        assert_eq!(stat.size, 10_000);
    }
    println!(
        "stat /a/b/c/d/e/file:         p50 {:7.1} ms  p90 {:7.1} ms  ({} runs)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.9),
        samples.len()
    );
    println!("peak RSS {:.1} MiB", peak_rss_mib());
    Ok(())
}
