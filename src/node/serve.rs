//! Serving a node: every service `lafs run` starts (the storage server, FTP, SFTP and the
//! drop-upload folders), from listeners bound beforehand, until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::config::NodeConfig;
use super::open::Node;
use super::secrets::read_host_key;
use super::storage_node::{self, Published, StorageNodeError};
use crate::frontends::accounts::AccountsFile;
use crate::frontends::drop_upload::{self, DropUploadError};
use crate::frontends::throttle::LoginThrottle;
use crate::frontends::{ftp, sftp};

/// How long a failed SSH login waits before its answer (as OpenSSH; slows password guessing).
const AUTH_REJECTION_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// The commit journal's directory, in the node directory.
pub const JOURNAL_DIR: &str = "private/journal";
/// How long a clean shutdown waits for acknowledged links to be published.
const SHUTDOWN_PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a node could not serve, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("cannot listen for {service} on {address}")]
    Listen {
        /// `SFTP`, `FTP` or `storage`
        service: &'static str,
        /// the address from the config
        address: SocketAddr,
        /// the cause
        #[source]
        source: std::io::Error,
    },
    /// The config enables a service but [`Listeners`] has no listener for it.
    #[error("{service} is enabled in the config but has no listener")]
    NoListener {
        /// `SFTP`, `FTP` or `storage`
        service: &'static str,
    },
    /// A listener's own address could not be read.
    #[error("cannot read the {service} listener's address")]
    Address {
        /// `SFTP`, `FTP` or `storage`
        service: &'static str,
        /// the cause
        #[source]
        source: std::io::Error,
    },
    /// A node file (the SSH host key) is missing or malformed.
    #[error(transparent)]
    Node(#[from] super::error::Error),
    /// The storage server could not start.
    #[error(transparent)]
    StorageNode(#[from] StorageNodeError),
    /// The FTP server failed.
    #[error("ftp server")]
    Ftp(#[source] std::io::Error),
    /// The SFTP server failed.
    #[error("sftp server")]
    Sftp(#[source] std::io::Error),
    /// The web server could not start.
    #[error(transparent)]
    Web(#[from] crate::web::StartError),
    /// A drop-upload folder could not be served.
    #[error("drop-upload")]
    DropUpload(#[source] DropUploadError),
    /// The commit journal could not be opened.
    #[error(transparent)]
    Journal(#[from] crate::grid::commit::journal::JournalError),
    /// The introducer could not start.
    #[error(transparent)]
    Introducer(#[from] crate::introducer::server::ServerError),
    /// A service's task panicked.
    #[error("a service panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// The bound listeners of a node's services: one for each service its config enables.
#[derive(Debug, Default)]
pub struct Listeners {
    /// SFTP (`[frontends] sftp`).
    pub sftp: Option<TcpListener>,
    /// FTP (`[frontends] ftp`).
    pub ftp: Option<TcpListener>,
    /// The storage server (`[storage_server] enabled`).
    pub storage: Option<TcpListener>,
    /// The introducer (`[introducer] enabled`).
    pub introducer: Option<TcpListener>,
    /// The web API and pages (`[web] enabled`).
    pub web: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses `config` names, for each service it enables.
    pub async fn bind(config: &NodeConfig) -> Result<Listeners, ServeError> {
        Self::bind_each(config, |configured| configured).await
    }

    /// Binds a free port on 127.0.0.1 for each service `config` enables (for tests: read the
    /// ports from the listeners before serving).
    pub async fn loopback(config: &NodeConfig) -> Result<Listeners, ServeError> {
        Self::bind_each(config, |_| SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn bind_each(config: &NodeConfig, choose: impl Fn(SocketAddr) -> SocketAddr) -> Result<Self, ServeError> {
        let bind = |service: &'static str, configured: SocketAddr| {
            let address = choose(configured);
            async move {
                TcpListener::bind(address).await.map_err(|source| ServeError::Listen {
                    service,
                    address,
                    source,
                })
            }
        };
        let mut listeners = Listeners::default();
        // In the order `lafs run` has always bound them, so the same address fails first.
        if let Some(storage) = &config.storage_server {
            listeners.storage = Some(bind("storage", storage.listen).await?);
        }
        if config.ftp {
            listeners.ftp = Some(bind("FTP", config.ftp_listen).await?);
        }
        if let Some(introducer) = &config.introducer {
            listeners.introducer = Some(bind("introducer", introducer.listen).await?);
        }
        if config.sftp {
            listeners.sftp = Some(bind("SFTP", config.sftp_listen).await?);
        }
        if let Some(web) = config.web_listen {
            listeners.web = Some(bind("web", web).await?);
        }
        Ok(listeners)
    }
}

/// A node whose services have started: where they listen, and the wait for their end.
pub struct Running {
    /// The storage server's address and the NURL and announcement files it wrote, if it runs.
    pub storage: Option<Published>,
    /// The FTP server's address, if it runs.
    pub ftp: Option<SocketAddr>,
    /// The SFTP server's address, if it runs.
    pub sftp: Option<SocketAddr>,
    /// The introducer's fURL, if it serves one.
    pub introducer: Option<crate::foolscap::furl::Furl>,
    /// The web server's address, if it runs.
    pub web: Option<SocketAddr>,
    services: JoinSet<Result<(), ServeError>>,
    grid: crate::grid::Grid,
    stop: tokio::sync::watch::Sender<bool>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("storage", &self.storage)
            .field("ftp", &self.ftp)
            .field("sftp", &self.sftp)
            .field("web", &self.web)
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

/// Serves `node` on `listeners` until `shutdown` completes (then stops every service and waits
/// for them) or a service fails (then returns its error, dropping the others).
pub async fn serve(
    node: Node,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    start(node, listeners, shutdown).await?.finish().await
}

/// Starts every service of `node` on `listeners`, as [`serve`] does, and returns once they run.
pub async fn start(
    node: Node,
    mut listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let config = &node.config;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_requested = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    };
    let take = |listener: &mut Option<TcpListener>, service: &'static str| {
        let listener = listener.take().ok_or(ServeError::NoListener { service })?;
        let address = listener
            .local_addr()
            .map_err(|source| ServeError::Address { service, source })?;
        Ok::<_, ServeError>((listener, address))
    };
    let mut services = JoinSet::new();
    let mut running_storage = None;
    if let Some(storage) = &config.storage_server {
        let (listener, _) = take(&mut listeners.storage, "storage")?;
        let (published, serving) = storage_node::start(&config.dir, storage, listener, stop_requested())?;
        running_storage = Some(published);
        services.spawn(async move {
            serving.await;
            Ok(())
        });
    }
    let mut running_introducer = None;
    if let Some(introducer) = &config.introducer {
        let (listener, _) = take(&mut listeners.introducer, "introducer")?;
        let (furl, serving) = crate::introducer::server::start(&config.dir, introducer, listener, stop_requested())?;
        running_introducer = Some(furl);
        services.spawn(async move {
            serving.await;
            Ok(())
        });
    }
    // Introducers: keep their caches current and publish our storage announcement to them.
    let nickname = config.storage_server.as_ref().map_or("", |s| s.nickname.as_str());
    let publish = running_storage.as_ref().map(|p: &Published| p.signed.clone());
    if let Err(e) = crate::introducer::start_clients(&config.dir, nickname, publish, stop_requested()) {
        tracing::warn!("introducers: {e}");
    }
    node.grid.directory_cache().set_ttl(config.directory_cache);
    if let Some(settings) = config.journal {
        // Before any frontend serves: replayed links are visible to their first reads.
        node.grid.start_commit_queue(&config.dir.join(JOURNAL_DIR), settings)?;
    }
    let accounts = Arc::new(AccountsFile::new(&config.accounts_file));
    let throttle = Arc::new(LoginThrottle::default());
    let mut running_ftp = None;
    if config.ftp {
        let (listener, address) = take(&mut listeners.ftp, "FTP")?;
        let settings = ftp::FtpSettings {
            accounts: accounts.clone(),
            throttle: throttle.clone(),
            spool_dir: config.spool_dir.clone(),
            passive_ports: config.ftp_passive_ports.clone(),
            ftps: config.ftps.clone(),
            ftps_required: config.ftps_required,
            limits: config.session_limits,
        };
        let serving = ftp::serve(listener, node.grid.clone(), settings, stop_requested());
        services.spawn(async move { serving.await.map_err(ServeError::Ftp) });
        running_ftp = Some(address);
    }
    let mut running_sftp = None;
    if config.sftp {
        let (listener, address) = take(&mut listeners.sftp, "SFTP")?;
        let settings = sftp::SftpSettings {
            host_key: read_host_key(&config.ssh_host_key)?,
            accounts: accounts.clone(),
            throttle: throttle.clone(),
            spool_dir: config.spool_dir.clone(),
            auth_rejection_time: AUTH_REJECTION_TIME,
            limits: config.session_limits,
        };
        let serving = sftp::serve(listener, node.grid.clone(), settings, stop_requested());
        services.spawn(async move { serving.await.map_err(ServeError::Sftp) });
        running_sftp = Some(address);
    }
    let mut running_web = None;
    if config.web_listen.is_some() {
        let (listener, address) = take(&mut listeners.web, "web")?;
        let serving = crate::web::start(&node, listener, stop_requested())?;
        services.spawn(async move {
            serving.await;
            Ok(())
        });
        running_web = Some(address);
    }
    for folder in config.drop_uploads.clone() {
        let watching = drop_upload::run(folder, node.grid.clone(), accounts.clone(), stop_requested());
        services.spawn(async move { watching.await.map_err(ServeError::DropUpload) });
    }
    Ok(Running {
        storage: running_storage,
        ftp: running_ftp,
        sftp: running_sftp,
        introducer: running_introducer,
        web: running_web,
        services,
        grid: node.grid.clone(),
        stop,
        shutdown: Box::pin(shutdown),
    })
}

impl Running {
    /// Waits for the shutdown signal (or for a service to end), then stops every service and
    /// waits for them. A service's error is returned at once; the others are dropped.
    pub async fn finish(mut self) -> Result<(), ServeError> {
        tokio::select! {
            () = &mut self.shutdown => {}
            Some(joined) = self.services.join_next() => joined.map_err(ServeError::Panicked)??,
        }
        let _ = self.stop.send(true);
        while let Some(joined) = self.services.join_next().await {
            joined.map_err(ServeError::Panicked)??;
        }
        let left = self.grid.stop_commit_queue(SHUTDOWN_PUBLISH_WAIT).await;
        if left > 0 {
            tracing::warn!("{left} acknowledged links not yet published: the journal keeps them for the next start");
        }
        Ok(())
    }
}
