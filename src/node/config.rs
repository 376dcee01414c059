//! `lafs.toml`: the schema with its documented defaults, and one function per section that
//! checks its values and says which key is wrong and what it allows.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{Error, io};
use super::storage_node::StorageServerConfig;
use crate::frontends::drop_upload::{DEFAULT_IGNORE, DropFolder, IgnoreRules, OnDelete, Target};
use crate::frontends::limits::SessionLimits;
use crate::grid::commit::CommitSettings;
use crate::grid::storage::lease_crawler::ExpirationPolicy;
use crate::grid::uri::Cap;
use crate::grid::{BadParams, EncodingParams};

/// The config file's name inside a node directory.
pub const CONFIG_FILE: &str = "lafs.toml";

/// The file `lafs init` writes: every key with its default and what it means.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// The default FTPS certificate and key, relative to the node directory.
pub const FTPS_CERTIFICATE: &str = "private/ftps.pem";
/// See [`FTPS_CERTIFICATE`].
pub const FTPS_KEY: &str = "private/ftps.key";

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
    #[serde(default)]
    journal: JournalSection,
    #[serde(default)]
    web: WebSection,
    #[serde(default)]
    introducer: IntroducerSection,
}

/// `[web]`: Tahoe's web API and pages (see [`crate::web`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct WebSection {
    enabled: bool,
    listen: String,
    allow_remote: bool,
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            enabled: true,
            // Tahoe's `web.port` default.
            listen: "127.0.0.1:3456".into(),
            allow_remote: false,
        }
    }
}

/// `[introducer]`: serve as a Tahoe introducer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IntroducerSection {
    enabled: bool,
    listen: String,
    location: Option<String>,
}

impl Default for IntroducerSection {
    fn default() -> Self {
        IntroducerSection {
            enabled: false,
            listen: "127.0.0.1:3459".into(),
            location: None,
        }
    }
}

/// `[journal]`: acknowledging closes from the commit journal (see [`crate::grid::commit`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct JournalSection {
    enabled: bool,
    max_file_kib: u64,
    max_pending_mib: u64,
    directory_cache_ms: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        let settings = CommitSettings::default();
        JournalSection {
            enabled: true,
            max_file_kib: settings.max_file_size >> 10,
            max_pending_mib: settings.max_pending_bytes >> 20,
            directory_cache_ms: 1000,
        }
    }
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
    pub storage_server: Option<StorageServerConfig>,
    /// The commit journal's settings (`None`: `[journal] enabled = false`).
    pub journal: Option<CommitSettings>,
    /// How long a serving node answers path lookups from a directory listing it read or wrote.
    pub directory_cache: std::time::Duration,
    /// Where the web API and pages listen (`None`: `[web] enabled = false`).
    pub web_listen: Option<SocketAddr>,
    /// The introducer this node serves, if enabled.
    pub introducer: Option<crate::introducer::server::IntroducerServerConfig>,
}

/// Where a config comes from: relative paths are under its node directory, errors name its file.
struct Source<'a> {
    dir: &'a Path,
    file: &'a str,
}

impl Source<'_> {
    fn bad(&self, message: String) -> Error {
        Error::BadConfig {
            file: self.file.to_string(),
            message,
        }
    }

    fn in_node(&self, path: PathBuf) -> PathBuf {
        if path.is_absolute() { path } else { self.dir.join(path) }
    }
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse_config(dir: &Path, file: &str, text: &str) -> Result<NodeConfig, Error> {
    let source = Source { dir, file };
    let raw: ConfigFile = toml::from_str(text).map_err(|e| source.bad(e.to_string().trim_end().replace('\n', " ")))?;
    let params = encoding_params(&raw.grid, &source)?;
    let storage_servers = storage_servers(&raw.storage, &source)?;
    let memory_budget = memory_budget(&raw.grid, &source)?;
    let frontends = raw.frontends;
    let ftp_passive_ports = passive_ports(&frontends.ftp_passive_ports, &source)?;
    let ftps = ftps_identity(&frontends, &source)?;
    let session_limits = session_limits(&frontends, &source)?;
    if frontends.ftps_required && ftps.is_none() {
        return Err(source.bad("key frontends.ftps_required = true: needs ftps_certificate and ftps_key".into()));
    }
    let storage_server = storage_server(raw.storage_server, &source)?;
    let drop_uploads = drop_uploads(raw.drop_upload, &source)?;
    let journal = journal(&raw.journal, &source)?;
    let web_listen = web_listen(&raw.web, &source)?;
    let introducer = introducer(&raw.introducer, &source)?;
    Ok(NodeConfig {
        dir: dir.to_path_buf(),
        params,
        storage_path: source.in_node(raw.storage.path),
        storage_servers,
        sftp: frontends.sftp,
        sftp_listen: address("sftp_listen", &frontends.sftp_listen, &source)?,
        ssh_host_key: source.in_node(frontends.ssh_host_key),
        ftp: frontends.ftp,
        ftp_listen: address("ftp_listen", &frontends.ftp_listen, &source)?,
        ftp_passive_ports,
        ftps,
        ftps_required: frontends.ftps_required,
        accounts_file: source.in_node(frontends.accounts_file),
        spool_dir: source.in_node(frontends.spool_dir),
        session_limits,
        drop_uploads,
        servers_yaml: raw.grid.servers_yaml.map(|path| source.in_node(path)),
        memory_budget,
        storage_server,
        journal,
        directory_cache: std::time::Duration::from_millis(raw.journal.directory_cache_ms.min(60_000)),
        web_listen,
        introducer,
    })
}

/// `[web]`: the listen address, on loopback unless `allow_remote` (the pages have no login:
/// caps in URLs are the only protection, as in Tahoe).
fn web_listen(web: &WebSection, source: &Source) -> Result<Option<SocketAddr>, Error> {
    if !web.enabled {
        return Ok(None);
    }
    let listen = web.listen.parse::<SocketAddr>().map_err(|_| {
        source.bad(format!(
            "key web.listen = {:?}: allowed an IP:port address such as 127.0.0.1:3456",
            web.listen
        ))
    })?;
    if !listen.ip().is_loopback() && !web.allow_remote {
        return Err(source.bad(format!(
            "key web.listen = {:?}: not a loopback address; set web.allow_remote = true to serve other hosts",
            web.listen
        )));
    }
    Ok(Some(listen))
}

/// `[introducer]`, when enabled.
fn introducer(
    section: &IntroducerSection,
    source: &Source,
) -> Result<Option<crate::introducer::server::IntroducerServerConfig>, Error> {
    if !section.enabled {
        return Ok(None);
    }
    Ok(Some(crate::introducer::server::IntroducerServerConfig {
        listen: address("introducer.listen", &section.listen, source)?,
        location: section.location.clone().filter(|l| !l.is_empty()),
    }))
}

/// `[journal]`: a file limit of 0 journals nothing but links; at least 1 MiB may be pending.
fn journal(section: &JournalSection, source: &Source) -> Result<Option<CommitSettings>, Error> {
    if !section.enabled {
        return Ok(None);
    }
    if section.max_file_kib > 16 << 10 {
        return Err(source.bad(format!(
            "key journal.max_file_kib = {}: allowed 0..=16384",
            section.max_file_kib
        )));
    }
    if section.max_pending_mib == 0 || section.max_pending_mib > 1 << 20 {
        return Err(source.bad(format!(
            "key journal.max_pending_mib = {}: allowed 1..=1048576",
            section.max_pending_mib
        )));
    }
    Ok(Some(CommitSettings {
        max_file_size: section.max_file_kib << 10,
        max_pending_bytes: section.max_pending_mib << 20,
    }))
}

/// `[grid]`'s encoding: the rules are [`EncodingParams::validate`]'s.
fn encoding_params(grid: &GridSection, source: &Source) -> Result<EncodingParams, Error> {
    let params = EncodingParams {
        needed: grid.needed,
        happy: grid.happy,
        total: grid.total,
        max_segment_size: grid.max_segment_size,
    };
    params.validate().map_err(|e| {
        source.bad(match e {
            // The bounds that are other keys are named as keys.
            BadParams::Total { needed, total } => {
                format!("key grid.total = {total}: allowed grid.needed..=256 ({needed}..=256)")
            }
            BadParams::Happy { happy, total } => {
                format!("key grid.happy = {happy}: allowed 1..=grid.total (1..={total})")
            }
            other => format!("key grid.{other}"),
        })
    })?;
    Ok(params)
}

/// `[grid] memory_budget_mib`, in bytes.
fn memory_budget(grid: &GridSection, source: &Source) -> Result<u64, Error> {
    let mib = grid.memory_budget_mib;
    let least = crate::grid::budget::MIN_BYTES >> 20;
    if !(least..=1 << 20).contains(&mib) {
        return Err(source.bad(format!("key grid.memory_budget_mib = {mib}: allowed {least}..=1048576")));
    }
    Ok(mib << 20)
}

/// `[storage] servers`.
fn storage_servers(storage: &StorageSection, source: &Source) -> Result<usize, Error> {
    if storage.servers == 0 {
        return Err(source.bad("key storage.servers = 0: allowed 1 or more".into()));
    }
    Ok(storage.servers)
}

/// A `[frontends]` listen address.
fn address(key: &str, value: &str, source: &Source) -> Result<SocketAddr, Error> {
    value.parse::<SocketAddr>().map_err(|_| {
        source.bad(format!(
            "key frontends.{key} = {value:?}: allowed an IP:port address such as 127.0.0.1:8022"
        ))
    })
}

/// `[frontends] ftp_passive_ports`: `first-last`.
fn passive_ports(ports: &str, source: &Source) -> Result<std::ops::RangeInclusive<u16>, Error> {
    ports
        .split_once('-')
        .and_then(|(a, b)| Some(a.trim().parse::<u16>().ok()?..=b.trim().parse::<u16>().ok()?))
        .filter(|r| r.start() <= r.end() && *r.start() > 0)
        .ok_or_else(|| {
            source.bad(format!(
                "key frontends.ftp_passive_ports = {ports:?}: allowed a port range such as \"50000-50100\""
            ))
        })
}

/// `[frontends] ftps_certificate` and `ftps_key`: both (FTPS offered) or neither.
fn ftps_identity(frontends: &FrontendsSection, source: &Source) -> Result<Option<(PathBuf, PathBuf)>, Error> {
    let non_empty = |path: &Option<PathBuf>| path.clone().filter(|p| !p.as_os_str().is_empty());
    match (non_empty(&frontends.ftps_certificate), non_empty(&frontends.ftps_key)) {
        (Some(cert), Some(key)) => Ok(Some((source.in_node(cert), source.in_node(key)))),
        (None, None) => Ok(None),
        _ => Err(source.bad("keys frontends.ftps_certificate and frontends.ftps_key: give both or neither".into())),
    }
}

/// `[frontends]`'s session limits and timeouts, each at least 1.
fn session_limits(frontends: &FrontendsSection, source: &Source) -> Result<SessionLimits, Error> {
    for (key, value) in [
        ("max_sessions", frontends.max_sessions as u64),
        ("max_sessions_per_address", frontends.max_sessions_per_address as u64),
        ("login_grace_secs", frontends.login_grace_secs),
        ("sftp_idle_timeout_secs", frontends.sftp_idle_timeout_secs),
    ] {
        if value == 0 {
            return Err(source.bad(format!("key frontends.{key} = 0: allowed 1 or more")));
        }
    }
    Ok(SessionLimits {
        max_sessions: frontends.max_sessions,
        max_sessions_per_address: frontends.max_sessions_per_address,
        login_grace: std::time::Duration::from_secs(frontends.login_grace_secs),
        idle_timeout: std::time::Duration::from_secs(frontends.sftp_idle_timeout_secs),
    })
}

/// `[storage_server]`, when enabled.
fn storage_server(section: StorageServerSection, source: &Source) -> Result<Option<StorageServerConfig>, Error> {
    if !section.enabled {
        return Ok(None);
    }
    let listen = section.listen.parse::<SocketAddr>().map_err(|_| {
        source.bad(format!(
            "key storage_server.listen = {:?}: allowed an IP:port address such as 127.0.0.1:3457",
            section.listen
        ))
    })?;
    if section.nickname.is_empty() || section.nickname.len() > 64 {
        return Err(source.bad("key storage_server.nickname: allowed 1 to 64 characters".into()));
    }
    Ok(Some(StorageServerConfig {
        listen,
        location: section.location.filter(|l| !l.is_empty()),
        path: source.in_node(section.path),
        nickname: section.nickname,
        lease_crawl_cycle: std::time::Duration::from_secs(section.lease_crawl_cycle_secs),
        expiration: ExpirationPolicy {
            enabled: section.expire_enabled,
            override_lease_duration: section.expire_override_lease_duration_secs,
            immutable: section.expire_immutable,
            mutable: section.expire_mutable,
        },
    }))
}

/// Every `[[drop_upload]]` folder; their names must differ.
fn drop_uploads(sections: Vec<DropUploadSection>, source: &Source) -> Result<Vec<DropFolder>, Error> {
    let mut folders: Vec<DropFolder> = Vec::new();
    for (index, section) in sections.into_iter().enumerate() {
        let folder = drop_upload(index, section, source)?;
        if folders.iter().any(|f| f.name == folder.name) {
            return Err(source.bad(format!(
                "key drop_upload[{index}].name = {:?}: two folders have this name",
                folder.name
            )));
        }
        folders.push(folder);
    }
    Ok(folders)
}

/// One `[[drop_upload]]` folder, the `index`th.
fn drop_upload(index: usize, section: DropUploadSection, source: &Source) -> Result<DropFolder, Error> {
    let key = |k: &str| format!("drop_upload[{index}].{k}");
    let local_dir = source.in_node(section.local_dir);
    let name = match section.name {
        Some(name) => name,
        None => local_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("folder")
            .to_string(),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(source.bad(format!(
            "key {} = {name:?}: allowed letters, digits, '.', '_' and '-'",
            key("name")
        )));
    }
    let target = match (section.target, section.account) {
        (Some(cap), None) => match cap.parse::<Cap>() {
            Ok(cap @ Cap::Directory(_)) if !cap.is_read_only() => Target::Cap(cap),
            _ => {
                return Err(source.bad(format!(
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
            return Err(source.bad(format!(
                "keys {} and {}: give one of them (a directory cap, or an account with an optional path)",
                key("target"),
                key("account")
            )));
        }
    };
    let patterns = section
        .ignore
        .unwrap_or_else(|| DEFAULT_IGNORE.iter().map(|p| p.to_string()).collect());
    let ignore = IgnoreRules::new(&patterns).map_err(|e| source.bad(format!("key {}: {e}", key("ignore"))))?;
    let on_delete = match section.on_delete.as_str() {
        "ignore" => OnDelete::Ignore,
        "unlink" => OnDelete::Unlink,
        other => {
            return Err(source.bad(format!(
                "key {} = {other:?}: allowed \"ignore\" or \"unlink\"",
                key("on_delete")
            )));
        }
    };
    Ok(DropFolder {
        journal: source
            .dir
            .join("private")
            .join("drop-upload")
            .join(format!("{name}.sqlite")),
        name,
        local_dir,
        target,
        ignore,
        recursive: section.recursive,
        on_delete,
        settle: std::time::Duration::from_millis(section.settle_ms),
        retry_max: std::time::Duration::from_secs(section.retry_max_secs.max(1)),
    })
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
        assert_eq!(config.journal, Some(crate::grid::commit::CommitSettings::default()));
        assert_eq!(
            config.web_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:3456")
        );
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
            ("[journal]\nmax_pending_mib = 0\n", "journal.max_pending_mib"),
            ("[journal]\nmax_file_kib = 99999\n", "journal.max_file_kib"),
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
            ("[web]\nlisten = \"0.0.0.0:3456\"\n", "web.allow_remote"),
            ("[web]\nlisten = \"nope\"\n", "web.listen"),
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
    fn encoding_errors_keep_their_texts() {
        let cases = [
            ("needed = 0", "key grid.needed = 0: allowed 1..=256"),
            (
                "needed = 5\ntotal = 4",
                "key grid.total = 4: allowed grid.needed..=256 (5..=256)",
            ),
            ("happy = 11", "key grid.happy = 11: allowed 1..=grid.total (1..=10)"),
            (
                "max_segment_size = 0",
                "key grid.max_segment_size = 0: allowed 1 or more bytes",
            ),
        ];
        for (keys, message) in cases {
            let err = parse_config(Path::new("/n"), "f", &format!("[grid]\n{keys}\n")).unwrap_err();
            assert_eq!(err.to_string(), format!("f: {message}"));
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
}
