//! The SSH server in front of the SFTP sessions: host key, logins from the accounts file, and the `sftp` subsystem only.

pub mod attrs;
pub mod session;
pub mod status;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;

use crate::frontends::accounts::{Account, AccountsFile};
use crate::frontends::throttle::LoginThrottle;
use crate::grid::Grid;
use crate::vfs::Vfs;
use session::{OpenWrites, SftpSession};

/// What the SFTP server needs besides the grid.
#[derive(Debug, Clone)]
pub struct SftpSettings {
    /// The host key clients pin.
    pub host_key: PrivateKey,
    /// Who may log in.
    pub accounts: Arc<AccountsFile>,
    /// Failed-login limits per address (shared with FTP).
    pub throttle: Arc<LoginThrottle>,
    /// Where random-access uploads are spooled (encrypted).
    pub spool_dir: PathBuf,
    /// How long a wrong login is held before the answer (also for unknown users).
    pub auth_rejection_time: Duration,
}

struct Shared {
    grid: Grid,
    settings: SftpSettings,
    open_writes: Arc<OpenWrites>,
}

/// Serves SFTP on `listener` until `shutdown` completes; sessions then get a disconnect.
pub async fn serve(
    listener: TcpListener,
    grid: Grid,
    settings: SftpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    let config = russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-lafs-gateway".into()),
        keys: vec![settings.host_key.clone()],
        methods,
        auth_rejection_time: settings.auth_rejection_time,
        // The first `none` probe every client sends is not a failed login.
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        window_size: 8 << 20,
        // Room for a whole 32 KiB SFTP write plus its header in one channel packet: split in two,
        // the small second half waits on Nagle and delayed ACKs (40 ms per write with paramiko).
        maximum_packet_size: 65535,
        ..Default::default()
    };
    let mut server = SshServer {
        shared: Arc::new(Shared {
            grid,
            settings,
            open_writes: Arc::new(OpenWrites::default()),
        }),
    };
    let running = russh::server::Server::run_on_socket(&mut server, Arc::new(config), &listener);
    let handle = running.handle();
    tokio::select! {
        result = running => result,
        () = shutdown => {
            handle.shutdown("server shutting down".into());
            Ok(())
        }
    }
}

struct SshServer {
    shared: Arc<Shared>,
}

impl russh::server::Server for SshServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            shared: self.shared.clone(),
            peer,
            account: None,
            channels: HashMap::new(),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!("ssh session ended with an error: {error}");
    }
}

/// One SSH connection: its login and its channels.
pub struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    account: Option<Account>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    fn throttled(&self) -> bool {
        self.peer
            .is_some_and(|peer| !self.shared.settings.throttle.allows(peer.ip()))
    }

    fn login_result(&mut self, user: &str, method: &str, account: Option<Account>) -> Auth {
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        match account {
            Some(account) => {
                if let Some(p) = self.peer {
                    self.shared.settings.throttle.succeeded(p.ip());
                }
                tracing::info!(
                    user,
                    peer,
                    method,
                    read_only = account.root.is_read_only(),
                    "sftp login"
                );
                self.account = Some(account);
                Auth::Accept
            }
            None => {
                if let Some(p) = self.peer {
                    self.shared.settings.throttle.failed(p.ip());
                }
                tracing::warn!(user, peer, method, "sftp login refused");
                Auth::reject()
            }
        }
    }
}

/// What a shell or exec request gets.
const ONLY_SFTP: &str = "This server supports only the SFTP protocol (try `sftp`, `sshfs` or `rclone`).\r\n";

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.throttled() {
            tracing::warn!(user, "sftp login refused: too many failures from this address");
            return Ok(Auth::reject());
        }
        let accounts = self.shared.settings.accounts.current();
        let (name, password) = (user.to_string(), password.to_string());
        // argon2 is deliberately slow: keep it off the async workers.
        let account = tokio::task::spawn_blocking(move || accounts.check_password(&name, &password))
            .await
            .unwrap_or(None);
        Ok(self.login_result(user, "password", account))
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        if self.throttled()
            || !self
                .shared
                .settings
                .accounts
                .current()
                .accepts_key(user, offer.public_key)
        {
            return Ok(Auth::reject());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let account = self.shared.settings.accounts.current().check_key(user, key.public_key);
        Ok(self.login_result(user, "publickey", account))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.account.is_none() {
            return Ok(()); // dropping the handle rejects the channel
        }
        let id = channel.id();
        reply.accept().await;
        self.channels.insert(id, channel);
        Ok(())
    }

    async fn subsystem_request(&mut self, id: ChannelId, name: &str, session: &mut Session) -> Result<(), Self::Error> {
        let (Some(account), true) = (self.account.clone(), name == "sftp") else {
            session.channel_failure(id)?;
            return Ok(());
        };
        let Some(channel) = self.channels.remove(&id) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let vfs = Vfs::new(self.shared.grid.clone(), account.root.clone());
        let sftp = SftpSession::new(
            vfs,
            account.user.clone(),
            self.shared.settings.spool_dir.clone(),
            self.shared.open_writes.clone(),
        );
        russh_sftp::server::run(channel.into_stream(), sftp).await;
        Ok(())
    }

    async fn shell_request(&mut self, id: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        refuse_command(id, session)
    }

    async fn exec_request(&mut self, id: ChannelId, _data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        refuse_command(id, session)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        id: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No terminal is ever attached, but refusing makes `ssh -t`/`RequestTTY=force` clients hang
        // up; a lenient yes lets the sftp subsystem that follows run as usual.
        session.channel_success(id)
    }

    async fn env_request(
        &mut self,
        id: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Accepted and ignored: nothing here reads environment variables (SendEnv LANG LC_*).
        session.channel_success(id)
    }

    async fn channel_eof(&mut self, id: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        // The client sends nothing more: finish our side so its `sftp` exits at once.
        self.channels.remove(&id);
        session.eof(id)?;
        session.close(id)
    }

    async fn channel_close(&mut self, id: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&id);
        Ok(())
    }
}

fn refuse_command(id: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
    session.channel_success(id)?;
    session.extended_data(id, 1, ONLY_SFTP.as_bytes().to_vec())?;
    session.exit_status_request(id, 1)?;
    session.eof(id)?;
    session.close(id)
}
