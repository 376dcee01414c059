//! The SFTP frontend driven by real clients: OpenSSH sftp, curl, paramiko and the Rust russh/russh-sftp client.

use std::time::Duration;

use lafs_gateway::vfs::Kind;

use crate::common::gateway::{Gateway, PASSWORD};
use crate::common::pseudo_random;

fn write(gw: &Gateway, name: &str, data: &[u8]) {
    std::fs::write(gw.path(name), data).unwrap();
}

fn read(gw: &Gateway, name: &str) -> Vec<u8> {
    std::fs::read(gw.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_sftp_put_get_list_rename_remove_and_sizes() {
    let gw = Gateway::start().await;
    let big = pseudo_random(100 << 20, 1);
    for (name, data) in [
        ("empty", Vec::new()),
        ("f55", pseudo_random(55, 2)),
        ("f56", pseudo_random(56, 3)),
        ("big", big.clone()),
        ("Grüße 日本.txt", "non-ASCII contents ✓\n".as_bytes().to_vec()),
        ("old.txt", b"an old file\n".to_vec()),
    ] {
        write(&gw, name, &data);
    }
    let old = gw.path("old.txt");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2020-01-02 03:04:05 UTC"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(touched.success());
    std::fs::create_dir(gw.path("out")).unwrap();
    let batch = r#"mkdir docs
put empty docs/empty
put f55 docs/f55
put f56 docs/f56
put big docs/big
put -p old.txt docs/old.txt
put "Grüße 日本.txt" "docs/Grüße 日本.txt"
ls -l docs
get docs/empty out/empty
get docs/f55 out/f55
get docs/f56 out/f56
get docs/big out/big
get "docs/Grüße 日本.txt" out/uni
rename -l docs/f55 docs/copy55
-rename -l docs/f56 docs/copy55
rename docs/f56 docs/copy55
get docs/copy55 out/copy55
rm docs/empty
mkdir docs/sub
-mkdir docs/sub
rmdir docs/sub
-rmdir docs
-rm docs/nothing-here
ls -l docs
"#;
    let run = gw.sftp_key(batch, gw.work.path()).await;
    run.ok();
    for (local, fetched) in [
        ("empty", "out/empty"),
        ("f55", "out/f55"),
        ("f56", "out/f56"),
        ("big", "out/big"),
    ] {
        assert!(read(&gw, local) == read(&gw, fetched), "{local} came back different");
    }
    assert_eq!(read(&gw, "out/uni"), read(&gw, "Grüße 日本.txt"));
    // posix-rename replaced copy55 (first f55's bytes) with f56's.
    assert_eq!(read(&gw, "out/copy55"), read(&gw, "f56"));
    let listing = run.stdout.split("sftp> ls -l docs").nth(1).unwrap();
    assert!(listing.contains(" 104857600 ") && listing.contains(" big"), "{listing}");
    assert!(listing.contains("Grüße 日本.txt"), "{listing}");
    let old_line = listing.lines().find(|l| l.ends_with(" old.txt")).unwrap();
    assert!(old_line.contains("Jan  2  2020"), "put -p lost the mtime: {old_line}");
    assert!(old_line.starts_with("-rw-r--r--"), "{old_line}");
    // The failures that were expected, each with its reason.
    assert!(
        run.stderr.contains("docs/copy55"),
        "legacy rename onto a file must fail: {}",
        run.stderr
    );
    assert!(run.stderr.contains("docs/sub"), "{}", run.stderr);
    assert!(run.stderr.contains("docs/nothing-here"), "{}", run.stderr);
    // And the grid agrees.
    let entries = gw.alice().list(b"docs").await.unwrap();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for name in ["big", "copy55", "old.txt", "Grüße 日本.txt"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let big_stat = gw.alice().stat(b"docs/big").await.unwrap();
    assert_eq!((big_stat.kind, big_stat.size), (Kind::File, big.len() as u64));
    let old_stat = gw.alice().stat(b"docs/old.txt").await.unwrap();
    assert_eq!(old_stat.mtime, Some(1_577_934_245.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_reput_and_reget_resume_partial_transfers() {
    let gw = Gateway::start().await;
    let full = pseudo_random(3 << 20, 7);
    write(&gw, "full.bin", &full);
    write(&gw, "partial.bin", &full[..(1 << 20) + 1000]);
    gw.sftp_key(
        "put partial.bin r.bin\nreput full.bin r.bin\nget r.bin whole.bin\n",
        gw.work.path(),
    )
    .await
    .ok();
    assert!(read(&gw, "whole.bin") == full, "reput did not complete the file");
    write(&gw, "local-part.bin", &full[..12345]);
    gw.sftp_key("reget r.bin local-part.bin\n", gw.work.path()).await.ok();
    assert!(read(&gw, "local-part.bin") == full, "reget did not complete the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_account_is_refused_every_write_with_permission_denied() {
    let gw = Gateway::start().await;
    write(&gw, "up.txt", b"nope");
    let batch = "get hello.txt got.txt\nls -l\n-put up.txt new.txt\n-put up.txt hello.txt\n-mkdir d\n-rmdir sub\n\
                 -rm hello.txt\n-rename hello.txt h2.txt\n-chmod 600 hello.txt\n";
    let run = gw.sftp_password("reader", PASSWORD, batch, gw.work.path()).await;
    run.ok();
    assert_eq!(read(&gw, "got.txt"), b"hello, read-only world\n");
    let refusals = run.stderr.matches("Permission denied").count();
    assert_eq!(
        refusals, 7,
        "every write must be refused as PERMISSION_DENIED:\n{}",
        run.stderr
    );
    let listing = run.stdout.split("sftp> ls -l").nth(1).unwrap();
    assert!(
        listing.contains("-r--r--r--") && listing.contains("dr-xr-xr-x"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_sftp_upload_download_list_and_quote_commands() {
    let gw = Gateway::start().await;
    let data = pseudo_random(300_000, 11);
    write(&gw, "c.bin", &data);
    let user = format!("alice:{PASSWORD}");
    let cwd = gw.work.path();
    gw.curl(&["-u", &user, "-T", "c.bin", "URL/c.bin"], cwd).await.ok();
    gw.curl(&["-u", &user, "-o", "c.out", "URL/c.bin"], cwd).await.ok();
    assert!(read(&gw, "c.out") == data);
    let key = gw.key();
    let key_pub = gw.path("alice_key.pub");
    let listing = gw
        .curl(
            &[
                "-u",
                "alice:",
                "--key",
                key.to_str().unwrap(),
                "--pubkey",
                key_pub.to_str().unwrap(),
                "URL/",
            ],
            cwd,
        )
        .await;
    listing.ok();
    assert!(
        listing.stdout.contains(" 300000 ") && listing.stdout.contains("c.bin"),
        "{}",
        listing.stdout
    );
    gw.curl(
        &[
            "-u",
            &user,
            "-Q",
            "rename /c.bin /d.bin",
            "-Q",
            "mkdir /dir",
            "-Q",
            "rmdir /dir",
            "-o",
            "/dev/null",
            "URL/",
        ],
        cwd,
    )
    .await
    .ok();
    let names: Vec<String> = gw
        .alice()
        .list(b"")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["d.bin".to_string()]);
    gw.curl(&["-u", &user, "-Q", "rm /d.bin", "-o", "/dev/null", "URL/"], cwd)
        .await
        .ok();
    assert!(gw.alice().list(b"").await.unwrap().is_empty());
    let wrong = gw.curl(&["-u", "alice:wrong", "-o", "x", "URL/d.bin"], cwd).await;
    assert_ne!(wrong.code, 0, "a wrong password must be refused");
    let missing = gw.curl(&["-u", &user, "-o", "x", "URL/missing"], cwd).await;
    assert_eq!(missing.code, 78, "curl's 'remote file not found': {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shell_and_exec_are_refused_and_sftp_closes_cleanly_without_ssh_config() {
    let gw = Gateway::start().await;
    let port = gw.port.to_string();
    let key = gw.key();
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-i"])
    .arg(&key)
    .args(["-p", &port, "alice@127.0.0.1", "ls", "/"]);
    let exec = crate::common::gateway::run(ssh, gw.work.path(), b"").await;
    assert_eq!(exec.code, 1, "{exec:?}");
    assert!(exec.stderr.contains("only the SFTP protocol"), "{exec:?}");
    // No ssh_config (so no SendEnv), a pty request and env sent anyway: the session must end at EOF.
    let mut sftp = tokio::process::Command::new("sftp");
    sftp.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args([
        "-o",
        "LogLevel=ERROR",
        "-o",
        "SendEnv=LANG",
        "-o",
        "RequestTTY=yes",
        "-i",
    ])
    .arg(&key)
    .args(["-P", &port, "-b", "-", "alice@127.0.0.1"])
    .env("LANG", "C.UTF-8");
    let started = std::time::Instant::now();
    let run = crate::common::gateway::run(sftp, gw.work.path(), b"mkdir x\nls\n").await;
    run.ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "sftp did not exit after EOF"
    );
    assert!(run.stdout.contains('x'));
}
