//! A storage node: its lasting identity (TLS certificate, tubid, swissnum, ed25519 server key,
//! permutation seed, in Tahoe's files), the NURL and announcement it writes, and serving Tahoe's
//! HTTP storage protocol over its share directory.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::Sha1;
use sha2::Digest;

use crate::grid::announcement::{self, OwnAnnouncement};
use crate::grid::base32;
use crate::grid::crypto::random_bytes;
use crate::grid::spki;
use crate::grid::storage::disk::DiskServer;
use crate::grid::storage::http::{server, tls};
use crate::grid::storage::lease_crawler::{ExpirationPolicy, LeaseCrawler, PREFIXES};
use crate::introducer::signed::SignedAnnouncement;

/// `[storage_server]` in `lafs.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageServerConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The host clients reach it at (default: the listen address's IP).
    pub location: Option<String>,
    /// The share directory (Tahoe's layout: `shares/<2>/<SI>/<shnum>`).
    pub path: PathBuf,
    /// The nickname it announces.
    pub nickname: String,
    /// The shortest time one lease-crawler cycle takes.
    pub lease_crawl_cycle: std::time::Duration,
    /// What the lease crawler may delete.
    pub expiration: ExpirationPolicy,
}

/// Why the storage node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StorageNodeError {
    /// A file of the identity could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// which file, doing what
        context: String,
        /// the cause
        source: std::io::Error,
    },
    /// An identity file is damaged.
    #[error("{file}: {why}")]
    BadIdentity {
        /// which file
        file: String,
        /// what is wrong
        why: String,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The share directory could not be opened.
    #[error(transparent)]
    Storage(#[from] crate::grid::storage::Error),
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StorageNodeError {
    move |source| StorageNodeError::Io { context, source }
}

/// Writes `text` to `path` through a temporary file and a rename, mode `mode`.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), StorageNodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(format!("write {}", tmp.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("rename {}", path.display())))
}

/// Reads `path`, or creates it with `make()` when it does not exist.
fn read_or_create(
    path: &Path,
    mode: u32,
    make: impl FnOnce() -> Result<String, StorageNodeError>,
) -> Result<String, StorageNodeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = make()?;
            write_atomically(path, &text, mode)?;
            Ok(text)
        }
        Err(e) => Err(io(format!("read {}", path.display()))(e)),
    }
}

/// The storage node's lasting identity.
pub struct StorageIdentity {
    /// PEM certificate and key (`private/node.pem`).
    pub tls_pem: String,
    /// The NURL pin of the certificate.
    pub spki_hash: String,
    /// Foolscap-style tubid: base32 SHA-1 of the certificate (clients derive secrets from it).
    pub tubid: String,
    /// The storage secret (`private/storage.swissnum`).
    pub swissnum: String,
    /// `v0-<base32 ed25519 public key>`.
    pub server_id: String,
    /// `permutation-seed` (base32 of the server id's key text, as Tahoe 1.20 makes it).
    pub permutation_seed_base32: String,
    /// The ed25519 seed of `private/node.privkey`: signs the announcement.
    pub signing_seed: [u8; 32],
}

impl std::fmt::Debug for StorageIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageIdentity({} tubid {})", self.server_id, self.tubid)
    }
}

impl StorageIdentity {
    /// Loads the identity of the node at `dir`, creating what is missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, StorageNodeError> {
        let private = dir.join("private");
        fs::create_dir_all(&private).map_err(io(format!("create {}", private.display())))?;
        let bad = |file: &Path, why: &str| StorageNodeError::BadIdentity {
            file: file.display().to_string(),
            why: why.to_string(),
        };
        let pem_path = private.join("node.pem");
        let tls_pem = read_or_create(&pem_path, 0o600, || Ok(tls::generate_identity_pem()?))?;
        let (certificate, _) = tls::parse_identity_pem(&tls_pem)?;
        let spki_hash = spki::certificate_spki_hash(&certificate).map_err(|e| bad(&pem_path, &e.to_string()))?;
        let tubid = base32::encode(&Sha1::digest(&certificate));
        let swissnum_path = private.join("storage.swissnum");
        let swissnum = read_or_create(&swissnum_path, 0o600, || {
            Ok(base32::encode(&random_bytes::<20>()) + "\n")
        })?
        .trim()
        .to_string();
        if swissnum.is_empty() || !swissnum.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(&swissnum_path, "the swissnum must be base32 text"));
        }
        let key_path = private.join("node.privkey");
        let key_text = read_or_create(&key_path, 0o600, || {
            Ok(format!("priv-v0-{}\n", base32::encode(&random_bytes::<32>())))
        })?;
        let seed: [u8; 32] = key_text
            .trim()
            .strip_prefix("priv-v0-")
            .and_then(base32::decode_array)
            .ok_or_else(|| bad(&key_path, "not priv-v0-<base32 ed25519 seed>"))?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let key_b32 = base32::encode(&public);
        let seed_path = dir.join("permutation-seed");
        let permutation_seed_base32 =
            read_or_create(&seed_path, 0o644, || Ok(base32::encode(key_b32.as_bytes()) + "\n"))?
                .trim()
                .to_string();
        if base32::decode(&permutation_seed_base32).is_none() {
            return Err(bad(&seed_path, "not base32"));
        }
        write_atomically(&dir.join("node.pubkey"), &format!("pub-v0-{key_b32}\n"), 0o644)?;
        write_atomically(&dir.join("my_nodeid"), &format!("{tubid}\n"), 0o644)?;
        Ok(StorageIdentity {
            tls_pem,
            spki_hash,
            tubid,
            swissnum,
            server_id: format!("v0-{key_b32}"),
            permutation_seed_base32,
            signing_seed: seed,
        })
    }

    /// The NURL for `host:port`.
    pub fn nurl(&self, host: &str, port: u16) -> String {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("pb://{}@{host}:{port}/{}#v=1", self.spki_hash, self.swissnum)
    }

    /// The Foolscap-style fURL for `host:port` (announced so Tahoe clients learn the tubid).
    pub fn furl(&self, host: &str, port: u16) -> String {
        format!("pb://{}@tcp:{host}:{port}/{}", self.tubid, self.swissnum)
    }
}

/// Where a running storage node wrote its NURL and announcement.
#[derive(Debug, Clone)]
pub struct Published {
    /// The address it listens on.
    pub address: SocketAddr,
    /// `private/storage.nurl`.
    pub nurl_file: PathBuf,
    /// `private/storage-announcement.yaml`: a `servers.yaml` with this one server.
    pub announcement_file: PathBuf,
    /// The same announcement signed with the node's key, for introducers.
    pub signed: SignedAnnouncement,
}

/// Opens the share directory, writes the NURL and announcement for `listener`'s address, and
/// returns the future that serves until `shutdown`.
pub fn start(
    dir: &Path,
    config: &StorageServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(Published, impl std::future::Future<Output = ()> + Send + 'static), StorageNodeError> {
    let identity = StorageIdentity::load_or_create(dir)?;
    let address = listener
        .local_addr()
        .map_err(io("read the storage listener's address".into()))?;
    let host = config.location.clone().unwrap_or_else(|| address.ip().to_string());
    let backend = Arc::new(DiskServer::open(&config.path, config.nickname.clone())?);
    let crawler = LeaseCrawler::new(&backend, config.expiration);
    let (certificate, key) = tls::parse_identity_pem(&identity.tls_pem)?;
    let tls_config = Arc::new(tls::server_config(certificate, key)?);
    let service = Arc::new(server::StorageService::new(backend, &identity.swissnum));

    let private = dir.join("private");
    let nurl = identity.nurl(&host, address.port());
    let furl = identity.furl(&host, address.port());
    let nurl_file = private.join("storage.nurl");
    write_atomically(&nurl_file, &format!("{nurl}\n"), 0o600)?;
    write_atomically(&private.join("storage.furl"), &format!("{furl}\n"), 0o600)?;
    let seqnum = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let nonce = base32::encode(&random_bytes::<32>());
    let yaml = announcement::servers_yaml_entry(&OwnAnnouncement {
        server_id: &identity.server_id,
        nickname: &config.nickname,
        furl: &furl,
        nurl: &nurl,
        permutation_seed_base32: &identity.permutation_seed_base32,
        seqnum,
        nonce: &nonce,
    });
    let signed = SignedAnnouncement::sign(
        &introducer_announcement(&identity, &config.nickname, &furl, &nurl, seqnum, &nonce),
        &identity.signing_seed,
    );
    let announcement_file = private.join("storage-announcement.yaml");
    write_atomically(&announcement_file, &yaml, 0o600)?;
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let crawling = run_lease_crawler(crawler, config.lease_crawl_cycle, shutdown.clone());
    let serving = async move {
        tokio::join!(server::serve(listener, tls_config, service, shutdown), crawling);
    };
    Ok((
        Published {
            address,
            nurl_file,
            announcement_file,
            signed,
        },
        serving,
    ))
}

/// The announcement dict in the keys (and order) Tahoe 1.20 publishes (section 5.3).
fn introducer_announcement(
    identity: &StorageIdentity,
    nickname: &str,
    furl: &str,
    nurl: &str,
    seqnum: u64,
    nonce: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(ann) = serde_json::json!({
        "version": 0,
        "nickname": nickname,
        "app-versions": [],
        "my-version": format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION")),
        "oldest-supported": "1.0.0",
        "service-name": "storage",
        "permutation-seed-base32": identity.permutation_seed_base32,
        "anonymous-storage-NURLs": [nurl],
        "anonymous-storage-FURL": furl,
        "seqnum": seqnum,
        "nonce": nonce,
    }) else {
        return serde_json::Map::new();
    };
    ann
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the lease crawler until `shutdown`: one prefix directory at a time off the runtime,
/// its state saved after each, paced to use at most 10% of a core and to spread a cycle
/// over at least `cycle`.
async fn run_lease_crawler(
    crawler: LeaseCrawler,
    cycle: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use std::time::{Duration, Instant};
    tokio::pin!(shutdown);
    // Tahoe waits 6 minutes after start before crawling; a short cycle (tests) waits less.
    let start_delay = cycle.min(Duration::from_secs(360));
    let per_prefix = cycle / PREFIXES as u32;
    let mut state = crawler.load_state();
    let mut delay = start_delay;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let began = Instant::now();
        let job = {
            let (crawler, mut state) = (crawler.clone(), state.clone());
            tokio::task::spawn_blocking(move || {
                let finished = crawler.step(&mut state, unix_now());
                let saved = crawler.save_state(&state);
                (state, finished, saved)
            })
        };
        let Ok((next, finished, saved)) = job.await else {
            tracing::warn!("lease crawler step failed; stopping the crawler");
            return;
        };
        state = next;
        if let Err(e) = saved {
            tracing::warn!("lease crawler cannot save its state: {e}");
        }
        if finished && let Some(counts) = &state.last_cycle {
            tracing::info!(
                cycle = state.cycle,
                shares = counts.shares,
                leased = counts.leased,
                expired = counts.expired,
                deleted = counts.deleted,
                bytes_deleted = counts.bytes_deleted,
                unreadable = counts.unreadable,
                "lease crawl cycle finished"
            );
        }
        delay = (began.elapsed() * 9).max(per_prefix);
    }
}
