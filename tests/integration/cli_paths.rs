//! `lafs mv`, `put` and `ls` on paths that name directories by alias and by cap (issue 22's two
//! wrong-result bugs), and `ls -l`'s dates and `--json`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{alias_cap, scratch_dir};

pub(crate) fn lafs(node: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args(args)
        .env_remove("LAFS_NODE_DIR")
        .output()
        .expect("run lafs")
}

/// Standard output of a run that must succeed.
pub(crate) fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "lafs failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Standard error of a run that must fail.
pub(crate) fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "lafs succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn mv_between_dircaps_aliases_and_put_onto_a_directory() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    ok(lafs(&node, &["init"]));
    for alias in ["tahoe", "a", "b"] {
        ok(lafs(&node, &["alias", "create", alias]));
    }
    let (a, b) = (alias_cap(&node, "a"), alias_cap(&node, "b"));
    let file = tmp.path().join("x");
    std::fs::write(&file, b"contents of x, longer than a literal cap holds.........").unwrap();
    ok(lafs(&node, &["put", file.to_str().unwrap(), "a:x"]));

    // Two directory caps: x moves from a's directory into b's as y (it was renamed inside a's).
    ok(lafs(&node, &["mv", &format!("{a}/x"), &format!("{b}/y")]));
    assert_eq!(ok(lafs(&node, &["ls", "a:"])), "");
    assert_eq!(ok(lafs(&node, &["ls", "b:"])), "y\n");

    // A bare path and an explicit alias naming the same directory.
    ok(lafs(&node, &["mkdir", "tahoe:A"]));
    ok(lafs(&node, &["put", file.to_str().unwrap(), "tahoe:w"]));
    ok(lafs(&node, &["mv", "w", "tahoe:A/z"]));
    assert_eq!(ok(lafs(&node, &["ls", "tahoe:A"])), "z\n");
    assert_eq!(ok(lafs(&node, &["ls", "tahoe:"])), "A\n");

    // put onto a directory is refused, and the directory and its entries stay.
    let err = fails(lafs(&node, &["put", file.to_str().unwrap(), "tahoe:A"]));
    assert!(err.contains("A: is a directory"), "{err}");
    assert_eq!(ok(lafs(&node, &["ls", "tahoe:A"])), "z\n");
    // A file is replaced.
    std::fs::write(&file, b"new contents of z, longer than a literal cap holds.......").unwrap();
    ok(lafs(&node, &["put", file.to_str().unwrap(), "tahoe:A/z"]));
    assert_eq!(lafs(&node, &["get", "tahoe:A/z"]).stdout, std::fs::read(&file).unwrap());
}
