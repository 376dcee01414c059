//! The FTP server (libunftp): logins from the accounts file's password lines, and a storage back-end over the vfs.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use libunftp::options::ReplyCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::Instrument;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError, UserDetailProvider,
};
use unftp_core::storage::{self, Fileinfo, Metadata, StorageBackend};

mod log_lines;
mod mfmt;
mod site;

use crate::frontends::accounts::AccountsFile;
use crate::frontends::file_reader::FileContents;
use crate::frontends::file_writer::FileWriter;
use crate::frontends::limits::{ConnectionGate, SessionLimits};
use crate::frontends::throttle::LoginThrottle;
use crate::grid::Grid;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind, Kind, Stat, Vfs};

/// Bytes read from the data connection per write into the file.
const STOR_CHUNK: usize = 256 * 1024;

/// What the FTP server needs besides the grid.
#[derive(Debug, Clone)]
pub struct FtpSettings {
    /// Who may log in (password lines only: FTP has no keys).
    pub accounts: Arc<AccountsFile>,
    /// Failed-login limits per address (shared with SFTP).
    pub throttle: Arc<LoginThrottle>,
    /// Where out-of-order uploads are spooled (encrypted).
    pub spool_dir: PathBuf,
    /// The passive data ports.
    pub passive_ports: std::ops::RangeInclusive<u16>,
    /// Explicit FTPS (AUTH TLS): PEM certificate chain and key files.
    pub ftps: Option<(PathBuf, PathBuf)>,
    /// Refuse logins and transfers that did not switch to TLS.
    pub ftps_required: bool,
    /// Sessions in total and per address (counted apart from SFTP's).
    pub limits: SessionLimits,
}

/// The reply code class each vfs error gets (one exhaustive match): missing things are 550 (as
/// rclone and most clients expect, never 501), a grid that cannot be reached is 450.
pub fn reply_kind(kind: ErrorKind) -> storage::ErrorKind {
    use storage::ErrorKind as F;
    match kind {
        ErrorKind::NotFound => F::PermanentFileNotAvailable,
        ErrorKind::NotADirectory => F::PermanentDirectoryNotAvailable,
        ErrorKind::AlreadyExists => F::PermanentFileNotAvailable,
        ErrorKind::IsADirectory => F::PermanentFileNotAvailable,
        ErrorKind::DirectoryNotEmpty => F::PermanentDirectoryNotEmpty,
        ErrorKind::PermissionDenied => F::PermissionDenied,
        ErrorKind::InvalidName => F::FileNameNotAllowedError,
        ErrorKind::Transient => F::TransientFileNotAvailable,
        ErrorKind::Unsupported => F::CommandNotImplemented,
        ErrorKind::TooLarge => F::ExceededStorageAllocationError,
        ErrorKind::Internal => F::LocalError,
    }
}

/// The reply code for a vfs error in replies libunftp does not build itself (MFMT), derived from
/// [`reply_kind`] so both agree.
pub fn reply_code(kind: ErrorKind) -> ReplyCode {
    use storage::ErrorKind as F;
    match reply_kind(kind) {
        F::PermanentFileNotAvailable
        | F::PermanentDirectoryNotAvailable
        | F::PermanentDirectoryNotEmpty
        | F::PermissionDenied => ReplyCode::FileError,
        F::FileNameNotAllowedError => ReplyCode::BadFileName,
        F::TransientFileNotAvailable => ReplyCode::TransientFileError,
        F::CommandNotImplemented => ReplyCode::CommandNotImplemented,
        F::ExceededStorageAllocationError => ReplyCode::ExceededStorageAllocation,
        _ => ReplyCode::LocalError,
    }
}

fn ftp_error(e: vfs::Error) -> storage::Error {
    storage::Error::new(reply_kind(e.kind()), e)
}

/// A logged-in FTP user: a name and a root directory.
#[derive(Clone)]
pub struct FtpUser {
    name: String,
    root: Cap,
}

impl fmt::Debug for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FtpUser({})", self.name)
    }
}

impl fmt::Display for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for FtpUser {}

/// Checks passwords against the accounts file (argon2, off the async workers) and throttles
/// failures. One per connection: a login names its user in the connection's span.
#[derive(Debug)]
struct AccountsAuthenticator {
    accounts: Arc<AccountsFile>,
    throttle: Arc<LoginThrottle>,
    span: tracing::Span,
}

#[async_trait]
impl Authenticator for AccountsAuthenticator {
    async fn authenticate(&self, username: &str, creds: &Credentials) -> Result<Principal, AuthenticationError> {
        if !self.throttle.allows(creds.source_ip) {
            // The span has no user yet: the name tried is the event's.
            tracing::warn!(
                user = username,
                "ftp login refused: too many failures from this address"
            );
            return Err(AuthenticationError::BadPassword);
        }
        let password = creds.password.clone().unwrap_or_default();
        let accounts = self.accounts.current();
        let account = accounts.check_password_in_turn(username.to_string(), password).await;
        match account {
            Some(_) => {
                self.throttle.succeeded(creds.source_ip);
                self.span.record("user", tracing::field::display(username));
                tracing::info!("ftp login");
                Ok(Principal {
                    username: username.to_string(),
                })
            }
            None => {
                self.throttle.failed(creds.source_ip);
                tracing::warn!(user = username, "ftp login refused");
                Err(AuthenticationError::BadPassword)
            }
        }
    }
}

#[derive(Debug)]
struct AccountsUsers {
    accounts: Arc<AccountsFile>,
}

#[async_trait]
impl UserDetailProvider for AccountsUsers {
    type User = FtpUser;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<FtpUser, UserDetailError> {
        let accounts = self.accounts.current();
        let account = accounts
            .get(&principal.username)
            .ok_or_else(|| UserDetailError::new("no such account"))?;
        Ok(FtpUser {
            name: account.user.clone(),
            root: account.root.clone(),
        })
    }
}

/// An entry's attributes as libunftp lists them.
#[derive(Debug, Clone)]
pub struct EntryMetadata {
    stat: Stat,
}

impl Metadata for EntryMetadata {
    fn len(&self) -> u64 {
        self.stat.size
    }

    fn is_dir(&self) -> bool {
        self.stat.kind == Kind::Directory
    }

    fn is_file(&self) -> bool {
        self.stat.kind == Kind::File
    }

    fn is_symlink(&self) -> bool {
        false
    }

    fn modified(&self) -> storage::Result<SystemTime> {
        let secs = self.stat.mtime.unwrap_or(0.0).max(0.0);
        Ok(UNIX_EPOCH + Duration::from_secs_f64(secs))
    }

    fn gid(&self) -> u32 {
        0
    }

    fn uid(&self) -> u32 {
        0
    }

    fn permissions(&self) -> storage::Permissions {
        storage::Permissions(self.stat.permission_bits())
    }
}

/// The storage back-end: every FTP file operation through the user's vfs.
#[derive(Debug, Clone)]
pub struct GridStorage {
    grid: Grid,
    spool_dir: PathBuf,
}

impl GridStorage {
    fn vfs(&self, user: &FtpUser) -> Vfs {
        Vfs::new(self.grid.clone(), user.root.clone())
    }

    async fn open_file(&self, user: &FtpUser, path: &Path) -> storage::Result<FileContents> {
        let vfs = self.vfs(user);
        let (cap, stat) = vfs.lookup(&path_bytes(path)).await.map_err(ftp_error)?;
        if stat.kind == Kind::Directory {
            return Err(ftp_error(vfs::Error::new(ErrorKind::IsADirectory)));
        }
        FileContents::open_in(vfs.grid(), &cap, &self.spool_dir)
            .await
            .map_err(ftp_error)
    }
}

/// Bytes of a file handed to the data connection per write.
const RETR_CHUNK: u64 = 1 << 20;

/// Writes the file from `start` to `output`. A grid failure part-way is an error (451), never a
/// short file reported as complete.
async fn send_file<W>(contents: &mut FileContents, start: u64, output: &mut W) -> storage::Result<u64>
where
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    let mut offset = start;
    while offset < contents.size() {
        let piece = contents.read(offset, RETR_CHUNK).await.map_err(|e| {
            tracing::warn!("download failed: {e}");
            ftp_error(e)
        })?;
        if piece.is_empty() {
            return Err(ftp_error(vfs::Error::new(ErrorKind::Internal)));
        }
        output
            .write_all(&piece)
            .await
            .map_err(|e| storage::Error::new(storage::ErrorKind::ConnectionClosed, e))?;
        offset += piece.len() as u64;
    }
    Ok(offset.saturating_sub(start))
}

pub(crate) fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[async_trait]
impl StorageBackend<FtpUser> for GridStorage {
    type Metadata = EntryMetadata;

    fn supported_features(&self) -> u32 {
        storage::FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<EntryMetadata> {
        let stat = self
            .vfs(user)
            .stat(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)?;
        Ok(EntryMetadata { stat })
    }

    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<Vec<Fileinfo<PathBuf, EntryMetadata>>> {
        let mut entries = self
            .vfs(user)
            .list(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries
            .into_iter()
            .map(|(name, stat)| Fileinfo {
                path: PathBuf::from(name),
                metadata: EntryMetadata { stat },
            })
            .collect())
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> storage::Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + fmt::Debug,
    {
        let mut contents = self.open_file(user, path.as_ref()).await?;
        send_file(&mut contents, start_pos, output).await
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
    ) -> storage::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        // libunftp's RETR uses get_into; this reader form is for its other callers.
        let mut contents = self.open_file(user, path.as_ref()).await?;
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            // A failure drops the writer early: the reader sees a short stream and an error.
            if send_file(&mut contents, start_pos, &mut writer).await.is_ok() {
                let _ = writer.shutdown().await;
            }
        });
        Ok(Box::new(reader))
    }

    async fn put<P: AsRef<Path> + Send + fmt::Debug, R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        user: &FtpUser,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> storage::Result<u64> {
        let vfs = self.vfs(user);
        let path = path_bytes(path.as_ref());
        let existing = vfs.prepare_write(&path).await.map_err(ftp_error)?;
        // REST + STOR and APPE resume from the committed file: keep its first start_pos bytes.
        let mut writer = match (&existing, start_pos) {
            (Some(cap), 1..) => {
                let mut writer = FileWriter::resume(&vfs, cap, &self.spool_dir)
                    .await
                    .map_err(ftp_error)?;
                writer.set_len(&vfs, start_pos).await.map_err(ftp_error)?;
                writer
            }
            _ => FileWriter::create(&self.spool_dir).replacing(existing.as_ref()),
        };
        let mut offset = writer.len();
        let mut buf = vec![0u8; STOR_CHUNK];
        loop {
            let n = input.read(&mut buf).await.map_err(|e| {
                // The data connection broke: nothing is committed, the old file stays.
                storage::Error::new(storage::ErrorKind::ConnectionClosed, e)
            })?;
            if n == 0 {
                break;
            }
            writer.write_at(&vfs, offset, &buf[..n]).await.map_err(ftp_error)?;
            offset += n as u64;
        }
        let failed = |e: vfs::Error| {
            tracing::warn!("upload failed: {e}");
            storage::Error::new(storage::ErrorKind::LocalError, e)
        };
        let uploaded = writer.upload(&vfs).await.map_err(failed)?;
        // An ABOR sent just before the client closed the data connection can arrive after its end:
        // the data stream reports it on one more read, and the file is not linked.
        input
            .read(&mut [0u8; 1])
            .await
            .map_err(|e| storage::Error::new(storage::ErrorKind::ConnectionClosed, e))?;
        uploaded.link(&vfs, &path).await.map_err(failed)?;
        Ok(offset - start_pos)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(&self, user: &FtpUser, path: P) -> storage::Result<()> {
        self.vfs(user)
            .remove(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(&self, user: &FtpUser, path: P) -> storage::Result<()> {
        self.vfs(user)
            .mkdir(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(&self, user: &FtpUser, from: P, to: P) -> storage::Result<()> {
        // RNFR/RNTO replaces an existing target, as POSIX rename and most FTP servers do.
        self.vfs(user)
            .rename(&path_bytes(from.as_ref()), &path_bytes(to.as_ref()), true)
            .await
            .map_err(ftp_error)
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(&self, user: &FtpUser, path: P) -> storage::Result<()> {
        self.vfs(user)
            .rmdir(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(&self, user: &FtpUser, path: P) -> storage::Result<()> {
        let stat = self
            .vfs(user)
            .stat(&path_bytes(path.as_ref()))
            .await
            .map_err(ftp_error)?;
        if stat.kind != Kind::Directory {
            return Err(ftp_error(vfs::Error::new(ErrorKind::NotADirectory)));
        }
        Ok(())
    }
}

/// Serves FTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    grid: Grid,
    settings: FtpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let storage = GridStorage {
        grid,
        spool_dir: settings.spool_dir.clone(),
    };
    let users = Arc::new(AccountsUsers {
        accounts: settings.accounts.clone(),
    });
    let gate = ConnectionGate::for_limits(&settings.limits);
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
            Some(_) = sessions.join_next() => continue,
        };
        // Every line logged for the connection names its peer, and its user once logged in.
        let span = tracing::info_span!("ftp", peer = %peer, user = tracing::field::Empty);
        let permit = match gate.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                if refused.first {
                    span.in_scope(|| tracing::warn!("ftp connection refused: {}", refused.reason));
                }
                // RFC 959's answer for a server that cannot take the session; then the connection
                // closes. Written without waiting: a client that does not read gets nothing more.
                let _ = stream.try_write(b"421 Too many connections, try again later.\r\n");
                continue;
            }
        };
        // Clients send ABOR's last byte as TCP urgent data (Python's ftplib, lftp); kept inline, the
        // line still ends and the command is read.
        if let Err(e) = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::OobInline, &true) {
            span.in_scope(|| tracing::debug!("cannot keep urgent data inline: {e}"));
        }
        let storage = storage.clone();
        let server =
            libunftp::ServerBuilder::with_user_detail_provider(Box::new(move || storage.clone()), users.clone())
                .authenticator(Arc::new(AccountsAuthenticator {
                    accounts: settings.accounts.clone(),
                    throttle: settings.throttle.clone(),
                    span: span.clone(),
                }))
                .logger(log_lines::logger())
                .greeting("lafs-gateway FTP ready")
                .passive_ports(settings.passive_ports.clone())
                .active_passive_mode(libunftp::options::ActivePassiveMode::ActiveAndPassive)
                .idle_session_timeout(600)
                .site_command("MFMT", mfmt::SetModificationTime)
                .site_command("CHMOD", site::Chmod)
                .site_command("HASH", site::Hash)
                .site_command("XSHA256", site::XSha256)
                .site_command("VERIFY", site::Verify)
                .site_command("REPAIR", site::Repair);
        let server = match &settings.ftps {
            Some((certificate, key)) => {
                let server = server.ftps(certificate.clone(), key.clone());
                if settings.ftps_required {
                    use libunftp::options::FtpsRequired;
                    server.ftps_required(FtpsRequired::All, FtpsRequired::All)
                } else {
                    server
                }
            }
            None => server,
        }
        .build();
        let server = match server {
            Ok(server) => server,
            Err(e) => {
                span.in_scope(|| tracing::error!("cannot set up an FTP session: {e}"));
                continue;
            }
        };
        // libunftp spawns the session's tasks in the current span (a lafs-gateway patch).
        let session = async move {
            let _permit = permit;
            if let Err(e) = server.service(stream).await {
                tracing::debug!("ftp session ended: {e:?}");
            }
        };
        sessions.spawn(session.instrument(span));
    }
    sessions.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_reply() {
        use storage::ErrorKind as F;
        let table = [
            (ErrorKind::NotFound, F::PermanentFileNotAvailable, "550"),
            (ErrorKind::NotADirectory, F::PermanentDirectoryNotAvailable, "550"),
            (ErrorKind::AlreadyExists, F::PermanentFileNotAvailable, "550"),
            (ErrorKind::IsADirectory, F::PermanentFileNotAvailable, "550"),
            (ErrorKind::DirectoryNotEmpty, F::PermanentDirectoryNotEmpty, "550"),
            (ErrorKind::PermissionDenied, F::PermissionDenied, "550"),
            (ErrorKind::InvalidName, F::FileNameNotAllowedError, "553"),
            (ErrorKind::Transient, F::TransientFileNotAvailable, "450"),
            (ErrorKind::Unsupported, F::CommandNotImplemented, "502"),
            (ErrorKind::TooLarge, F::ExceededStorageAllocationError, "552"),
            (ErrorKind::Internal, F::LocalError, "451"),
        ];
        for (kind, reply, code) in table {
            assert_eq!(reply_kind(kind), reply, "{kind:?}");
            assert!(reply.to_string().starts_with(code), "{kind:?}: {reply}");
            assert_eq!((reply_code(kind) as u32).to_string(), code, "{kind:?}");
        }
    }
}
