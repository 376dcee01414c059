//! The node's web face: Tahoe's web API (the protocol the `tahoe` CLI, magic-folder and scripts
//! speak) and pages a person reads in a browser, served by `lafs run` on `[web] listen`.
//!
//! # Layout
//! - [`server`]: the accept loop; security headers, cross-site refusal, the censored access log.
//! - [`routes`]: the top-level paths; [`routes_uri`]: `/uri/$CAP/path` by method and `t=`.
//! - [`walk`]: paths to caps, and the directory changes with Tahoe's `replace=` rules.
//! - [`upload`] and [`download`]: file bodies streamed into and out of the grid.
//! - [`dirops`]: mkdir, set_children, unlink, rename and relink; [`check`]: `t=check`.
//! - [`deep`] and [`operations`]: manifests, deep-check and deep-stats, streamed or by handle.
//! - [`activity`]: counters and recent operations behind `/status` and [`metrics`].
//! - [`json`], [`node_json`], [`args`], [`body`], [`errors`]: Tahoe's formats and texts.
//! - [`pages`]: the HTML pages.
//!
//! Files stream: an upload is encoded while it arrives and a download is sent a segment at a
//! time, so memory does not grow with file size. Caps never reach the log.

pub mod activity;
pub mod args;
pub mod body;
pub mod check;
pub mod deep;
pub mod dirops;
pub mod download;
pub mod errors;
pub mod forms;
pub mod json;
pub mod metrics;
pub mod node_json;
pub mod operations;
pub mod pages;
pub mod routes;
pub mod routes_uri;
pub mod server;
pub mod upload;
pub mod walk;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

pub use self::errors::WebError;
use crate::grid::Grid;
use crate::node::Node;

/// The file Tahoe's CLI reads the node's URL from.
pub const NODE_URL_FILE: &str = "node.url";
/// The local token that guards `/private/` (and that `tahoe status` sends).
pub const API_TOKEN_FILE: &str = "private/api_auth_token";

/// Why the web server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener's address could not be read.
    #[error("cannot read the web listener's address")]
    Address(#[source] std::io::Error),
    /// `node.url` or `private/api_auth_token` could not be written.
    #[error("cannot write {file}")]
    Write {
        /// which file
        file: String,
        /// the cause
        #[source]
        source: std::io::Error,
    },
}

/// What every request handler shares.
pub struct WebState {
    /// The grid files are stored on.
    pub grid: Grid,
    /// The node directory.
    pub node_dir: PathBuf,
    /// Where uploads that cannot stream are spooled (encrypted).
    pub spool_dir: PathBuf,
    /// The port the server listens on (Tahoe builds absolute redirects from it).
    pub port: u16,
    /// The `private/api_auth_token` contents.
    pub token: String,
    /// Counters and recent operations.
    pub activity: Arc<activity::Activity>,
    /// Slow operations started with an `ophandle`.
    pub operations: operations::Operations,
    /// Whether this node runs a storage server (its page then shows it).
    pub storage_server: Option<PathBuf>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Writes `node.url` and the API token, and returns the server (run it until `shutdown`).
pub fn start(
    node: &Node,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static, StartError> {
    let address = listener.local_addr().map_err(StartError::Address)?;
    let dir = &node.config.dir;
    // As Tahoe: always 127.0.0.1 for a loopback or wildcard listener.
    let host = if address.ip().is_unspecified() || address.ip().is_loopback() {
        "127.0.0.1".to_string()
    } else {
        match address.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        }
    };
    write_file(dir, NODE_URL_FILE, &format!("http://{host}:{}/\n", address.port()))?;
    let token = ensure_token(dir)?;
    let state = Arc::new(WebState {
        grid: node.grid.clone(),
        node_dir: dir.clone(),
        spool_dir: node.config.spool_dir.clone(),
        port: address.port(),
        token,
        activity: Arc::default(),
        operations: operations::Operations::default(),
        storage_server: node.config.storage_server.as_ref().map(|s| s.path.clone()),
    });
    Ok(server::serve(listener, state, shutdown))
}

fn write_file(dir: &Path, name: &str, contents: &str) -> Result<(), StartError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| StartError::Write {
        file: path.display().to_string(),
        source,
    })
}

/// The API token, made (random, mode 0600) when missing.
fn ensure_token(dir: &Path) -> Result<String, StartError> {
    let path = dir.join(API_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path)
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_string());
    }
    let token = crate::grid::base32::encode(&crate::grid::crypto::random_bytes::<32>());
    let failed = |source| StartError::Write {
        file: path.display().to_string(),
        source,
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    file.write_all(token.as_bytes()).map_err(failed)?;
    Ok(token)
}
