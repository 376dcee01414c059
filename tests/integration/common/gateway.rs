//! A running node (`node::serve`, as `lafs run` serves it) on loopback ports over a test grid, with
//! accounts and client keys, and ways to run real clients at it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lafs_gateway::frontends::accounts::hash_password;
use lafs_gateway::frontends::limits::SessionLimits;
use lafs_gateway::grid::uri::Cap;
use lafs_gateway::node::{self, Listeners, Node};
use lafs_gateway::vfs::Vfs;
use tokio::process::Command;

use super::{TestGrid, scratch_dir};

/// The password of `alice` and `reader`.
pub const PASSWORD: &str = "secret";

/// What a client process did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "client failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub struct Gateway {
    pub grid: TestGrid,
    pub port: u16,
    /// The FTP server's port (same accounts; password logins).
    pub ftp_port: u16,
    /// Client-side scratch space: keys, files to upload, downloads.
    pub work: tempfile::TempDir,
    pub accounts_path: PathBuf,
    /// alice's writable root (password `secret` and the key `alice_key`).
    pub alice_root: Cap,
    /// `reader`: a read-only account (password `secret`) on a directory holding `hello.txt`.
    pub reader_root: Cap,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), node::ServeError>>>,
}

impl Gateway {
    pub async fn start() -> Gateway {
        Self::start_with(false).await
    }

    /// With `ftps_required`, the FTP side has a self-signed certificate and refuses plain FTP.
    pub async fn start_with(ftps_required: bool) -> Gateway {
        Self::start_configured(ftps_required, SessionLimits::default(), None).await
    }

    /// With the SFTP side's session limits and timeouts set to `limits`.
    pub async fn start_with_limits(limits: SessionLimits) -> Gateway {
        Self::start_configured(false, limits, None).await
    }

    /// A gateway whose grid has a memory budget of `bytes` for file data in flight.
    pub async fn start_with_memory_budget(bytes: u64) -> Gateway {
        Self::start_configured(false, SessionLimits::default(), Some(bytes)).await
    }

    /// A node directory made by `lafs init` with the test's settings in its lafs.toml, served
    /// by `node::serve` (as `lafs run` serves it) on loopback ports.
    async fn start_configured(ftps_required: bool, limits: SessionLimits, memory_budget: Option<u64>) -> Gateway {
        let work = scratch_dir();
        let storage = scratch_dir();
        let run = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@test", "-f"])
            .arg(work.path().join("alice_key"))
            .status()
            .await
            .expect("ssh-keygen runs");
        assert!(run.success());
        let node_dir = work.path().join("node");
        node::init(&node_dir).unwrap();
        let accounts_path = work.path().join("accounts");
        let seconds = |d: Duration| {
            assert_eq!(d, Duration::from_secs(d.as_secs()), "lafs.toml takes whole seconds");
            d.as_secs()
        };
        // Without FTPS required the FTP side offers no TLS, so clients stay on plain FTP.
        let ftps = if ftps_required {
            "ftps_required = true"
        } else {
            "ftps_certificate = \"\"\nftps_key = \"\""
        };
        let config = format!(
            "[grid]\nneeded = 3\nhappy = 7\ntotal = 10\nmax_segment_size = 1048576\nmemory_budget_mib = {budget}\n\
             [storage]\npath = {storage:?}\nservers = 10\n\
             [frontends]\naccounts_file = {accounts:?}\nspool_dir = {spool:?}\nftp_passive_ports = \"40000-60000\"\n{ftps}\n\
             max_sessions = {max}\nmax_sessions_per_address = {per_address}\nlogin_grace_secs = {grace}\n\
             sftp_idle_timeout_secs = {idle}\n",
            budget = memory_budget.map_or(64, |bytes| bytes >> 20),
            storage = storage.path(),
            accounts = accounts_path,
            spool = work.path().join("spool"),
            max = limits.max_sessions,
            per_address = limits.max_sessions_per_address,
            grace = seconds(limits.login_grace),
            idle = seconds(limits.idle_timeout),
        );
        std::fs::write(node_dir.join(node::CONFIG_FILE), config).unwrap();
        let node = Node::open(&node_dir).unwrap();
        assert_eq!(node.config.session_limits, limits);
        if let Some(bytes) = memory_budget {
            assert_eq!(node.config.memory_budget, bytes, "the budget is whole MiB");
        }
        let alice_root = node.grid.create_directory().await.unwrap();
        let shared = node.grid.create_directory().await.unwrap();
        let shared_vfs = Vfs::new(node.grid.clone(), shared.clone());
        let hello = b"hello, read-only world\n".to_vec();
        shared_vfs
            .write_file(
                b"hello.txt",
                std::io::Cursor::new(hello.clone()),
                hello.len() as u64,
                false,
                None,
            )
            .await
            .unwrap();
        shared_vfs.mkdir(b"sub").await.unwrap();
        let reader_root = shared.read_only();
        let hash = hash_password(PASSWORD).unwrap();
        let public = std::fs::read_to_string(work.path().join("alice_key.pub")).unwrap();
        std::fs::write(
            &accounts_path,
            format!(
                "# test accounts\nalice {} {alice_root}\nalice {hash} {alice_root}\nreader {hash} {reader_root}\n",
                public.trim()
            ),
        )
        .unwrap();
        let listeners = Listeners::loopback(&node.config).await.unwrap();
        let port = listeners.sftp.as_ref().unwrap().local_addr().unwrap().port();
        let ftp_port = listeners.ftp.as_ref().unwrap().local_addr().unwrap().port();
        let grid = TestGrid {
            dir: storage,
            grid: node.grid.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node::serve(node, listeners, async move {
            let _ = stopped.await;
        }));
        Gateway {
            grid,
            port,
            ftp_port,
            work,
            accounts_path,
            alice_root,
            reader_root,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn key(&self) -> PathBuf {
        self.path("alice_key")
    }

    /// alice's files as the grid has them.
    pub fn alice(&self) -> Vfs {
        Vfs::new(self.grid.grid.clone(), self.alice_root.clone())
    }

    pub fn ssh_options() -> Vec<&'static str> {
        vec![
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]
    }

    /// OpenSSH `sftp -b -` as alice with her key, running `batch` from `cwd`.
    pub async fn sftp_key(&self, batch: &str, cwd: &Path) -> Run {
        self.sftp_key_with(&[], batch, cwd).await
    }

    /// The same with extra `sftp` options.
    pub async fn sftp_key_with(&self, options: &[&str], batch: &str, cwd: &Path) -> Run {
        let mut cmd = Command::new("sftp");
        cmd.args(options)
            .args(Self::ssh_options())
            .arg("-i")
            .arg(self.key())
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-P",
                &self.port.to_string(),
                "-b",
                "-",
                "alice@127.0.0.1",
            ]);
        run(cmd, cwd, batch.as_bytes()).await
    }

    /// OpenSSH `sftp -b -` with a password (through sshpass).
    pub async fn sftp_password(&self, user: &str, password: &str, batch: &str, cwd: &Path) -> Run {
        let mut cmd = Command::new("sshpass");
        cmd.args(["-p", password, "sftp"]).args(Self::ssh_options()).args([
            "-o",
            "BatchMode=no",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-P",
            &self.port.to_string(),
            "-b",
            "-",
            &format!("{user}@127.0.0.1"),
        ]);
        run(cmd, cwd, batch.as_bytes()).await
    }

    /// curl with `args`, `URL` in them replaced by `sftp://127.0.0.1:PORT`.
    pub async fn curl(&self, args: &[&str], cwd: &Path) -> Run {
        let base = format!("sftp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--insecure"]);
        for arg in args {
            cmd.arg(arg.replace("URL", &base));
        }
        run(cmd, cwd, b"").await
    }

    /// A Python script with PORT, KEY, WORK and PASSWORD in its environment.
    pub async fn python(&self, script: &str) -> Run {
        let mut cmd = Command::new(super::python::interpreter().await);
        cmd.arg("-c")
            .arg(script)
            .env("PORT", self.port.to_string())
            .env("FTP_PORT", self.ftp_port.to_string())
            .env("KEY", self.key())
            .env("WORK", self.work.path())
            .env("PASSWORD", PASSWORD);
        run(cmd, self.work.path(), b"").await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub async fn run(mut cmd: Command, cwd: &Path, stdin: &[u8]) -> Run {
    use tokio::io::AsyncWriteExt;
    cmd.current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .expect("client program runs (see .ci/run for what it installs)");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await.unwrap();
    }
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("client finished within 5 minutes")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
