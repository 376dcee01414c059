//! The node directory: `lafs.toml` with documented defaults, `private/` secrets, and opening the grid they describe.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::frontends::drop_upload::{DEFAULT_IGNORE, DropFolder, IgnoreRules, OnDelete, Target};
use crate::frontends::limits::SessionLimits;
use crate::grid::uri::Cap;

use crate::grid::crypto::random_bytes;
use crate::grid::{ClientSecrets, EncodingParams, Grid, base32};

pub mod storage_node;

/// The config file's name inside a node directory.
pub const CONFIG_FILE: &str = "lafs.toml";

/// The file `lafs init` writes: every key with its default and what it means.
pub const DEFAULT_CONFIG: &str = r#"# lafs-gateway node configuration.
# Every key is optional: the values shown are the defaults.

[grid]
# Shares needed to read a file back (k), 1..=256.
needed = 3
# Distinct servers that must hold shares before a put succeeds, needed..=total.
happy = 7
# Shares written for every file (N), needed..=256.
total = 10
# Largest segment in bytes. Tahoe 1.19+ uses 1 MiB; with the same convergence
# secret, k and N this gives the same caps as a real Tahoe node.
max_segment_size = 1048576
# Memory for file data in flight across the whole node, in MiB: buffered writes, segments
# being encrypted, encoded and sent, and segments read ahead for downloads. When it is
# spent, transfers wait (their clients feel TCP back-pressure) and buffered writes go to
# the encrypted spool, instead of the node growing. At least 8.
memory_budget_mib = 64
# Store on networked storage servers instead of the local grid below: a Tahoe-format
# static server list (`storage: {<server id>: {ann: {...}}}`, the announcements of storage
# nodes speaking Tahoe's HTTP storage protocol: real Tahoe 1.19+ nodes or `lafs run` nodes
# with [storage_server] enabled). Relative to the node directory.
# servers_yaml = "private/servers.yaml"

[storage]
# Where the embedded local grid keeps its servers' shares (relative paths are
# relative to the node directory). Each server is a directory in Tahoe's layout.
path = "storage"
# How many local storage servers the embedded grid has (at least 1).
servers = 10

[frontends]
# Serve SFTP (OpenSSH sftp, sshfs, rclone, WinSCP, FileZilla...) on sftp_listen.
sftp = true
sftp_listen = "127.0.0.1:8022"
# The SSH host key (OpenSSH format; made by `lafs init` if missing).
ssh_host_key = "private/ssh_host_ed25519_key"
# Serve FTP on ftp_listen (password accounts only), with passive data ports from this range.
ftp = true
ftp_listen = "127.0.0.1:8021"
ftp_passive_ports = "50000-50100"
# Explicit FTPS (AUTH TLS): PEM certificate chain and private key files. When neither file
# exists at these default paths, `lafs init` and `lafs run` write a self-signed pair there;
# point both at a real certificate to use one. Empty strings turn FTPS off.
ftps_certificate = "private/ftps.pem"
ftps_key = "private/ftps.key"
# With a certificate: refuse logins and transfers that did not switch to TLS first.
ftps_required = false
# Who may log in: `USER ssh-ed25519 AAAA... [comment] ROOTCAP` or
# `USER $argon2id$... ROOTCAP` per line (see accounts.example). Re-read when it changes.
accounts_file = "private/accounts"
# Where uploads that cannot stream straight into the grid are spooled, encrypted.
spool_dir = "spool"
# Session limits (SFTP): connections over a limit are closed before the SSH handshake.
max_sessions = 256
max_sessions_per_address = 64
# Seconds from connecting to a successful login (as OpenSSH's LoginGraceTime).
login_grace_secs = 120
# Seconds an SFTP session may wait for its next request before it is closed.
sftp_idle_timeout_secs = 600

[storage_server]
# Serve this node's shares to other gateways and to Tahoe clients, over Tahoe's HTTP
# storage protocol (HTTPS, self-signed certificate pinned by the NURL). On start the node
# writes private/storage.nurl and private/storage-announcement.yaml (an entry for other
# nodes' servers_yaml).
enabled = false
listen = "127.0.0.1:3457"
# The host name or address clients reach this node at (default: the listen address).
# location = "storage1.example.org"
# Where the shares live (Tahoe's layout).
path = "storage-server"
nickname = "lafs"
# The lease crawler walks the shares once per cycle (at least this many seconds; it also
# keeps itself under 10% of a core) and records what it finds in
# <path>/lease_checker.state.json. With expire_enabled it deletes shares whose every lease
# has expired (Tahoe's age mode); clients renew leases with `lafs put` and `check --repair`.
lease_crawl_cycle_secs = 43200
expire_enabled = false
# Judge leases by age (seconds since granted or renewed) instead of their 31-day expiry.
# expire_override_lease_duration_secs = 5184000
expire_immutable = true
expire_mutable = true
"#;

/// Why the node directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory has no config file.
    #[error("no node at {0} (run `lafs init {0}` first, or pass --node-dir)")]
    NoNode(String),
    /// The config file is not valid.
    #[error("{file}: {message}")]
    BadConfig {
        /// the config file
        file: String,
        /// which key and what is allowed
        message: String,
    },
    /// A secret file is missing or malformed.
    #[error("{file}: {message}")]
    BadSecret {
        /// the secret file (its contents are never shown)
        file: String,
        /// what is wrong
        message: String,
    },
    /// Reading or writing the node directory failed.
    #[error("{context}: {source}")]
    Io {
        /// what was being done
        context: String,
        /// the underlying error
        source: std::io::Error,
    },
    /// Opening the grid failed.
    #[error(transparent)]
    Grid(#[from] crate::grid::Error),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    grid: GridSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    frontends: FrontendsSection,
    #[serde(default)]
    drop_upload: Vec<DropUploadSection>,
    #[serde(default)]
    storage_server: StorageServerSection,
}

/// `[storage_server]`: serve shares over Tahoe's HTTP storage protocol.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StorageServerSection {
    enabled: bool,
    listen: String,
    location: Option<String>,
    path: PathBuf,
    nickname: String,
    lease_crawl_cycle_secs: u64,
    expire_enabled: bool,
    expire_override_lease_duration_secs: Option<u64>,
    expire_immutable: bool,
    expire_mutable: bool,
}

impl Default for StorageServerSection {
    fn default() -> Self {
        StorageServerSection {
            enabled: false,
            listen: "127.0.0.1:3457".into(),
            location: None,
            path: PathBuf::from("storage-server"),
            nickname: "lafs".into(),
            lease_crawl_cycle_secs: 12 * 3600,
            expire_enabled: false,
            expire_override_lease_duration_secs: None,
            expire_immutable: true,
            expire_mutable: true,
        }
    }
}

/// `[[drop_upload]]`: one watched folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropUploadSection {
    local_dir: PathBuf,
    name: Option<String>,
    target: Option<String>,
    account: Option<String>,
    #[serde(default)]
    path: String,
    ignore: Option<Vec<String>>,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default = "ignore_deletes")]
    on_delete: String,
    #[serde(default = "default_settle_ms")]
    settle_ms: u64,
    #[serde(default = "default_retry_max_secs")]
    retry_max_secs: u64,
}

fn yes() -> bool {
    true
}

fn ignore_deletes() -> String {
    "ignore".into()
}

fn default_settle_ms() -> u64 {
    500
}

fn default_retry_max_secs() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GridSection {
    needed: usize,
    happy: usize,
    total: usize,
    max_segment_size: u64,
    memory_budget_mib: u64,
    servers_yaml: Option<PathBuf>,
}

impl Default for GridSection {
    fn default() -> Self {
        let p = EncodingParams::default();
        GridSection {
            needed: p.needed,
            happy: p.happy,
            total: p.total,
            max_segment_size: p.max_segment_size,
            memory_budget_mib: crate::grid::budget::DEFAULT_BYTES >> 20,
            servers_yaml: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StorageSection {
    path: PathBuf,
    servers: usize,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            path: PathBuf::from("storage"),
            servers: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FrontendsSection {
    sftp: bool,
    sftp_listen: String,
    ssh_host_key: PathBuf,
    ftp: bool,
    ftp_listen: String,
    ftp_passive_ports: String,
    ftps_certificate: Option<PathBuf>,
    ftps_key: Option<PathBuf>,
    ftps_required: bool,
    accounts_file: PathBuf,
    spool_dir: PathBuf,
    max_sessions: usize,
    max_sessions_per_address: usize,
    login_grace_secs: u64,
    sftp_idle_timeout_secs: u64,
}

impl Default for FrontendsSection {
    fn default() -> Self {
        FrontendsSection {
            sftp: true,
            sftp_listen: "127.0.0.1:8022".into(),
            ssh_host_key: PathBuf::from("private/ssh_host_ed25519_key"),
            ftp: true,
            ftp_listen: "127.0.0.1:8021".into(),
            ftp_passive_ports: "50000-50100".into(),
            ftps_certificate: Some(PathBuf::from(FTPS_CERTIFICATE)),
            ftps_key: Some(PathBuf::from(FTPS_KEY)),
            ftps_required: false,
            accounts_file: PathBuf::from("private/accounts"),
            spool_dir: PathBuf::from("spool"),
            max_sessions: SessionLimits::default().max_sessions,
            max_sessions_per_address: SessionLimits::default().max_sessions_per_address,
            login_grace_secs: SessionLimits::default().login_grace.as_secs(),
            sftp_idle_timeout_secs: SessionLimits::default().idle_timeout.as_secs(),
        }
    }
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node directory.
    pub dir: PathBuf,
    /// Encoding parameters for uploads.
    pub params: EncodingParams,
    /// Directory holding the local servers.
    pub storage_path: PathBuf,
    /// Number of local servers.
    pub storage_servers: usize,
    /// Whether `lafs run` serves SFTP.
    pub sftp: bool,
    /// SFTP listen address.
    pub sftp_listen: SocketAddr,
    /// The SSH host key file.
    pub ssh_host_key: PathBuf,
    /// Whether `lafs run` serves FTP.
    pub ftp: bool,
    /// FTP listen address.
    pub ftp_listen: SocketAddr,
    /// FTP passive data ports.
    pub ftp_passive_ports: std::ops::RangeInclusive<u16>,
    /// FTPS certificate chain and key (PEM), if FTPS is offered.
    pub ftps: Option<(PathBuf, PathBuf)>,
    /// Whether FTP without TLS is refused.
    pub ftps_required: bool,
    /// The accounts file.
    pub accounts_file: PathBuf,
    /// Where uploads are spooled when they cannot stream.
    pub spool_dir: PathBuf,
    /// Session limits of the frontends.
    pub session_limits: SessionLimits,
    /// Watched folders (`[[drop_upload]]`).
    pub drop_uploads: Vec<DropFolder>,
    /// A static list of networked storage servers (used instead of the local grid).
    pub servers_yaml: Option<PathBuf>,
    /// Bytes of file data the node may hold in flight (see [`crate::grid::budget`]).
    pub memory_budget: u64,
    /// The storage server this node runs, if enabled.
    pub storage_server: Option<crate::node::storage_node::StorageServerConfig>,
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse_config(dir: &Path, file: &str, text: &str) -> Result<NodeConfig, Error> {
    let bad = |message: String| Error::BadConfig {
        file: file.to_string(),
        message,
    };
    let raw: ConfigFile = toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().replace('\n', " ")))?;
    let params = EncodingParams {
        needed: raw.grid.needed,
        happy: raw.grid.happy,
        total: raw.grid.total,
        max_segment_size: raw.grid.max_segment_size,
    };
    if params.needed == 0 || params.needed > 256 {
        return Err(bad(format!("key grid.needed = {}: allowed 1..=256", params.needed)));
    }
    if params.total < params.needed || params.total > 256 {
        return Err(bad(format!(
            "key grid.total = {}: allowed grid.needed..=256 ({}..=256)",
            params.total, params.needed
        )));
    }
    if params.happy == 0 || params.happy > params.total {
        return Err(bad(format!(
            "key grid.happy = {}: allowed 1..=grid.total (1..={})",
            params.happy, params.total
        )));
    }
    if params.max_segment_size == 0 {
        return Err(bad("key grid.max_segment_size = 0: allowed 1 or more bytes".into()));
    }
    if raw.storage.servers == 0 {
        return Err(bad("key storage.servers = 0: allowed 1 or more".into()));
    }
    let budget_mib = raw.grid.memory_budget_mib;
    if !(crate::grid::budget::MIN_BYTES >> 20..=1 << 20).contains(&budget_mib) {
        return Err(bad(format!(
            "key grid.memory_budget_mib = {budget_mib}: allowed {}..=1048576",
            crate::grid::budget::MIN_BYTES >> 20
        )));
    }
    let addr = |key: &str, value: &str| {
        value.parse::<SocketAddr>().map_err(|_| {
            bad(format!(
                "key frontends.{key} = {value:?}: allowed an IP:port address such as 127.0.0.1:8022"
            ))
        })
    };
    let in_node = |path: PathBuf| if path.is_absolute() { path } else { dir.join(path) };
    let frontends = raw.frontends;
    let ports = &frontends.ftp_passive_ports;
    let ftp_passive_ports = ports
        .split_once('-')
        .and_then(|(a, b)| Some(a.trim().parse::<u16>().ok()?..=b.trim().parse::<u16>().ok()?))
        .filter(|r| r.start() <= r.end() && *r.start() > 0)
        .ok_or_else(|| {
            bad(format!(
                "key frontends.ftp_passive_ports = {ports:?}: allowed a port range such as \"50000-50100\""
            ))
        })?;
    let non_empty = |path: Option<PathBuf>| path.filter(|p| !p.as_os_str().is_empty());
    let ftps = match (non_empty(frontends.ftps_certificate), non_empty(frontends.ftps_key)) {
        (Some(cert), Some(key)) => Some((in_node(cert), in_node(key))),
        (None, None) => None,
        _ => {
            return Err(bad(
                "keys frontends.ftps_certificate and frontends.ftps_key: give both or neither".into(),
            ));
        }
    };
    for (key, value) in [
        ("max_sessions", frontends.max_sessions as u64),
        ("max_sessions_per_address", frontends.max_sessions_per_address as u64),
        ("login_grace_secs", frontends.login_grace_secs),
        ("sftp_idle_timeout_secs", frontends.sftp_idle_timeout_secs),
    ] {
        if value == 0 {
            return Err(bad(format!("key frontends.{key} = 0: allowed 1 or more")));
        }
    }
    let session_limits = SessionLimits {
        max_sessions: frontends.max_sessions,
        max_sessions_per_address: frontends.max_sessions_per_address,
        login_grace: std::time::Duration::from_secs(frontends.login_grace_secs),
        idle_timeout: std::time::Duration::from_secs(frontends.sftp_idle_timeout_secs),
    };
    if frontends.ftps_required && ftps.is_none() {
        return Err(bad(
            "key frontends.ftps_required = true: needs ftps_certificate and ftps_key".into(),
        ));
    }
    let storage_server = if raw.storage_server.enabled {
        let section = raw.storage_server;
        let listen = section.listen.parse::<SocketAddr>().map_err(|_| {
            bad(format!(
                "key storage_server.listen = {:?}: allowed an IP:port address such as 127.0.0.1:3457",
                section.listen
            ))
        })?;
        if section.nickname.is_empty() || section.nickname.len() > 64 {
            return Err(bad("key storage_server.nickname: allowed 1 to 64 characters".into()));
        }
        Some(crate::node::storage_node::StorageServerConfig {
            listen,
            location: section.location.filter(|l| !l.is_empty()),
            path: in_node(section.path),
            nickname: section.nickname,
            lease_crawl_cycle: std::time::Duration::from_secs(section.lease_crawl_cycle_secs),
            expiration: crate::grid::storage::lease_crawler::ExpirationPolicy {
                enabled: section.expire_enabled,
                override_lease_duration: section.expire_override_lease_duration_secs,
                immutable: section.expire_immutable,
                mutable: section.expire_mutable,
            },
        })
    } else {
        None
    };
    let mut drop_uploads: Vec<DropFolder> = Vec::new();
    for (index, section) in raw.drop_upload.into_iter().enumerate() {
        let key = |k: &str| format!("drop_upload[{index}].{k}");
        let local_dir = in_node(section.local_dir);
        let name = match section.name {
            Some(name) => name,
            None => local_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("folder")
                .to_string(),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(bad(format!(
                "key {} = {name:?}: allowed letters, digits, '.', '_' and '-'",
                key("name")
            )));
        }
        if drop_uploads.iter().any(|f| f.name == name) {
            return Err(bad(format!(
                "key {} = {name:?}: two folders have this name",
                key("name")
            )));
        }
        let target = match (section.target, section.account) {
            (Some(cap), None) => match cap.parse::<Cap>() {
                Ok(cap @ Cap::Directory(_)) if !cap.is_read_only() => Target::Cap(cap),
                _ => {
                    return Err(bad(format!(
                        "key {}: allowed a writable directory cap (URI:DIR2:...)",
                        key("target")
                    )));
                }
            },
            (None, Some(user)) => Target::Account {
                user,
                path: section.path,
            },
            _ => {
                return Err(bad(format!(
                    "keys {} and {}: give one of them (a directory cap, or an account with an optional path)",
                    key("target"),
                    key("account")
                )));
            }
        };
        let patterns = section
            .ignore
            .unwrap_or_else(|| DEFAULT_IGNORE.iter().map(|p| p.to_string()).collect());
        let ignore = IgnoreRules::new(&patterns).map_err(|e| bad(format!("key {}: {e}", key("ignore"))))?;
        let on_delete = match section.on_delete.as_str() {
            "ignore" => OnDelete::Ignore,
            "unlink" => OnDelete::Unlink,
            other => {
                return Err(bad(format!(
                    "key {} = {other:?}: allowed \"ignore\" or \"unlink\"",
                    key("on_delete")
                )));
            }
        };
        drop_uploads.push(DropFolder {
            journal: dir.join("private").join("drop-upload").join(format!("{name}.sqlite")),
            name,
            local_dir,
            target,
            ignore,
            recursive: section.recursive,
            on_delete,
            settle: std::time::Duration::from_millis(section.settle_ms),
            retry_max: std::time::Duration::from_secs(section.retry_max_secs.max(1)),
        });
    }
    Ok(NodeConfig {
        dir: dir.to_path_buf(),
        params,
        storage_path: in_node(raw.storage.path),
        storage_servers: raw.storage.servers,
        sftp: frontends.sftp,
        sftp_listen: addr("sftp_listen", &frontends.sftp_listen)?,
        ssh_host_key: in_node(frontends.ssh_host_key),
        ftp: frontends.ftp,
        ftp_listen: addr("ftp_listen", &frontends.ftp_listen)?,
        ftp_passive_ports,
        ftps,
        ftps_required: frontends.ftps_required,
        accounts_file: in_node(frontends.accounts_file),
        spool_dir: in_node(frontends.spool_dir),
        session_limits,
        drop_uploads,
        servers_yaml: raw.grid.servers_yaml.map(&in_node),
        memory_budget: budget_mib << 20,
        storage_server,
    })
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Creates a node directory with the default config and fresh secrets; existing files are kept.
pub fn init(dir: &Path) -> Result<(), Error> {
    let private = dir.join("private");
    fs::create_dir_all(&private).map_err(io(format!("create {}", private.display())))?;
    restrict_permissions(&private, 0o700)?;
    let config = dir.join(CONFIG_FILE);
    if !config.exists() {
        fs::write(&config, DEFAULT_CONFIG).map_err(io(format!("write {}", config.display())))?;
    }
    for name in ["convergence", "secret"] {
        let path = private.join(name);
        if !path.exists() {
            // Tahoe's format: base32 of 32 random bytes, so a Tahoe node's file can be copied in.
            fs::write(&path, base32::encode(&random_bytes::<32>()) + "\n")
                .map_err(io(format!("write {}", path.display())))?;
            restrict_permissions(&path, 0o600)?;
        }
    }
    let config = load_config(dir)?;
    if !config.ssh_host_key.exists() {
        write_host_key(&config.ssh_host_key)?;
    }
    ensure_ftps_identity(&config)?;
    Ok(())
}

/// The default FTPS certificate and key, relative to the node directory.
pub const FTPS_CERTIFICATE: &str = "private/ftps.pem";
/// See [`FTPS_CERTIFICATE`].
pub const FTPS_KEY: &str = "private/ftps.key";

/// Writes a self-signed FTPS certificate and key at the default paths when the config uses them
/// and neither file exists (a certificate configured elsewhere is never replaced).
pub fn ensure_ftps_identity(config: &NodeConfig) -> Result<(), Error> {
    let Some((certificate, key)) = &config.ftps else {
        return Ok(());
    };
    let defaults = *certificate == config.dir.join(FTPS_CERTIFICATE) && *key == config.dir.join(FTPS_KEY);
    if defaults && !certificate.exists() && !key.exists() {
        write_ftps_identity(certificate, key)?;
    }
    Ok(())
}

/// Writes a fresh self-signed certificate for `localhost` and 127.0.0.1 and its key (mode 0600),
/// both PEM.
pub fn write_ftps_identity(certificate: &Path, key: &Path) -> Result<(), Error> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(|e| {
            Error::BadSecret {
                file: certificate.display().to_string(),
                message: format!("cannot make a self-signed certificate: {e}"),
            }
        })?;
    for path in [certificate, key] {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
    }
    fs::write(key, made.signing_key.serialize_pem()).map_err(io(format!("write {}", key.display())))?;
    restrict_permissions(key, 0o600)?;
    fs::write(certificate, made.cert.pem()).map_err(io(format!("write {}", certificate.display())))?;
    Ok(())
}

/// Writes a fresh ed25519 SSH host key (OpenSSH format, mode 0600) and its `.pub`.
pub fn write_host_key(path: &Path) -> Result<(), Error> {
    use russh::keys::ssh_key::{LineEnding, PrivateKey, private::Ed25519Keypair};
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&random_bytes::<32>()));
    let text = key.to_openssh(LineEnding::LF).map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("cannot encode the host key: {e}"),
    })?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    }
    fs::write(path, text.as_bytes()).map_err(io(format!("write {}", path.display())))?;
    restrict_permissions(path, 0o600)?;
    let public = key.public_key().to_openssh().map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("cannot encode the host public key: {e}"),
    })?;
    let pub_path = path.with_extension("pub");
    fs::write(&pub_path, public + "\n").map_err(io(format!("write {}", pub_path.display())))?;
    Ok(())
}

/// Reads the SSH host key.
pub fn read_host_key(path: &Path) -> Result<russh::keys::PrivateKey, Error> {
    russh::keys::PrivateKey::read_openssh_file(path).map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("not a readable unencrypted OpenSSH private key ({e})"),
    })
}

fn restrict_permissions(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(format!("chmod {}", path.display())))
}

/// Loads the config of the node at `dir`.
pub fn load_config(dir: &Path) -> Result<NodeConfig, Error> {
    let path = dir.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoNode(dir.display().to_string())),
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    };
    parse_config(dir, &path.display().to_string(), &text)
}

/// Reads a base32 secret file from `private/`.
pub fn read_secret(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join("private").join(name);
    let file = path.display().to_string();
    let text = fs::read_to_string(&path).map_err(|e| Error::BadSecret {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let secret = base32::decode(text.trim()).ok_or_else(|| Error::BadSecret {
        file: file.clone(),
        message: "not lowercase base32 (Tahoe's format)".into(),
    })?;
    if secret.is_empty() {
        return Err(Error::BadSecret {
            file,
            message: "empty".into(),
        });
    }
    Ok(secret)
}

/// The alias used when a path names none (as Tahoe's `tahoe:`).
pub const DEFAULT_ALIAS: &str = "tahoe";

/// Reads `private/aliases` (Tahoe's format: `name: cap` per line); a missing file is no aliases.
pub fn read_aliases(dir: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let path = dir.join("private").join("aliases");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(name, cap)| (name.trim().to_string(), cap.trim().to_string()))
        })
        .collect())
}

/// Adds (or replaces) an alias in `private/aliases`; the file stays private to its owner.
pub fn add_alias(dir: &Path, name: &str, cap: &str) -> Result<(), Error> {
    let bad = |message: &str| Error::BadConfig {
        file: "alias".into(),
        message: message.into(),
    };
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(bad("an alias name must be non-empty, without ':' or spaces"));
    }
    let mut aliases = read_aliases(dir)?;
    aliases.insert(name.to_string(), cap.to_string());
    let text: String = aliases.iter().map(|(n, c)| format!("{n}: {c}\n")).collect();
    let path = dir.join("private").join("aliases");
    let tmp = dir.join("private").join("aliases.tmp");
    fs::write(&tmp, text).map_err(io(format!("write {}", tmp.display())))?;
    restrict_permissions(&tmp, 0o600)?;
    fs::rename(&tmp, &path).map_err(io(format!("write {}", path.display())))
}

/// A loaded node: its config and its grid.
#[derive(Debug, Clone)]
pub struct Node {
    /// The validated config.
    pub config: NodeConfig,
    /// The grid it stores files on.
    pub grid: Grid,
}

impl Node {
    /// Loads the node at `dir` and opens its local grid.
    pub fn open(dir: &Path) -> Result<Node, Error> {
        let config = load_config(dir)?;
        let secrets = ClientSecrets {
            convergence: read_secret(dir, "convergence")?,
            lease: read_secret(dir, "secret")?,
        };
        let grid = match &config.servers_yaml {
            Some(path) => network_grid(path, config.params, secrets)?,
            None => Grid::open_local(&config.storage_path, config.storage_servers, config.params, secrets)?,
        }
        .with_blocklist(crate::grid::blocklist::Blocklist::new(dir.join("access.blacklist")))
        .with_memory_budget(config.memory_budget);
        Ok(Node { config, grid })
    }
}

/// A grid of the HTTP storage servers listed in a Tahoe `servers.yaml`.
fn network_grid(path: &Path, params: EncodingParams, secrets: ClientSecrets) -> Result<Grid, Error> {
    let file = path.display().to_string();
    let text = fs::read_to_string(path).map_err(io(format!("read {file}")))?;
    let bad = |message: String| Error::BadConfig {
        file: file.clone(),
        message,
    };
    let listed = crate::grid::announcement::parse_servers_yaml(&text).map_err(|e| bad(e.to_string()))?;
    let mut skipped: Vec<String> = listed.skipped.iter().map(ToString::to_string).collect();
    let mut servers = Vec::new();
    for announcement in &listed.usable {
        match crate::grid::storage::http::client::HttpStorageClient::new(
            announcement.server_id(),
            &announcement.nurls[0],
        ) {
            Ok(client) => servers.push(Arc::new(client) as Arc<dyn crate::grid::storage::StorageServer>),
            Err(e) => skipped.push(format!("server {}: {e}", announcement.server_id)),
        }
    }
    // As Tahoe does, a server entry that cannot be used leaves the rest of the grid usable.
    for why in &skipped {
        tracing::warn!(file = %file, "skipping a storage server: {why}");
    }
    if servers.is_empty() {
        return Err(bad(if skipped.is_empty() {
            "no storage servers listed".into()
        } else {
            format!("no usable storage servers: {}", skipped.join("; "))
        }));
    }
    Ok(Grid::new(servers, params, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_to_the_documented_defaults() {
        let config = parse_config(Path::new("/n"), "lafs.toml", DEFAULT_CONFIG).unwrap();
        assert_eq!(config.params, EncodingParams::default());
        assert_eq!(config.storage_path, Path::new("/n/storage"));
        assert_eq!(config.storage_servers, 10);
        assert_eq!(config.sftp_listen.to_string(), "127.0.0.1:8022");
        assert_eq!(config.session_limits, SessionLimits::default());
        assert_eq!(config.memory_budget, 64 << 20);
        let empty = parse_config(Path::new("/n"), "lafs.toml", "").unwrap();
        assert_eq!(empty.params, config.params);
        assert_eq!(empty.memory_budget, config.memory_budget);
    }

    #[test]
    fn bad_configs_name_file_key_and_allowed_values() {
        let cases = [
            ("[grid]\nneeded = 0\n", "grid.needed"),
            ("[grid]\nneeded = 5\ntotal = 4\n", "grid.total"),
            ("[grid]\nhappy = 11\n", "grid.happy"),
            ("[storage]\nservers = 0\n", "storage.servers"),
            ("[grid]\nmemory_budget_mib = 4\n", "grid.memory_budget_mib"),
            ("[frontends]\nsftp_listen = \"nope\"\n", "frontends.sftp_listen"),
            (
                "[frontends]\nftp_passive_ports = \"9-1\"\n",
                "frontends.ftp_passive_ports",
            ),
            ("[frontends]\nftps_key = \"\"\n", "frontends.ftps_certificate"),
            (
                "[frontends]\nmax_sessions_per_address = 0\n",
                "frontends.max_sessions_per_address",
            ),
            ("[frontends]\nlogin_grace_secs = -1\n", "login_grace_secs"),
            ("[grid]\nneeded = \"three\"\n", "needed"),
            ("[grid]\nk = 3\n", "k"),
        ];
        for (text, key) in cases {
            let err = parse_config(Path::new("/n"), "/n/lafs.toml", text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("/n/lafs.toml: "), "{err}");
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn drop_upload_folders_parse_with_defaults_and_refuse_bad_values() {
        let text = "[[drop_upload]]\nlocal_dir = \"Drop\"\naccount = \"bob\"\npath = \"in/box\"\n\
                    [[drop_upload]]\nlocal_dir = \"/srv/cam\"\nname = \"cam\"\naccount = \"bob\"\n\
                    on_delete = \"unlink\"\nrecursive = false\nignore = [\"*.raw\"]\nsettle_ms = 50\n";
        let config = parse_config(Path::new("/n"), "lafs.toml", text).unwrap();
        let [first, second] = &config.drop_uploads[..] else {
            panic!("two folders expected");
        };
        assert_eq!(first.name, "Drop");
        assert_eq!(first.local_dir, Path::new("/n/Drop"));
        assert!(matches!(&first.target, Target::Account { user, path } if user == "bob" && path == "in/box"));
        assert_eq!(first.journal, Path::new("/n/private/drop-upload/Drop.sqlite"));
        assert!(first.recursive && first.on_delete == OnDelete::Ignore);
        assert_eq!(first.settle, std::time::Duration::from_millis(500));
        assert!(first.ignore.is_ignored(Path::new(".x")) && first.ignore.is_ignored(Path::new("a.part")));
        assert_eq!(second.name, "cam");
        assert!(!second.recursive && second.on_delete == OnDelete::Unlink);
        assert!(second.ignore.is_ignored(Path::new("a.raw")) && !second.ignore.is_ignored(Path::new(".x")));
        let bad = [
            ("local_dir = \"d\"\n", "drop_upload[0].target"),
            (
                "local_dir = \"d\"\naccount = \"a\"\ntarget = \"URI:DIR2:x:y\"\n",
                "drop_upload[0].account",
            ),
            (
                "local_dir = \"d\"\ntarget = \"URI:LIT:aaaa\"\n",
                "drop_upload[0].target",
            ),
            (
                "local_dir = \"d\"\naccount = \"a\"\non_delete = \"shred\"\n",
                "drop_upload[0].on_delete",
            ),
            (
                "local_dir = \"d\"\naccount = \"a\"\nname = \"a b\"\n",
                "drop_upload[0].name",
            ),
            (
                "local_dir = \"d\"\naccount = \"a\"\nignore = [\"[\"]\n",
                "drop_upload[0].ignore",
            ),
            ("local_dir = \"d\"\naccount = \"a\"\nwatch = true\n", "watch"),
        ];
        for (table, key) in bad {
            let err = parse_config(Path::new("/n"), "lafs.toml", &format!("[[drop_upload]]\n{table}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
        let twice = "[[drop_upload]]\nlocal_dir = \"a/d\"\naccount = \"a\"\n[[drop_upload]]\nlocal_dir = \"b/d\"\naccount = \"a\"\n";
        let err = parse_config(Path::new("/n"), "lafs.toml", twice)
            .unwrap_err()
            .to_string();
        assert!(err.contains("two folders have this name"), "{err}");
    }

    #[test]
    fn ftps_certificate_is_made_only_at_the_default_paths_and_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let config = load_config(dir.path()).unwrap();
        let (certificate, key) = config.ftps.clone().expect("FTPS on by default");
        let pem = fs::read_to_string(&certificate).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        // Kept as they are on the next init.
        init(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&certificate).unwrap(), pem);
        // A certificate configured elsewhere is never made up.
        let elsewhere = "[frontends]\nftps_certificate = \"mine.pem\"\nftps_key = \"mine.key\"\n";
        let config = parse_config(dir.path(), "lafs.toml", elsewhere).unwrap();
        ensure_ftps_identity(&config).unwrap();
        assert!(!dir.path().join("mine.pem").exists() && !dir.path().join("mine.key").exists());
        let off = "[frontends]\nftps_certificate = \"\"\nftps_key = \"\"\n";
        assert!(parse_config(dir.path(), "lafs.toml", off).unwrap().ftps.is_none());
    }

    #[test]
    fn init_writes_tahoe_format_secrets_and_keeps_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let secret = read_secret(dir.path(), "convergence").unwrap();
        assert_eq!(secret.len(), 32);
        let text = fs::read_to_string(dir.path().join("private/convergence")).unwrap();
        assert_eq!(text.trim().len(), 52);
        init(dir.path()).unwrap();
        assert_eq!(read_secret(dir.path(), "convergence").unwrap(), secret);
        fs::write(dir.path().join("private/secret"), "NOT BASE32").unwrap();
        let err = read_secret(dir.path(), "secret").unwrap_err().to_string();
        assert!(!err.contains("NOT BASE32"), "secret text leaked: {err}");
    }

    #[test]
    fn servers_yaml_entries_that_cannot_be_used_are_skipped_unless_none_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servers.yaml");
        let secrets = || ClientSecrets {
            convergence: vec![1; 16],
            lease: vec![2; 32],
        };
        let good = crate::grid::announcement::servers_yaml_entry(&crate::grid::announcement::OwnAnnouncement {
            server_id: "v0-good",
            nickname: "good",
            furl: "pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:7/swissnum1",
            nurl: "pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:7/swissnum1#v=1",
            permutation_seed_base32: "mfrgg",
            seqnum: 1,
            nonce: "x",
        });
        let foolscap_only = "storage:\n  v0-old:\n    ann:\n      anonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:8/swissnum2\n";
        fs::write(&path, foolscap_only).unwrap();
        let err = network_grid(&path, EncodingParams::default(), secrets())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no usable storage servers") && err.contains("v0-old"),
            "{err}"
        );
        assert!(!err.contains("swissnum2"), "a fURL leaked: {err}");
        fs::write(&path, format!("{foolscap_only}{}", good.replace("storage:\n", ""))).unwrap();
        let grid = network_grid(&path, EncodingParams::default(), secrets()).unwrap();
        let names: Vec<_> = grid.servers().iter().map(|s| s.id().nickname.clone()).collect();
        assert_eq!(names, ["good"]);
    }
}
