//! A running SFTP gateway on a loopback port over a test grid, with accounts and client keys, and ways to run real clients at it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use lafs_gateway::frontends::accounts::{AccountsFile, hash_password};
use lafs_gateway::frontends::limits::SessionLimits;
use lafs_gateway::frontends::sftp::{self, SftpSettings};
use lafs_gateway::frontends::throttle::LoginThrottle;
use lafs_gateway::grid::uri::Cap;
use lafs_gateway::vfs::Vfs;
use tokio::process::Command;

use super::{TestGrid, params, scratch_dir};

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
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
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

    async fn start_configured(ftps_required: bool, limits: SessionLimits, memory_budget: Option<u64>) -> Gateway {
        let mut grid = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"gateway test convergence");
        if let Some(bytes) = memory_budget {
            grid.grid = grid.grid.clone().with_memory_budget(bytes);
        }
        let work = scratch_dir();
        let run = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@test", "-f"])
            .arg(work.path().join("alice_key"))
            .status()
            .await
            .expect("ssh-keygen runs");
        assert!(run.success());
        let alice_root = grid.grid.create_directory().await.unwrap();
        let shared = grid.grid.create_directory().await.unwrap();
        let shared_vfs = Vfs::new(grid.grid.clone(), shared.clone());
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
        let accounts_path = work.path().join("accounts");
        std::fs::write(
            &accounts_path,
            format!(
                "# test accounts\nalice {} {alice_root}\nalice {hash} {alice_root}\nreader {hash} {reader_root}\n",
                public.trim()
            ),
        )
        .unwrap();
        let host_key = work.path().join("host_key");
        lafs_gateway::node::write_host_key(&host_key).unwrap();
        let grid_for_sftp = grid.grid.clone();
        let settings = SftpSettings {
            host_key: lafs_gateway::node::read_host_key(&host_key).unwrap(),
            accounts: Arc::new(AccountsFile::new(&accounts_path)),
            throttle: Arc::new(LoginThrottle::default()),
            spool_dir: work.path().join("spool"),
            auth_rejection_time: Duration::from_millis(50),
            limits,
        };
        let ftp_settings = lafs_gateway::frontends::ftp::FtpSettings {
            accounts: settings.accounts.clone(),
            throttle: settings.throttle.clone(),
            spool_dir: settings.spool_dir.clone(),
            passive_ports: 40000..=60000,
            ftps: None,
            ftps_required,
            limits,
        };
        let mut ftp_settings = ftp_settings;
        if ftps_required {
            let (cert, key) = (work.path().join("ftps.pem"), work.path().join("ftps.key"));
            let made = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null())
                .status()
                .await
                .expect("openssl runs");
            assert!(made.success());
            ftp_settings.ftps = Some((cert, key));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ftp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ftp_port = ftp_listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ftp_stop, ftp_stopped) = tokio::sync::oneshot::channel::<()>();
        let ftp_grid = grid.grid.clone();
        let task = tokio::spawn(async move {
            let ftp = tokio::spawn(lafs_gateway::frontends::ftp::serve(
                ftp_listener,
                ftp_grid,
                ftp_settings,
                async move {
                    let _ = ftp_stopped.await;
                },
            ));
            let result = sftp::serve(listener, grid_for_sftp, settings, async move {
                let _ = stopped.await;
            })
            .await;
            let _ = ftp_stop.send(());
            let _ = ftp.await;
            result
        });
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

    fn ssh_options() -> Vec<&'static str> {
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
