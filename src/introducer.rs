//! Tahoe's introducer: how a node finds the grid's storage servers from an introducer fURL
//! (`private/introducers.yaml`), publishes its own storage announcement, or serves as one.
//! Pure parts: [`signed`] (announcement signatures), [`registry`] (duplicate and replay rules);
//! the rest is shell: [`client`], [`cache`], [`furls`].

pub mod cache;
pub mod client;
pub mod furls;
pub mod registry;
pub mod server;
pub mod signed;
pub mod status;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::foolscap::connection::{ConnectionError, Tub};
use crate::grid::announcement::{AnnouncementError, StorageAnnouncement, parse_announcement};

/// How long a command waits for an introducer before it goes on with the cached servers.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The tub of node directory `dir`: the certificate and key of `private/node.pem` (the same
/// identity as its storage server's), created when missing.
pub fn load_or_create_tub(dir: &Path) -> Result<Tub, ConnectionError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("private").join("node.pem");
    let io = |e: std::io::Error| ConnectionError::Identity(format!("{}: {e}", path.display()));
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pem = crate::grid::storage::http::tls::generate_identity_pem()
                .map_err(|e| ConnectionError::Identity(e.to_string()))?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(io)?;
            pem
        }
        Err(e) => return Err(io(e)),
    };
    Tub::from_pem(&pem)
}

/// The storage servers the introducer caches of node `dir` hold (what the last sessions were
/// told), with the reasons for those that cannot be used.
pub fn cached_servers(dir: &Path) -> Result<(Vec<StorageAnnouncement>, Vec<AnnouncementError>), String> {
    let introducers = furls::load(dir).map_err(|e| e.to_string())?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (petname, _) in introducers {
        let registry = cache::load(&cache::cache_path(dir, &petname), 0).map_err(|e| e.to_string())?;
        for (key, known) in registry.servers() {
            match parse_announcement(key, &cache::as_yaml(known)) {
                Ok(announcement) => usable.push(announcement),
                Err(e) => skipped.push(e),
            }
        }
    }
    Ok((usable, skipped))
}

/// Before a command uses the grid: asks each introducer of node `dir` for the storage servers
/// (a Tahoe introducer answers the subscription after sending every announcement it holds) and
/// updates its cache; an introducer that cannot be reached within [`DISCOVERY_TIMEOUT`] leaves
/// its cache as it was, so the command goes on with the servers known before.
pub async fn refresh_caches(dir: &Path) {
    let introducers = match furls::load(dir) {
        Ok(list) if list.is_empty() => return,
        Ok(list) => list,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    // A throwaway identity: with the node's own (node.pem), the introducer would drop the
    // connection `lafs run` keeps on that node for this one (Foolscap's duplicate rule).
    let tub = match crate::grid::storage::http::tls::generate_identity_pem()
        .map_err(|e| ConnectionError::Identity(e.to_string()))
        .and_then(|pem| Tub::from_pem(&pem))
    {
        Ok(tub) => tub,
        Err(e) => {
            tracing::warn!("cannot reach the introducers: {e}");
            return;
        }
    };
    for (petname, furl) in introducers {
        let client = client::IntroducerClient::new(dir, &petname, furl, "", None);
        match tokio::time::timeout(DISCOVERY_TIMEOUT, client.session(&tub, true)).await {
            Ok(Ok(())) => tracing::debug!(introducer = %petname, servers = client.state().registry.len(), "discovered"),
            Ok(Err(e)) => tracing::warn!(introducer = %petname, "using the cached servers: {e}"),
            Err(_) => {
                tracing::warn!(introducer = %petname, "using the cached servers: no answer in {DISCOVERY_TIMEOUT:?}")
            }
        }
    }
}

/// Starts a long-running client for each introducer of node `dir`, publishing `publish` (a
/// storage node's announcement) if given, until `shutdown`. Returns the clients (for status).
pub fn start_clients(
    dir: &Path,
    nickname: &str,
    publish: Option<signed::SignedAnnouncement>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Vec<Arc<client::IntroducerClient>>, String> {
    let introducers = furls::load(dir).map_err(|e| e.to_string())?;
    if introducers.is_empty() {
        return Ok(Vec::new());
    }
    let tub = Arc::new(load_or_create_tub(dir).map_err(|e| e.to_string())?);
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut clients = Vec::new();
    for (petname, furl) in introducers {
        let client = Arc::new(client::IntroducerClient::new(
            dir,
            &petname,
            furl,
            nickname,
            publish.clone(),
        ));
        tokio::spawn(client.clone().run(tub.clone(), shutdown.clone()));
        clients.push(client);
    }
    Ok(clients)
}

/// `lafs init --introducer`: turns on `[introducer]` in the node's `lafs.toml`.
pub fn enable_server(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(crate::node::CONFIG_FILE);
    let text = std::fs::read_to_string(&path)?;
    if text.lines().any(|line| line.trim() == "[introducer]") {
        return Ok(());
    }
    std::fs::write(&path, format!("{text}\n[introducer]\nenabled = true\n"))
}
