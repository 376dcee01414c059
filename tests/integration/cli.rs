//! The `lafs` binary, run as a user would: init, put, get, check, dump-share, and its errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine;

use crate::common::{pseudo_random, scratch_dir};

fn lafs(node: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args(args)
        .env_remove("LAFS_NODE_DIR")
        .output()
        .expect("run lafs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lafs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn put_get_check_and_dump_share() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let file = tmp.path().join("input.bin");
    let data = pseudo_random(3 * 1024 * 1024 + 5, 42);
    std::fs::write(&file, &data).unwrap();

    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert!(cap.starts_with("URI:CHK:") && cap.ends_with(":3:10:3145733"), "{cap}");
    let again = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert_eq!(again, cap, "convergent: the same file gives the same cap");
    let random = stdout(&lafs(&node, &["put", "--random-key", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert_ne!(random, cap);

    let out = tmp.path().join("out.bin");
    stdout(&lafs(&node, &["get", &cap, out.to_str().unwrap()]));
    assert!(std::fs::read(&out).unwrap() == data);
    let piped = lafs(&node, &["get", &random]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(piped.stdout == data, "piped download differs");

    let report = stdout(&lafs(&node, &["check", &cap]));
    assert_eq!(report.lines().filter(|l| l.ends_with(" good")).count(), 10, "{report}");
    assert!(report.contains("10 of 10 shares good (3 needed): healthy"), "{report}");

    // Corrupt one share: check --verify names it; get still works.
    let shares: Vec<_> = walk(&node.join("storage"))
        .into_iter()
        .filter(|p| {
            p.parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .ends_with("shares")
                && p.file_name().unwrap() != "node-id"
        })
        .collect();
    assert_eq!(shares.len(), 10 + 10, "two files, ten shares each");
    let victim = shares
        .iter()
        .find(|p| p.to_str().unwrap().contains(&si_of(&node, &cap)))
        .unwrap();
    let mut raw = std::fs::read(victim).unwrap();
    raw[12 + 0x24 + 1000] ^= 0x40;
    std::fs::write(victim, &raw).unwrap();
    let verify = stdout(&lafs(&node, &["check", "--verify", &cap]));
    assert!(verify.contains("BAD: block 0 is corrupt"), "{verify}");
    assert!(
        verify.contains("9 of 10 shares good (3 needed), every block verified: not healthy but recoverable"),
        "{verify}"
    );
    stdout(&lafs(&node, &["get", &cap, out.to_str().unwrap()]));
    assert!(std::fs::read(&out).unwrap() == data);

    let dump = stdout(&lafs(&node, &["debug", "dump-share", victim.to_str().unwrap()]));
    assert!(dump.contains("immutable share container v2"), "{dump}");
    assert!(dump.contains("codec crs params 1048578-3-10"), "{dump}");
    assert!(
        dump.contains("size 3145733 segment size 1048578 segments 3 needed 3 total 10"),
        "{dump}"
    );
}

fn si_of(node: &Path, cap: &str) -> String {
    let parsed = lafs_gateway::grid::uri::Cap::parse(cap).unwrap();
    let _ = node;
    parsed.storage_index().unwrap().to_string()
}

#[test]
fn small_files_live_in_the_cap() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    for (len, prefix) in [(0usize, "URI:LIT:"), (55, "URI:LIT:"), (56, "URI:CHK:")] {
        let file = tmp.path().join(format!("f{len}"));
        let data = pseudo_random(len, len as u64);
        std::fs::write(&file, &data).unwrap();
        let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
            .trim()
            .to_string();
        assert!(cap.starts_with(prefix), "{len}: {cap}");
        assert_eq!(lafs(&node, &["get", &cap]).stdout, data, "{len} bytes");
    }
}

#[test]
fn a_tahoe_convergence_secret_gives_tahoes_caps() {
    // The first official vector: secret "aaaaaaaaaaaaaaaa", 56 x "a", 1-of-1, 128 KiB segments.
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let secret = base64::engine::general_purpose::STANDARD
        .decode("YWFhYWFhYWFhYWFhYWFhYQ==")
        .unwrap();
    std::fs::write(
        node.join("private/convergence"),
        lafs_gateway::grid::base32::encode(&secret) + "\n",
    )
    .unwrap();
    std::fs::write(
        node.join("lafs.toml"),
        "[grid]\nneeded = 1\nhappy = 1\ntotal = 1\nmax_segment_size = 131072\n",
    )
    .unwrap();
    let file = tmp.path().join("a56");
    std::fs::write(&file, [b'a'; 56]).unwrap();
    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert_eq!(
        cap,
        "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56"
    );
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failure_exit() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let secret_cap = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["get", "not-a-cap"], "no alias \"tahoe\""),
        (
            vec!["get", "URI:NEWKIND:xyz"],
            "unknown caps cannot be downloaded as files",
        ),
        (vec!["get", secret_cap], "bad cap: malformed capability"),
        (vec!["put", "/no/such/file"], "cannot open /no/such/file"),
        (
            vec![
                "check",
                "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:3:10:5000",
            ],
            "unrecoverable: 3 shares needed, 0 good found",
        ),
        (
            vec![
                "get",
                "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:3:10:5000",
            ],
            "not enough shares: 3 needed, 0 found",
        ),
        (
            vec!["debug", "dump-share", "/no/such/share"],
            "cannot read /no/such/share",
        ),
    ];
    for (args, expected) in cases {
        let out = lafs(&node, &args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("lafs: error:")).count(),
            1,
            "{args:?}: {err}"
        );
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            !err.contains("yzxcoagbetwet65ltjpbqyli3m"),
            "{args:?} leaked the cap key: {err}"
        );
    }
    // A config with a bad value names file, key and the allowed range.
    std::fs::write(node.join("lafs.toml"), "[grid]\nhappy = 12\n").unwrap();
    let file = tmp.path().join("x");
    std::fs::write(&file, vec![1u8; 100]).unwrap();
    let err = stderr(&lafs(&node, &["put", file.to_str().unwrap()]));
    assert!(
        err.contains("lafs.toml: key grid.happy = 12: allowed 1..=grid.total (1..=10)"),
        "{err}"
    );
    // No node at all.
    let err = stderr(&lafs(&tmp.path().join("nowhere"), &["put", file.to_str().unwrap()]));
    assert!(err.contains("no node at"), "{err}");
}

#[test]
fn run_creates_a_default_node_and_serves_until_interrupted() {
    let tmp = scratch_dir();
    let node = tmp.path().join("fresh");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .env("LAFS_NODE_DIR", &node)
        .args([
            "run",
            "--sftp-listen",
            "127.0.0.1:0",
            "--ftp-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A failing assertion must not leave the node running.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.to_string()).status();
        }
    }
    let _guard = KillOnDrop(child.id());
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("serving until") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    // Keep reading what the node logs: a pipe nobody drains fills up and stalls the node.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    assert!(seen.contains("10 local storage servers"), "{seen}");
    assert!(seen.contains("encoding 3-of-10 (happy 7)"), "{seen}");
    assert!(seen.contains("demo account (user demo, password demo)"), "{seen}");
    let port = seen
        .split("sftp listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the SFTP address is printed")
        .to_string();
    // The demo account works with a real client.
    let upload = tmp.path().join("demo.txt");
    std::fs::write(&upload, b"hello from the demo account\n").unwrap();
    let sftp = |user: &str, password: &str, batch: &str| {
        let mut child = Command::new("sshpass")
            .args([
                "-p",
                password,
                "sftp",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=no",
                "-o",
                "PubkeyAuthentication=no",
                "-P",
                &port,
            ])
            .args(["-b", "-", &format!("{user}@127.0.0.1")])
            .current_dir(tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let demo = sftp("demo", "demo", "put demo.txt\nget demo.txt back.txt\nls -l\n");
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    assert_eq!(
        std::fs::read(tmp.path().join("back.txt")).unwrap(),
        b"hello from the demo account\n"
    );
    // `lafs account add` while the node runs: the new login works at once.
    let mut add = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .env("LAFS_NODE_DIR", &node)
        .args(["account", "add", "bob", "--password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"bobs password\n").unwrap();
    assert!(add.wait().unwrap().success());
    let accounts = std::fs::read_to_string(node.join("private/accounts")).unwrap();
    assert!(!accounts.contains("bobs password") && accounts.contains("bob $argon2id$"));
    // The same demo login over FTP.
    let ftp_port = seen
        .split("ftp listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the FTP address is printed")
        .to_string();
    let ftp = Command::new("curl")
        .args([
            "-sS",
            "-u",
            "demo:demo",
            &format!("ftp://127.0.0.1:{ftp_port}/demo.txt"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        ftp.stdout,
        b"hello from the demo account\n",
        "{}",
        String::from_utf8_lossy(&ftp.stderr)
    );
    let bob = sftp("bob", "bobs password", "ls\n");
    assert!(bob.status.success(), "{}", String::from_utf8_lossy(&bob.stderr));
    assert!(!sftp("bob", "wrong", "ls\n").status.success());
    // While it runs, the CLI uses the same grid.
    let file = tmp.path().join("f");
    std::fs::write(&file, vec![7u8; 1000]).unwrap();
    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert_eq!(lafs(&node, &["get", &cap]).stdout, vec![7u8; 1000]);
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn directories_with_aliases_mkdir_put_ls_mv_rm_get() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let err = stderr(&lafs(&node, &["ls"]));
    assert!(err.contains("no alias \"tahoe\""), "{err}");
    assert_eq!(
        stdout(&lafs(&node, &["alias", "create", "tahoe"])).trim(),
        "alias tahoe created"
    );
    assert_eq!(
        stdout(&lafs(&node, &["alias", "list"])).trim(),
        "tahoe: DIR2",
        "caps stay hidden"
    );
    stdout(&lafs(&node, &["mkdir", "tahoe:docs"]));
    let err = stderr(&lafs(&node, &["mkdir", "docs"]));
    assert!(err.contains("docs: already exists"), "{err}");

    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"some notes, longer than a literal cap can hold: 0123456789").unwrap();
    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap(), "tahoe:docs/notes.txt"]))
        .trim()
        .to_string();
    assert!(cap.starts_with("URI:CHK:"), "{cap}");
    assert_eq!(stdout(&lafs(&node, &["ls", "tahoe:docs"])), "notes.txt\n");
    let long = stdout(&lafs(&node, &["ls", "-l", "docs"]));
    // Tahoe's `ls -l`: kind and caps held, size, a date (not epoch seconds), name.
    let fields: Vec<&str> = long.split_whitespace().collect();
    assert_eq!((fields[0], fields[1], fields[5]), ("-r--", "58", "notes.txt"), "{long}");
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(months.contains(&fields[2]) && fields[4].contains(':'), "a date: {long}");
    assert!(
        stdout(&lafs(&node, &["ls", "-l"])).starts_with("drwx - "),
        "directories show as d, writable, no size"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&lafs(&node, &["ls", "--json", "docs"]))).unwrap();
    let entry = &json[1]["children"]["notes.txt"];
    assert_eq!(
        (&json[0], &entry[0], &entry[1]["size"]),
        (&"dirnode".into(), &"filenode".into(), &58.into())
    );
    assert_eq!(entry[1]["ro_uri"], cap.as_str());
    assert!(
        entry[1]["metadata"]["tahoe"]["linkmotime"].as_f64().unwrap() > 1.7e9,
        "raw seconds in --json"
    );

    stdout(&lafs(&node, &["mv", "tahoe:docs/notes.txt", "tahoe:docs/renamed.txt"]));
    assert_eq!(
        lafs(&node, &["get", "tahoe:docs/renamed.txt"]).stdout,
        std::fs::read(&file).unwrap()
    );
    let err = stderr(&lafs(&node, &["rm", "tahoe:docs"]));
    assert!(err.contains("directory not empty"), "{err}");
    stdout(&lafs(&node, &["rm", "tahoe:docs/renamed.txt"]));
    stdout(&lafs(&node, &["rm", "tahoe:docs"]));
    assert_eq!(stdout(&lafs(&node, &["ls"])), "");
    let err = stderr(&lafs(&node, &["get", "tahoe:docs/renamed.txt"]));
    assert!(err.contains("no such file or directory"), "{err}");
}

#[test]
fn blocklisted_files_cannot_be_read_until_unlisted() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let file = tmp.path().join("f");
    std::fs::write(&file, pseudo_random(5000, 8)).unwrap();
    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    let si = si_of(&node, &cap);
    std::fs::write(
        node.join("access.blacklist"),
        format!("# blocked files\n{si} taken down by request\n"),
    )
    .unwrap();
    let out = lafs(&node, &["get", &cap]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("access to this file is blocked: taken down by request"),
        "{}",
        stderr(&out)
    );
    std::fs::write(node.join("access.blacklist"), "").unwrap();
    assert_eq!(lafs(&node, &["get", &cap]).stdout, std::fs::read(&file).unwrap());
}

/// The directories (one per server) that hold the shares of storage index `si`.
fn share_dirs_of(node: &Path, si: &str) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = walk(&node.join("storage"))
        .into_iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .filter(|dir| dir.file_name().is_some_and(|name| name == si))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[test]
fn check_repair_of_a_directory_fails_while_it_stays_unhealthy() {
    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    stdout(&lafs(&node, &["alias", "create", "tahoe"]));
    let cap = crate::common::alias_cap(&node, "tahoe");
    let share_dirs = share_dirs_of(&node, &si_of(&node, &cap));
    assert_eq!(share_dirs.len(), 10, "one share on each server: {share_dirs:?}");

    // Two servers lose their share: the repair puts it back and succeeds.
    for dir in &share_dirs[..2] {
        std::fs::remove_dir_all(dir).unwrap();
    }
    let repaired = stdout(&lafs(&node, &["check", "--repair", &cap]));
    assert!(
        repaired.contains("8 of 10 shares good (3 needed), version 1"),
        "{repaired}"
    );
    assert!(
        repaired.contains("10 of 10 shares good (3 needed), version 2: healthy"),
        "{repaired}"
    );

    // Seven servers lose their share and can take none (the directory the share would go in is
    // a file): 3 shares are still enough to read, but the repair cannot make the file healthy.
    for dir in &share_dirs[3..] {
        let prefix = dir.parent().unwrap();
        std::fs::remove_dir_all(prefix).unwrap();
        std::fs::write(prefix, b"not a directory").unwrap();
    }
    let out = lafs(&node, &["check", "--repair", &cap]);
    let report = String::from_utf8(out.stdout.clone()).unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "a repair that left it unhealthy exited 0:\n{report}"
    );
    let after = report
        .split_once("after repair:")
        .unwrap_or_else(|| panic!("no after-report:\n{report}\n{err}"))
        .1;
    assert!(
        after.contains("3 of 10 shares good (3 needed), version 3: not healthy"),
        "{report}"
    );
    assert!(err.contains("repair incomplete: 3 of 10 shares good"), "{err}");
}

#[test]
fn get_writes_through_a_link_and_into_a_pipe_and_refuses_a_directory() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let tmp = scratch_dir();
    let node = tmp.path().join("node");
    stdout(&lafs(&node, &["init"]));
    let data = pseudo_random(300_000, 7);
    let file = tmp.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    let cap = stdout(&lafs(&node, &["put", file.to_str().unwrap()]))
        .trim()
        .to_string();
    assert!(cap.starts_with("URI:CHK:"), "{cap}");

    // A symbolic link: the file it names gets the contents, and the link stays a link; a link
    // to nothing yet: the file it names is created, and the link stays.
    let real = tmp.path().join("real.bin");
    std::fs::write(&real, b"old contents").unwrap();
    for (link, named) in [("link.bin", real), ("dangling.bin", tmp.path().join("named.bin"))] {
        let link = tmp.path().join(link);
        std::os::unix::fs::symlink(&named, &link).unwrap();
        stdout(&lafs(&node, &["get", &cap, link.to_str().unwrap()]));
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{link:?} was replaced"
        );
        assert!(
            std::fs::read(&named).unwrap() == data,
            "{named:?} does not hold the download"
        );
    }

    // A named pipe: its reader gets the file, and the pipe stays a pipe (a rename would have put
    // a regular file in its place, as it would in place of /dev/null).
    let fifo = tmp.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success());
    // Opened for reading and writing, so that neither end waits for the other to open.
    let end = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    let len = data.len();
    std::thread::spawn(move || {
        let mut got = vec![0u8; len];
        let _ = sender.send((&end).read_exact(&mut got).map(|()| got));
    });
    stdout(&lafs(&node, &["get", &cap, fifo.to_str().unwrap()]));
    let got = received
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("nothing came through the pipe")
        .unwrap();
    assert!(got == data, "the pipe's reader got other bytes");
    assert!(
        fifo.symlink_metadata().unwrap().file_type().is_fifo(),
        "the pipe was replaced"
    );

    // A directory is refused, and nothing is left beside it.
    let refused = lafs(&node, &["get", &cap, tmp.path().to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("is a directory"), "{}", stderr(&refused));
    let partial = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lafs-partial")
        })
        .count();
    assert_eq!(partial, 0);
}
