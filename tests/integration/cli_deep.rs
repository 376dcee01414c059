//! `lafs cp -r`, `manifest`, `stats`, `deep-check [--verify] [--repair] [--add-lease]`, `ls -R`,
//! `ln` and `mkdir` on one tree of 58 files in 7 directories, on a node's local 10-server grid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::cli_paths::{fails, lafs, ok};
use crate::common::{pseudo_random, scratch_dir, walk};

/// Writes the tree: 3 files at the top (one small enough to live in its cap), five directories
/// of 10 files, and one of 5 below the first; every file's contents differ. Returns each file's
/// relative path and size.
fn write_tree(root: &Path) -> BTreeMap<String, usize> {
    let mut files = BTreeMap::new();
    let mut add = |relative: String, len: usize| {
        let path = root.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pseudo_random(len, files.len() as u64 + 1)).unwrap();
        files.insert(relative, len);
    };
    add("top-small".into(), 20);
    add("top-a".into(), 1000);
    add("top-b".into(), 70_000);
    for d in 0..5 {
        for f in 0..10 {
            add(format!("d{d}/f{f}"), 1 + (d * 10 + f) * 997 % 9000);
        }
    }
    for f in 0..5 {
        add(format!("d0/inner/g{f}"), 100 + f * 3000);
    }
    files
}

fn exit_code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// Every share directory (`…/shares/<prefix>/<si>`) of the node's servers, by storage index.
fn share_dirs(node: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut by_si: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in walk(&node.join("storage")) {
        let Some(dir) = file.parent() else { continue };
        if dir
            .parent()
            .and_then(Path::parent)
            .is_some_and(|p| p.ends_with("shares"))
        {
            let si = dir.file_name().unwrap().to_str().unwrap().to_string();
            let dirs = by_si.entry(si).or_default();
            if !dirs.contains(&dir.to_path_buf()) {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    for dirs in by_si.values_mut() {
        dirs.sort();
    }
    by_si
}

#[test]
fn deep_commands_on_a_tree_and_repair_after_losing_four_shares_of_everything() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    ok(lafs(&node, &["init"]));
    ok(lafs(&node, &["alias", "create", "tahoe"]));
    let local = tmp.path().join("tree");
    let files = write_tree(&local);
    let literal = files.values().filter(|&&len| len <= 55).count();
    let immutable_bytes: usize = files.values().filter(|&&len| len > 55).sum();
    let (file_count, dir_count) = (files.len(), 7);
    let nodes = file_count + dir_count;

    // As Tahoe's cp: a directory goes into the target under its name.
    ok(lafs(&node, &["cp", "-r", local.to_str().unwrap(), "tahoe:"]));

    // manifest: every node once, with its cap; files by the cap `put` gives them.
    let manifest = ok(lafs(&node, &["manifest", "tahoe:tree"]));
    assert_eq!(manifest.lines().count(), nodes, "{manifest}");
    let by_path: BTreeMap<&str, &str> = manifest
        .lines()
        .map(|l| {
            let (cap, path) = l.split_once(' ').unwrap();
            (path, cap)
        })
        .collect();
    let put_cap = ok(lafs(&node, &["put", local.join("d3/f7").to_str().unwrap()]));
    assert_eq!(by_path["d3/f7"], put_cap.trim());
    assert!(
        by_path[""].starts_with("URI:DIR2:"),
        "the root comes first, with an empty path"
    );
    assert!(by_path["d0/inner"].starts_with("URI:DIR2:"));
    let json_lines = ok(lafs(&node, &["manifest", "--json", "tahoe:tree"]));
    let last: serde_json::Value = serde_json::from_str(json_lines.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "stats");

    // stats: Tahoe's counts and histogram.
    let stats: serde_json::Value = serde_json::from_str(&ok(lafs(&node, &["stats", "--json", "tahoe:tree"]))).unwrap();
    assert_eq!(stats["count-files"], file_count);
    assert_eq!(stats["count-directories"], dir_count);
    assert_eq!(stats["count-literal-files"], literal);
    assert_eq!(stats["count-immutable-files"], file_count - literal);
    assert_eq!(stats["size-immutable-files"], immutable_bytes);
    assert_eq!(stats["largest-directory-children"], 11, "d0: 10 files and inner");
    assert_eq!(stats["largest-immutable-file"], 70_000);
    let histogram_total: u64 = stats["size-files-histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[2].as_u64().unwrap())
        .sum();
    assert_eq!(histogram_total, file_count as u64);
    let text = ok(lafs(&node, &["stats", "tahoe:tree"]));
    assert!(text.starts_with("Counts and Total Sizes:\n"), "{text}");
    assert!(
        text.contains(&format!("           count-files: {file_count}\n")),
        "{text}"
    );
    assert!(text.contains("Size Histogram:\n"), "{text}");
    assert!(
        text.contains("\nlargest-immutable-file: 70000    (70.00 kB, 68.36 kiB)\n"),
        "{text}"
    );

    let healthy = ok(lafs(&node, &["deep-check", "tahoe:tree"]));
    assert!(
        healthy.ends_with(&format!(
            "done: {nodes} objects checked, {nodes} healthy, 0 unhealthy\n"
        )),
        "{healthy}"
    );

    // Four of the ten servers lose their share of every file and directory.
    let storage_indexes: BTreeSet<String> = ok(lafs(&node, &["manifest", "--storage-index", "tahoe:tree"]))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(storage_indexes.len(), nodes - literal);
    let before = share_dirs(&node);
    for si in &storage_indexes {
        let dirs = &before[si];
        assert_eq!(dirs.len(), 10, "{si}: {dirs:?}");
        for dir in &dirs[..4] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
    let damaged = nodes - literal;
    let out = lafs(&node, &["deep-check", "tahoe:tree"]);
    assert_eq!(exit_code(&out), Some(2), "unhealthy objects make exit status 2");
    let report = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        report.ends_with(&format!(
            "done: {nodes} objects checked, {literal} healthy, {damaged} unhealthy\n"
        )),
        "{report}"
    );
    let problems = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        problems
            .lines()
            .filter(|l| l.contains("Not Healthy: 6 shares (enc 3-of-10)"))
            .count(),
        damaged,
        "one line per problem:\n{problems}"
    );

    let repaired = ok(lafs(&node, &["deep-check", "--repair", "tahoe:tree"]));
    assert!(
        repaired.ends_with(&format!(
            "done: {nodes} objects checked\n pre-repair: {literal} healthy, {damaged} unhealthy\n \
             {damaged} repairs attempted, {damaged} successful, 0 failed\n post-repair: {nodes} healthy, 0 unhealthy\n"
        )),
        "{repaired}"
    );
    let after = share_dirs(&node);
    for si in &storage_indexes {
        assert_eq!(after[si].len(), 10, "{si} has all ten shares again");
    }
    let verified = ok(lafs(
        &node,
        &["deep-check", "--verify", "--add-lease", "-v", "tahoe:tree"],
    ));
    assert!(verified.contains("d0/inner/g4: Healthy\n"), "{verified}");
    assert!(verified.contains("top-small: Healthy (LIT)\n"), "{verified}");
    assert!(
        verified.ends_with(&format!("{nodes} healthy, 0 unhealthy\n")),
        "{verified}"
    );

    // ls -R: each directory under its path.
    let listing = ok(lafs(&node, &["ls", "-R", "tahoe:tree"]));
    assert!(
        listing.starts_with("tahoe:tree:\nd0\nd1\nd2\nd3\nd4\ntop-a\ntop-b\ntop-small\n\ntahoe:tree/d0:\n"),
        "{listing}"
    );
    assert!(
        listing.contains("\ntahoe:tree/d0/inner:\ng0\ng1\ng2\ng3\ng4\n"),
        "{listing}"
    );
    assert_eq!(listing.lines().filter(|l| l.ends_with(':')).count(), dir_count);

    // cp -r back to the disk gives the same files; grid to grid links the same caps.
    let back = tmp.path().join("back");
    ok(lafs(&node, &["cp", "-r", "tahoe:tree", back.to_str().unwrap()]));
    for relative in files.keys() {
        assert!(
            std::fs::read(back.join("tree").join(relative)).unwrap() == std::fs::read(local.join(relative)).unwrap(),
            "{relative}"
        );
    }
    ok(lafs(&node, &["cp", "-r", "tahoe:tree", "tahoe:copy"]));
    let copied = ok(lafs(&node, &["manifest", "tahoe:copy/tree"]));
    let file_caps = |m: &str| -> BTreeSet<String> {
        m.lines()
            .map(|l| l.split_once(' ').unwrap())
            .filter(|(cap, _)| !cap.starts_with("URI:DIR2"))
            .map(|(cap, path)| format!("{cap} {path}"))
            .collect()
    };
    assert_eq!(file_caps(&copied), file_caps(&manifest));

    // ln and mkdir without a path.
    ok(lafs(&node, &["ln", "tahoe:tree/top-a", "tahoe:linked"]));
    assert_eq!(
        lafs(&node, &["get", "tahoe:linked"]).stdout,
        std::fs::read(local.join("top-a")).unwrap()
    );
    let err = fails(lafs(&node, &["ln", "tahoe:tree/top-a", "tahoe:tree/d1"]));
    assert!(err.contains("is a directory"), "{err}");
    let sdmf = ok(lafs(&node, &["mkdir"]));
    assert!(sdmf.starts_with("URI:DIR2:") && sdmf.lines().count() == 1, "{sdmf}");
    let mdmf = ok(lafs(&node, &["mkdir", "--format=MDMF"]));
    assert!(mdmf.starts_with("URI:DIR2-MDMF:"), "{mdmf}");
    ok(lafs(&node, &["ln", put_cap.trim(), &format!("{}/f", mdmf.trim())]));
    assert_eq!(ok(lafs(&node, &["ls", mdmf.trim()])), "f\n");
}

#[test]
fn backup_uploads_only_what_changed_and_keeps_every_snapshot_readable() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    ok(lafs(&node, &["init"]));
    ok(lafs(&node, &["alias", "create", "tahoe"]));
    let local = tmp.path().join("home");
    for d in 0..3 {
        for f in 0..10 {
            let path = local.join(format!("d{d}/f{f}"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, pseudo_random(100 + d * 1000 + f * 37, (d * 10 + f) as u64)).unwrap();
        }
    }
    std::fs::write(local.join("d0/scratch.tmp"), b"left out").unwrap();
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "--exclude", "*.tmp"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[local.to_str().unwrap(), "tahoe:backups"]);
        ok(lafs(&node, &args))
    };
    let first = backup(&[]);
    assert!(
        first.starts_with(
            " 30 files uploaded (0 reused), 0 files skipped, 4 directories created (0 reused), 0 directories skipped\n"
        ),
        "{first}"
    );
    let before = tmp.path().join("before");
    ok(lafs(
        &node,
        &["cp", "-r", "tahoe:backups/Latest", before.to_str().unwrap()],
    ));
    let before = before.join("Latest");

    for f in [3, 7] {
        std::fs::write(local.join(format!("d1/f{f}")), format!("changed {f}")).unwrap();
    }
    let second = backup(&[]);
    assert!(
        second.starts_with(
            " 2 files uploaded (28 reused), 0 files skipped, 2 directories created (2 reused), 0 directories skipped\n"
        ),
        "{second}"
    );
    let archives = ok(lafs(&node, &["ls", "tahoe:backups/Archives"]));
    let snapshots: Vec<&str> = archives.lines().collect();
    assert_eq!(snapshots.len(), 2, "{archives}");
    assert!(snapshots[0].ends_with('Z'), "Tahoe's names: {archives}");

    // Both snapshots read back: the first as it was, Latest as it is now.
    let first_back = tmp.path().join("first");
    ok(lafs(
        &node,
        &[
            "cp",
            "-r",
            &format!("tahoe:backups/Archives/{}", snapshots[0]),
            first_back.to_str().unwrap(),
        ],
    ));
    let first_back = first_back.join(snapshots[0]);
    let latest_back = tmp.path().join("latest");
    ok(lafs(
        &node,
        &["cp", "-r", "tahoe:backups/Latest", latest_back.to_str().unwrap()],
    ));
    let latest_back = latest_back.join("Latest");
    for d in 0..3 {
        for f in 0..10 {
            let relative = format!("d{d}/f{f}");
            assert!(
                std::fs::read(first_back.join(&relative)).unwrap() == std::fs::read(before.join(&relative)).unwrap(),
                "{relative}"
            );
            assert!(
                std::fs::read(latest_back.join(&relative)).unwrap() == std::fs::read(local.join(&relative)).unwrap(),
                "{relative}"
            );
        }
    }
    assert!(!latest_back.join("d0/scratch.tmp").exists(), "--exclude left it out");
    assert_eq!(
        std::fs::read(first_back.join("d1/f3")).unwrap().len(),
        1000 + 100 + 3 * 37
    );
    let listing = ok(lafs(&node, &["ls", "-l", "tahoe:backups/Latest/d1"]));
    assert!(
        listing.lines().all(|l| l.starts_with("-r-- ")),
        "immutable files in an immutable directory: {listing}"
    );

    // The grid loses every share of one unchanged file. A run trusts the database for a month:
    // once the entries are two months old, the run checks them, finds the file gone and
    // uploads it again; the others it finds healthy and reuses.
    let listing = ok(lafs(&node, &["ls", "--uri", "tahoe:backups/Latest/d2"]));
    let lost_cap = listing
        .lines()
        .find_map(|l| l.strip_prefix("f5 "))
        .map(str::trim)
        .expect("f5 listed with its cap")
        .to_string();
    let lost_si = lafs_gateway::grid::uri::Cap::parse(&lost_cap)
        .unwrap()
        .storage_index()
        .unwrap()
        .to_string();
    let lost = share_dirs(&node).remove(&lost_si).expect("the file's shares");
    assert_eq!(lost.len(), 10, "{lost:?}");
    for dir in &lost {
        std::fs::remove_dir_all(dir).unwrap();
    }
    let trusted = backup(&[]);
    assert!(
        trusted.starts_with(" 0 files uploaded (30 reused)"),
        "checked only when due: {trusted}"
    );
    let database = rusqlite::Connection::open(node.join("private/backupdb.sqlite")).unwrap();
    let sixty_one_days = 61.0 * 86400.0;
    database
        .execute("UPDATE files SET checked = checked - ?1", [sixty_one_days])
        .unwrap();
    database
        .execute("UPDATE directories SET checked = checked - ?1", [sixty_one_days])
        .unwrap();
    drop(database);
    let checked = backup(&[]);
    assert!(
        checked.starts_with(" 1 files uploaded (29 reused)"),
        "the lost file, and only it, uploaded again: {checked}"
    );
    assert_eq!(
        share_dirs(&node).get(&lost_si).map(Vec::len),
        Some(10),
        "its shares are back"
    );
    let back = lafs(&node, &["get", "tahoe:backups/Latest/d2/f5"]);
    assert_eq!(back.stdout, std::fs::read(local.join("d2/f5")).unwrap());
}
