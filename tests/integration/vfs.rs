//! The vfs semantics table, on a writable root and on the same tree through a read-only root.

use std::io::Cursor;

use lafs_gateway::grid::uri::MutableFormat;
use lafs_gateway::vfs::{ErrorKind, Kind, Vfs, check_name};

use crate::common::{TestGrid, params};

fn kind_of<T: std::fmt::Debug>(result: Result<T, lafs_gateway::vfs::Error>) -> ErrorKind {
    result.expect_err("expected an error").kind()
}

async fn put(vfs: &Vfs, path: &str, data: &[u8], overwrite: bool) -> Result<(), lafs_gateway::vfs::Error> {
    vfs.write_file(
        path.as_bytes(),
        Cursor::new(data.to_vec()),
        data.len() as u64,
        overwrite,
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantics_on_writable_and_read_only_sdmf_roots() {
    semantics(MutableFormat::Sdmf, "URI:DIR2:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantics_on_writable_and_read_only_mdmf_roots() {
    semantics(MutableFormat::Mdmf, "URI:DIR2-MDMF:").await;
}

async fn semantics(format: MutableFormat, prefix: &str) {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let root = test.grid.create_directory_as(format).await.unwrap();
    assert!(root.to_string().starts_with(prefix), "{root}");
    let vfs = Vfs::new(test.grid.clone(), root.clone());

    vfs.mkdir(b"/docs").await.unwrap();
    assert_eq!(kind_of(vfs.mkdir(b"/docs").await), ErrorKind::AlreadyExists);
    put(&vfs, "/docs/a.txt", b"alpha", false).await.unwrap();
    put(&vfs, "/docs/big.bin", &vec![7u8; 100_000], false).await.unwrap();
    assert_eq!(
        kind_of(put(&vfs, "/docs/a.txt", b"again", false).await),
        ErrorKind::AlreadyExists
    );
    put(&vfs, "/docs/a.txt", b"alpha two", true).await.unwrap();
    assert_eq!(vfs.read(b"/docs/a.txt", 0, 100).await.unwrap(), b"alpha two");
    assert_eq!(vfs.read(b"/docs/big.bin", 99_990, 100).await.unwrap(), vec![7u8; 10]);
    assert_eq!(kind_of(put(&vfs, "/docs", b"x", true).await), ErrorKind::IsADirectory);

    let stat = vfs.stat(b"/docs/a.txt").await.unwrap();
    assert_eq!((stat.kind, stat.size, stat.read_only), (Kind::File, 9, false));
    assert_eq!(vfs.stat(b"/docs").await.unwrap().kind, Kind::Directory);
    assert_eq!(vfs.stat(b"/").await.unwrap().kind, Kind::Directory);
    assert_eq!(kind_of(vfs.stat(b"/nope").await), ErrorKind::NotFound);
    assert_eq!(kind_of(vfs.stat(b"/docs/a.txt/inner").await), ErrorKind::NotADirectory);
    assert_eq!(kind_of(vfs.read(b"/docs", 0, 1).await), ErrorKind::IsADirectory);

    // rmdir of a non-empty directory is refused (Tahoe's SFTP removed it).
    assert_eq!(kind_of(vfs.rmdir(b"/docs").await), ErrorKind::DirectoryNotEmpty);
    assert_eq!(kind_of(vfs.remove(b"/docs").await), ErrorKind::IsADirectory);
    assert_eq!(kind_of(vfs.rmdir(b"/docs/a.txt").await), ErrorKind::NotADirectory);

    // Rename: within a directory, across directories, with and without overwrite.
    put(&vfs, "/docs/b.txt", b"beta", false).await.unwrap();
    assert_eq!(
        kind_of(vfs.rename(b"/docs/a.txt", b"/docs/b.txt", false).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(vfs.read(b"/docs/b.txt", 0, 100).await.unwrap(), b"beta");
    vfs.rename(b"/docs/a.txt", b"/docs/b.txt", true).await.unwrap();
    assert_eq!(vfs.read(b"/docs/b.txt", 0, 100).await.unwrap(), b"alpha two");
    assert_eq!(kind_of(vfs.stat(b"/docs/a.txt").await), ErrorKind::NotFound);
    vfs.mkdir(b"/other").await.unwrap();
    vfs.rename(b"/docs/b.txt", b"/other/moved.txt", false).await.unwrap();
    assert_eq!(vfs.read(b"/other/moved.txt", 0, 100).await.unwrap(), b"alpha two");
    assert_eq!(
        kind_of(vfs.rename(b"/docs/missing", b"/other/x", false).await),
        ErrorKind::NotFound
    );

    // A directory cannot move into itself.
    vfs.mkdir(b"/other/inner").await.unwrap();
    assert_eq!(
        kind_of(vfs.rename(b"/other", b"/other/inner/other", false).await),
        ErrorKind::InvalidName
    );
    assert_eq!(kind_of(vfs.rename(b"/", b"/x", false).await), ErrorKind::InvalidName);
    vfs.rmdir(b"/other/inner").await.unwrap();

    // set-mtime then stat returns it.
    vfs.set_mtime(b"/other/moved.txt", 1_234_567_890.5).await.unwrap();
    assert_eq!(
        vfs.stat(b"/other/moved.txt").await.unwrap().mtime,
        Some(1_234_567_890.5)
    );
    let listing = vfs.list(b"/other").await.unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].0, "moved.txt");
    assert_eq!(listing[0].1.mtime, Some(1_234_567_890.5));

    // Names: `/`, NUL, invalid UTF-8, `.`/`..` are refused; NFC forms are one name.
    for bad in [&b"a/b"[..], b"a\0b", b"\xff\xfe", b"", b".", b".."] {
        assert_eq!(check_name(bad).unwrap_err().kind(), ErrorKind::InvalidName, "{bad:?}");
    }
    assert_eq!(kind_of(vfs.mkdir(b"/bad\0name").await), ErrorKind::InvalidName);
    assert_eq!(kind_of(vfs.mkdir(b"/bad\xffname").await), ErrorKind::InvalidName);
    vfs.mkdir("/caf\u{e9}".as_bytes()).await.unwrap();
    assert_eq!(
        kind_of(vfs.mkdir("/cafe\u{301}".as_bytes()).await),
        ErrorKind::AlreadyExists
    );

    // Every mutation through a read-only root is refused; reads work.
    let ro = Vfs::new(test.grid.clone(), root.read_only());
    assert_eq!(ro.read(b"/other/moved.txt", 0, 100).await.unwrap(), b"alpha two");
    assert!(ro.stat(b"/other/moved.txt").await.unwrap().read_only);
    assert!(ro.stat(b"/docs").await.unwrap().read_only);
    let denied = [
        kind_of(ro.mkdir(b"/new").await),
        kind_of(ro.mkdir(b"/docs/new").await),
        kind_of(put(&ro, "/f", b"x", true).await),
        kind_of(put(&ro, "/docs/f", b"x", true).await),
        kind_of(ro.remove(b"/other/moved.txt").await),
        kind_of(ro.rmdir("/caf\u{e9}".as_bytes()).await),
        kind_of(ro.rename(b"/other/moved.txt", b"/other/m2", true).await),
        kind_of(ro.set_mtime(b"/other/moved.txt", 1.0).await),
    ];
    assert!(denied.iter().all(|k| *k == ErrorKind::PermissionDenied), "{denied:?}");

    // Finally, emptied directories go away.
    vfs.remove(b"/docs/big.bin").await.unwrap();
    vfs.rmdir(b"/docs").await.unwrap();
    assert_eq!(kind_of(vfs.stat(b"/docs").await), ErrorKind::NotFound);
}
