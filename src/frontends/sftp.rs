//! The SSH server in front of the SFTP sessions: host key, logins from the accounts file, and the `sftp` subsystem only.

pub mod attrs;
pub mod check_file;
pub mod dispatch;
pub mod exec;
pub mod framing;
pub mod handles;
pub mod open_writes;
pub mod openssh;
pub mod order;
pub mod quick_ack;
pub mod replies;
pub mod requests;
pub mod serve;
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
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;

use crate::frontends::accounts::{Account, AccountsFile};
use crate::frontends::limits::{ConnectionGate, SessionLimits, SessionPermit};
use crate::frontends::throttle::LoginThrottle;
use crate::grid::Grid;
use crate::vfs::Vfs;
use open_writes::OpenWrites;
use session::SftpSession;

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
    /// Sessions in total and per address, login grace time, idle timeout.
    pub limits: SessionLimits,
}

struct Shared {
    grid: Grid,
    settings: SftpSettings,
    open_writes: Arc<OpenWrites>,
}

/// SSH-level silence after which russh drops a connection: a backstop for connections with no
/// SFTP channel to time out (a channel's own idle timeout is [`SessionLimits::idle_timeout`]).
/// Not shorter, because a client waiting on a long commit (the CLOSE of a big upload) is silent.
const SSH_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(3600);

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
        inactivity_timeout: Some(SSH_INACTIVITY_TIMEOUT.max(settings.limits.idle_timeout)),
        nodelay: true,
        window_size: 8 << 20,
        // Room for a whole 32 KiB SFTP write plus its header in one channel packet: split in two,
        // the small second half waits on Nagle and delayed ACKs (40 ms per write with paramiko).
        maximum_packet_size: 65535,
        ..Default::default()
    };
    let config = Arc::new(config);
    let gate = ConnectionGate::for_limits(&settings.limits);
    let shared = Arc::new(Shared {
        grid,
        settings,
        open_writes: Arc::new(OpenWrites::default()),
    });
    let (stop, _) = broadcast::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: keep serving the sessions already open.
                    tracing::warn!("sftp accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                let _ = stop.send(());
                return Ok(());
            }
        };
        // Every line logged for the connection names its peer, and its user once logged in.
        let span = tracing::info_span!("sftp", peer = %peer, user = tracing::field::Empty);
        let permit = match gate.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                if refused.first {
                    span.in_scope(|| tracing::warn!("sftp connection refused: {}", refused.reason));
                }
                drop(socket);
                continue;
            }
        };
        let connection = serve_connection(config.clone(), shared.clone(), socket, peer, permit, stop.subscribe());
        tokio::spawn(connection.instrument(span));
    }
}

/// One SSH connection from accept to end: closed if it has not logged in within the grace time,
/// disconnected when the server shuts down. `_permit` holds its place in the session count. Runs
/// in the connection's span.
async fn serve_connection(
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: SessionPermit,
    mut stop: broadcast::Receiver<()>,
) {
    let _ = socket.set_nodelay(true);
    // A second descriptor of the socket, to cut it from here if the session does not end when told.
    let (socket, cutter) = match socket.into_std().and_then(|socket| {
        let cutter = socket.try_clone()?;
        Ok((TcpStream::from_std(socket)?, cutter))
    }) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!("sftp connection dropped: {error}");
            return;
        }
    };
    let grace = shared.settings.limits.login_grace;
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let (logged_in, mut login) = oneshot::channel();
    let handler = Connection {
        shared,
        // russh runs the handler in a task of its own, outside this span: it enters it itself.
        span: tracing::Span::current(),
        peer: Some(peer),
        account: None,
        channels: HashMap::new(),
        commands: std::collections::HashSet::new(),
        logged_in: Some(logged_in),
    };
    let late = || tracing::warn!("sftp connection closed: no login within {grace:?}");
    // The version exchange is part of the grace time too: a client that sends nothing is dropped.
    let session = tokio::select! {
        started = russh::server::run_stream(config, quick_ack::QuickAck::new(socket), handler) => match started {
            Ok(session) => session,
            Err(error) => {
                tracing::debug!("ssh connection setup failed: {error}");
                return;
            }
        },
        () = &mut deadline => return late(),
        _ = stop.recv() => return,
    };
    let handle = session.handle();
    tokio::pin!(session);
    let mut waiting_for_login = true;
    let reason = loop {
        tokio::select! {
            ended = &mut session => {
                if let Err(error) = ended {
                    tracing::debug!("ssh session ended with an error: {error}");
                }
                return;
            }
            _ = &mut login, if waiting_for_login => waiting_for_login = false,
            () = &mut deadline, if waiting_for_login => {
                late();
                break "login grace time over";
            }
            _ = stop.recv() => break "server shutting down",
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = handle
            .disconnect(Disconnect::ByApplication, reason.into(), "en".into())
            .await;
        let _ = (&mut session).await;
    })
    .await;
    if ended.is_err() {
        // Stuck (russh does not act on a disconnect mid key exchange): cut the socket under it, so
        // its reads end and the session with them.
        let _ = cutter.shutdown(std::net::Shutdown::Both);
        let _ = tokio::time::timeout(Duration::from_secs(5), session).await;
    }
}

/// One SSH connection: its login and its channels.
pub struct Connection {
    shared: Arc<Shared>,
    /// The connection's span (peer, and user once logged in).
    span: tracing::Span,
    peer: Option<SocketAddr>,
    account: Option<Account>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running an exec command: their task closes them once the output is sent.
    commands: std::collections::HashSet<ChannelId>,
    /// Told of the first successful login (the grace timer stops).
    logged_in: Option<oneshot::Sender<()>>,
}

impl Connection {
    fn throttled(&self) -> bool {
        self.peer
            .is_some_and(|peer| !self.shared.settings.throttle.allows(peer.ip()))
    }

    fn login_result(&mut self, user: &str, method: &str, account: Option<Account>) -> Auth {
        let _entered = self.span.enter();
        match account {
            Some(account) => {
                if let Some(p) = self.peer {
                    self.shared.settings.throttle.succeeded(p.ip());
                }
                self.span.record("user", tracing::field::display(user));
                tracing::info!(method, read_only = account.root.is_read_only(), "sftp login");
                self.account = Some(account);
                if let Some(logged_in) = self.logged_in.take() {
                    let _ = logged_in.send(());
                }
                Auth::Accept
            }
            None => {
                if let Some(p) = self.peer {
                    self.shared.settings.throttle.failed(p.ip());
                }
                // The span has no user: the name tried is the event's.
                tracing::warn!(user, method, "sftp login refused");
                Auth::reject()
            }
        }
    }
}

/// What a shell or exec request gets.
const ONLY_SFTP: &str = "This server supports only the SFTP protocol (try `sftp`, `sshfs` or `rclone`) and the commands sha256sum and verify.\r\n";

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.throttled() {
            self.span
                .in_scope(|| tracing::warn!(user, "sftp login refused: too many failures from this address"));
            return Ok(Auth::reject());
        }
        let accounts = self.shared.settings.accounts.current();
        // argon2 is deliberately slow: it runs off the async workers.
        let account = accounts
            .check_password_in_turn(user.to_string(), password.to_string())
            .await;
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
        let idle = self.shared.settings.limits.idle_timeout;
        let handle = session.handle();
        let serving = async move {
            match serve::run(channel, sftp, idle).await {
                serve::Ended::ClientClosed => {}
                ended @ serve::Ended::Idle(_) => {
                    tracing::info!("sftp session closed: {ended}");
                    // Only SFTP is served, so the connection has nothing left to do.
                    let _ = handle
                        .disconnect(Disconnect::ByApplication, "idle timeout".into(), "en".into())
                        .await;
                }
                ended => {
                    tracing::warn!("sftp channel closed: {ended}");
                    let _ = handle.close(id).await;
                }
            }
        };
        tokio::spawn(serving.instrument(self.span.clone()));
        Ok(())
    }

    async fn shell_request(&mut self, id: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        refuse_command(id, session)
    }

    async fn exec_request(&mut self, id: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let Some(account) = self.account.clone() else {
            return refuse_command(id, session);
        };
        let command = match exec::parse(data) {
            Ok(command) => command,
            Err(_) => return refuse_command(id, session),
        };
        session.channel_success(id)?;
        self.commands.insert(id);
        let vfs = Vfs::new(self.shared.grid.clone(), account.root.clone());
        let handle = session.handle();
        let running = async move {
            let output = exec::run(&vfs, command).await;
            if !output.stdout.is_empty() {
                let _ = handle.data(id, output.stdout.into_bytes()).await;
            }
            if !output.stderr.is_empty() {
                let _ = handle.extended_data(id, 1, output.stderr.into_bytes()).await;
            }
            let _ = handle.exit_status_request(id, output.status).await;
            let _ = handle.eof(id).await;
            let _ = handle.close(id).await;
        };
        tokio::spawn(running.instrument(self.span.clone()));
        Ok(())
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
        // A command's client sends EOF at once (no input): its task closes the channel when done.
        if self.commands.contains(&id) {
            return Ok(());
        }
        // The client sends nothing more: finish our side so its `sftp` exits at once. The exit
        // status is what sshd sends when sftp-server exits; scp (which runs over SFTP) reports a
        // failure without it.
        self.channels.remove(&id);
        session.exit_status_request(id, 0)?;
        session.eof(id)?;
        session.close(id)
    }

    async fn channel_close(&mut self, id: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&id);
        self.commands.remove(&id);
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
