//! SDMF mutable files on a real on-disk grid: create, read, update, read-only caps, racing writers.

use std::sync::Arc;

use lafs_gateway::grid::mutable::publish::generate_signing_key;
use lafs_gateway::grid::uri::{Cap, MutableCap, MutableFormat};
use lafs_gateway::grid::{Error, Grid};

use crate::common::{TestGrid, params, pseudo_random};

async fn new_key() -> rsa::RsaPrivateKey {
    tokio::task::spawn_blocking(|| generate_signing_key().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_update_and_read_only_access_in_both_formats() {
    for (format, prefix) in [(MutableFormat::Sdmf, "URI:SSK:"), (MutableFormat::Mdmf, "URI:MDMF:")] {
        let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
        let cap = test
            .grid
            .create_mutable_as(new_key().await, b"version one", format)
            .await
            .unwrap();
        let text = Cap::Mutable(cap.clone()).to_string();
        assert!(text.starts_with(prefix), "{text}");
        assert_eq!(test.grid.read_mutable(&cap).await.unwrap(), b"version one");

        // 400 KB: four MDMF segments (the last one short), one SDMF segment.
        let big = pseudo_random(400_000, 3);
        test.grid.update_mutable(&cap, &big).await.unwrap();
        assert_eq!(test.grid.read_mutable(&cap).await.unwrap(), big, "{format:?}");
        // The size from the shares' signed headers alone.
        assert_eq!(test.grid.mutable_size(&cap).await.unwrap(), 400_000, "{format:?}");
        assert_eq!(test.grid.mutable_size(&cap.read_only()).await.unwrap(), 400_000);
        test.grid.update_mutable(&cap, b"").await.unwrap();
        assert_eq!(test.grid.read_mutable(&cap).await.unwrap(), b"");
        test.grid.update_mutable(&cap, b"short again").await.unwrap();

        let read_only = cap.read_only();
        assert_eq!(test.grid.read_mutable(&read_only).await.unwrap(), b"short again");
        assert!(matches!(
            test.grid.update_mutable(&read_only, b"nope").await,
            Err(Error::ReadOnly)
        ));
        let map = test.grid.mutable_servermap(&cap).await;
        assert_eq!(map.shares.len(), 10);
        assert_eq!(map.highest_seqnum(), Some(4));
        assert!(
            map.shares
                .iter()
                .all(|f| f.verified.as_ref().is_some_and(|s| s.format() == format))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_reads_with_only_k_good_shares_and_corrupt_ones_are_skipped() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let cap = test
        .grid
        .create_mutable(new_key().await, b"keep me safe")
        .await
        .unwrap();
    let si = cap.storage_index().to_string();
    let files = test.share_files(&si);
    assert_eq!(files.len(), 10);
    // Corrupt four shares (a block byte near the end) and delete three: three good ones remain.
    for (_, path) in &files[..4] {
        let mut raw = std::fs::read(path).unwrap();
        let at = raw.len() - 1300;
        raw[at] ^= 0x55;
        std::fs::write(path, raw).unwrap();
    }
    for (_, path) in &files[4..7] {
        std::fs::remove_file(path).unwrap();
    }
    assert_eq!(test.grid.read_mutable(&cap).await.unwrap(), b"keep me safe");
    std::fs::remove_file(&files[7].1).unwrap();
    let err = test.grid.read_mutable(&cap).await.unwrap_err();
    assert!(matches!(err, Error::NotEnoughShares { needed: 3, found: 2 }), "{err}");
}

async fn update_retrying(grid: &lafs_gateway::grid::Grid, cap: &MutableCap, data: &[u8]) -> usize {
    let mut collisions = 0;
    loop {
        match grid.update_mutable(cap, data).await {
            Ok(()) => return collisions,
            Err(Error::UncoordinatedWrite { .. }) => collisions += 1,
            Err(e) => panic!("update failed: {e}"),
        }
        assert!(collisions < 50, "livelock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_lose_an_acknowledged_write() {
    let test = Arc::new(TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv"));
    // A second gateway over the same servers: writers in one process take turns,
    // so only two processes can really collide.
    let other = Grid::new(
        test.grid.servers().to_vec(),
        *test.grid.params(),
        test.grid.secrets().clone(),
    );
    let cap = test.grid.create_mutable(new_key().await, b"v1").await.unwrap();
    let mut previous = b"v1".to_vec();
    for round in 0..5 {
        let a = format!("writer A round {round}").into_bytes();
        let b = format!("writer B round {round}").into_bytes();
        let (ra, rb) = tokio::join!(test.grid.update_mutable(&cap, &a), other.update_mutable(&cap, &b));
        for r in [&ra, &rb] {
            assert!(matches!(r, Ok(()) | Err(Error::UncoordinatedWrite { .. })), "{r:?}");
        }
        let now = test.grid.read_mutable(&cap).await.unwrap();
        let map = test.grid.mutable_servermap(&cap).await;
        let versions: Vec<String> = map
            .versions()
            .iter()
            .map(|((seq, root), shares)| {
                format!("seq {seq} root {:02x}{:02x}: {} shares", root[0], root[1], shares.len())
            })
            .collect();
        eprintln!(
            "round {round}: A {:?} B {:?} versions {versions:?} now {:?}",
            ra.is_ok(),
            rb.is_ok(),
            String::from_utf8_lossy(&now)
        );
        match (ra.is_ok(), rb.is_ok()) {
            (true, false) => assert_eq!(now, a, "A's acknowledged write survives"),
            (false, true) => assert_eq!(now, b, "B's acknowledged write survives"),
            // Both acknowledged: the one that read after the other finished overwrote it legitimately.
            (true, true) => assert!(now == a || now == b),
            // Neither acknowledged: whatever is there must be one of the candidates.
            (false, false) => assert!(now == a || now == b || now == previous),
        }
        // After a collision a retry always gets through, and the file reads as that write.
        let c = format!("retry round {round}").into_bytes();
        update_retrying(&test.grid, &cap, &c).await;
        assert_eq!(test.grid.read_mutable(&cap).await.unwrap(), c);
        previous = c;
    }
}
