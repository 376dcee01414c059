//! The node-wide memory budget under real SFTP and FTP clients: transfers wait for it instead of growing, and every byte comes back when the sessions end.

use std::time::Duration;

use crate::common::gateway::Gateway;

/// paramiko and ftplib sessions at once, each putting files of several sizes (buffered in
/// memory, streamed, and both through the spool) and reading them back.
const CLIENTS: &str = r#"
import ftplib, hashlib, io, os, paramiko, sys, threading
errors = []
def sftp_client(i):
    try:
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
                  key_filename=os.environ["KEY"], look_for_keys=False, allow_agent=False, timeout=120)
        s = c.open_sftp()
        for n in (70000, 1 << 20, 3 << 20):
            data = os.urandom(n)
            with s.open(f"s{i}-{n}", "wb") as f:
                f.set_pipelined(True)
                f.write(data)
            with s.open(f"s{i}-{n}", "rb") as f:
                f.prefetch()
                if hashlib.sha256(f.read()).digest() != hashlib.sha256(data).digest():
                    errors.append(f"sftp {i} {n}: content differs")
        c.close()
    except Exception as e:
        errors.append(f"sftp {i}: {e!r}")
def ftp_client(i):
    try:
        f = ftplib.FTP()
        f.connect("127.0.0.1", int(os.environ["FTP_PORT"]), timeout=120)
        f.login("alice", os.environ["PASSWORD"])
        for n in (70000, 3 << 20):
            data = os.urandom(n)
            f.storbinary(f"STOR f{i}-{n}", io.BytesIO(data))
            out = io.BytesIO()
            f.retrbinary(f"RETR f{i}-{n}", out.write)
            if out.getvalue() != data:
                errors.append(f"ftp {i} {n}: content differs")
        f.quit()
    except Exception as e:
        errors.append(f"ftp {i}: {e!r}")
threads = [threading.Thread(target=sftp_client, args=(i,)) for i in range(6)]
threads += [threading.Thread(target=ftp_client, args=(i,)) for i in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print("\n".join(errors))
sys.exit(1 if errors else 0)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_beyond_the_memory_budget_wait_and_every_byte_comes_back_after_the_sessions() {
    // Room for about two segments being encoded at once, for nine clients.
    let budget_bytes = 8 << 20;
    let gateway = Gateway::start_with_memory_budget(budget_bytes).await;
    let budget = gateway.grid.grid.memory_budget().clone();
    // First the whole budget is taken, as by other transfers: nothing may be stored meanwhile.
    let everything = budget.acquire(budget_bytes).await;
    let clients = tokio::spawn({
        let script = CLIENTS.to_string();
        let gateway_port = (gateway.port, gateway.ftp_port);
        let work = gateway.work.path().to_path_buf();
        let key = gateway.key();
        async move {
            let mut cmd = tokio::process::Command::new(crate::common::python::interpreter().await);
            cmd.arg("-c")
                .arg(script)
                .env("PORT", gateway_port.0.to_string())
                .env("FTP_PORT", gateway_port.1.to_string())
                .env("KEY", key)
                .env("PASSWORD", crate::common::gateway::PASSWORD);
            crate::common::gateway::run(cmd, &work, b"").await
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !clients.is_finished(),
        "the clients finished with no memory budget left"
    );
    let stored = gateway.alice().list(b"").await.unwrap();
    assert!(
        stored.is_empty(),
        "files were stored with no memory budget left: {:?}",
        stored.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    assert_eq!(
        budget.in_use(),
        budget_bytes,
        "a transfer took budget that was not there"
    );

    // Then it is given back: every transfer finishes, each file intact (the script checks).
    drop(everything);
    let run = tokio::time::timeout(Duration::from_secs(280), clients)
        .await
        .expect("the clients finish once the budget is back")
        .unwrap();
    run.ok();
    assert_eq!(gateway.alice().list(b"").await.unwrap().len(), 6 * 3 + 3 * 2);
    assert!(budget.waits() > 0, "no transfer ever waited for the budget");

    // Once the sessions are over, nothing is held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while budget.in_use() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} bytes of the budget still held after every session ended",
            budget.in_use()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mutable-file PUTs through the web API, many at once (curl): each body waits for the node's
/// memory budget or goes to the spool instead of being held whole, so the node's peak memory does
/// not grow with the number of requests. Before the bodies were budgeted, this run (24 bodies of
/// 8 MiB, a 16 MiB budget) peaked at 868 MiB (1.3 GB in a release build, against 284 MiB after).
#[test]
fn many_mutable_puts_through_the_web_api_at_once_stay_within_the_budget() {
    use std::process::{Command, Stdio};

    let work = crate::common::scratch_dir();
    let node = work.path().join("node");
    let init = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .args(["--node-dir", node.to_str().unwrap(), "init"])
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap();
    assert!(init.status.success());
    let config = std::fs::read_to_string(node.join("lafs.toml")).unwrap();
    let budgeted: String = config
        .lines()
        .map(|line| {
            if line.starts_with("memory_budget_mib") {
                "memory_budget_mib = 16"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(budgeted.contains("memory_budget_mib = 16"), "{config}");
    std::fs::write(node.join("lafs.toml"), budgeted).unwrap();
    let log = std::fs::File::create(work.path().join("node.log")).unwrap();
    let mut child = crate::common::spawn_lafs_run(&node, log);
    let node_url = node.join("node.url");
    crate::common::wait_for("node.url", Duration::from_secs(60), || node_url.exists());
    let url = std::fs::read_to_string(&node_url).unwrap().trim().to_string();

    let body = work.path().join("body.bin");
    let data = crate::common::pseudo_random(8 << 20, 11);
    std::fs::write(&body, &data).unwrap();
    let put = |target: &str| {
        Command::new("curl")
            .args(["-sS", "--fail", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg(format!("{url}{target}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl runs")
    };
    let created: Vec<_> = (0..24).map(|_| put("uri?format=MDMF")).collect();
    let caps: Vec<String> = created
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    assert!(caps.iter().all(|cap| cap.starts_with("URI:MDMF:")), "{caps:?}");
    // And the same bodies over the files just made, all at once again.
    let replaced: Vec<_> = caps.iter().map(|cap| put(&format!("uri/{cap}"))).collect();
    for c in replaced {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for cap in [&caps[0], &caps[23]] {
        let got = Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("{url}uri/{cap}"))
            .output()
            .unwrap();
        assert!(got.status.success() && got.stdout == data, "{cap} does not read back");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(peak_kib < 600 << 10, "the node peaked at {} MiB", peak_kib >> 10);
}
