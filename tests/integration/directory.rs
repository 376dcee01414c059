//! Directories on a real on-disk grid: link, overwrite rules, unlink, read-only caps, concurrent writers.

use std::sync::Arc;

use lafs_gateway::grid::Error;
use lafs_gateway::grid::directory::{DirectoryError, child_cap};
use lafs_gateway::grid::uri::Cap;
use serde_json::Map;

use crate::common::{TestGrid, params, pseudo_random};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_overwrite_unlink_and_read_only_listing() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let dir = test.grid.create_directory().await.unwrap();
    assert!(dir.to_string().starts_with("URI:DIR2:"), "{dir}");
    assert!(test.grid.list_directory(&dir).await.unwrap().is_empty());

    let file = test.grid.upload_bytes(pseudo_random(1000, 1)).await.unwrap();
    let sub = test.grid.create_directory().await.unwrap();
    test.grid
        .link(&dir, "report.pdf", &file, false, Map::new())
        .await
        .unwrap();
    test.grid.link(&dir, "sub", &sub, false, Map::new()).await.unwrap();
    let listing = test.grid.list_directory(&dir).await.unwrap();
    assert_eq!(listing.keys().collect::<Vec<_>>(), ["report.pdf", "sub"]);
    assert_eq!(child_cap(&listing["report.pdf"]), Some(file.clone()));
    assert_eq!(child_cap(&listing["sub"]), Some(sub.clone()));
    let created = listing["report.pdf"].metadata["tahoe"]["linkcrtime"].as_f64().unwrap();

    let other = test.grid.upload_bytes(pseudo_random(2000, 2)).await.unwrap();
    let err = test
        .grid
        .link(&dir, "report.pdf", &other, false, Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Directory(DirectoryError::Exists)), "{err}");
    test.grid
        .link(&dir, "report.pdf", &other, true, Map::new())
        .await
        .unwrap();
    let listing = test.grid.list_directory(&dir).await.unwrap();
    assert_eq!(child_cap(&listing["report.pdf"]), Some(other));
    assert_eq!(
        listing["report.pdf"].metadata["tahoe"]["linkcrtime"].as_f64(),
        Some(created),
        "creation time kept on replace"
    );

    // Through the read-only cap: children show read caps only, and nothing can change.
    let read_only = dir.read_only();
    assert!(read_only.to_string().starts_with("URI:DIR2-RO:"));
    let seen = test.grid.list_directory(&read_only).await.unwrap();
    assert_eq!(seen["sub"].write_cap, None);
    assert_eq!(child_cap(&seen["sub"]), Some(sub.read_only()));
    let err = test
        .grid
        .link(&read_only, "x", &file, false, Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly), "{err}");

    test.grid.unlink(&dir, "sub").await.unwrap();
    let err = test.grid.unlink(&dir, "sub").await.unwrap_err();
    assert!(matches!(err, Error::Directory(DirectoryError::NotFound)), "{err}");
    assert_eq!(test.grid.list_directory(&dir).await.unwrap().len(), 1);
    assert!(matches!(
        test.grid.list_directory(&file).await,
        Err(Error::UnsupportedCap("CHK"))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_adding_fifty_entries_each_lose_nothing() {
    let test = Arc::new(TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv"));
    let dir = test.grid.create_directory().await.unwrap();
    let file = Cap::parse("URI:LIT:mfrgg").unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|writer| {
            let (test, dir, file) = (test.clone(), dir.clone(), file.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    test.grid
                        .link(&dir, &format!("w{writer}-{i:02}"), &file, false, Map::new())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let listing = test.grid.list_directory(&dir).await.unwrap();
    assert_eq!(listing.len(), 400);
    for writer in 0..8 {
        for i in 0..50 {
            assert!(
                listing.contains_key(&format!("w{writer}-{i:02}")),
                "w{writer}-{i:02} lost"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_directories_list_from_chk_and_lit() {
    use lafs_gateway::grid::dirnode::{self, Child};
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let file = test.grid.upload_bytes(pseudo_random(3000, 4)).await.unwrap();
    let mut children = std::collections::BTreeMap::new();
    for i in 0..20 {
        children.insert(
            format!("f{i}"),
            Child {
                write_cap: None,
                read_cap: Some(file.to_string()),
                metadata: Map::new(),
            },
        );
    }
    // Immutable directories are packed without write caps and stored as CHK (or LIT when tiny).
    let Cap::Chk(chk) = test.grid.upload_bytes(dirnode::pack(&children, None)).await.unwrap() else {
        panic!("expected CHK")
    };
    let dir = Cap::parse(&format!(
        "URI:DIR2-CHK:{}",
        Cap::Chk(chk).to_string().trim_start_matches("URI:CHK:")
    ))
    .unwrap();
    assert_eq!(dir.kind(), "DIR2-CHK");
    let listing = test.grid.list_directory(&dir).await.unwrap();
    assert_eq!(listing.len(), 20);
    assert_eq!(child_cap(&listing["f7"]), Some(file.clone()));
    assert!(matches!(
        test.grid.link(&dir, "x", &file, false, Map::new()).await,
        Err(Error::ReadOnly)
    ));
    let empty = Cap::parse("URI:DIR2-LIT:").unwrap();
    assert!(test.grid.list_directory(&empty).await.unwrap().is_empty());
}
