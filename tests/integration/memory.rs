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
