//! `lafs run`: opening (or first creating) the node, binding its listeners, saying what it
//! serves, and serving until Ctrl-C or SIGTERM.

use std::path::Path;

use anyhow::Context;

use super::account;
use crate::node::{self, Listeners, Node};

/// `lafs run`: creates the node when it does not exist yet, binds its listeners, and serves
/// until Ctrl-C or SIGTERM.
pub(crate) async fn run_node(
    dir: &Path,
    sftp_listen: Option<std::net::SocketAddr>,
    ftp_listen: Option<std::net::SocketAddr>,
    web_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let fresh = !dir.join(node::CONFIG_FILE).exists();
    if fresh {
        node::init(dir)?;
        eprintln!("created a new node at {} with the default config", dir.display());
    }
    let mut node = Node::open(dir)?;
    // A node made before FTPS came by default gets its self-signed certificate now.
    node::ensure_ftps_identity(&node.config)?;
    if let Some(addr) = sftp_listen {
        node.config.sftp_listen = addr;
    }
    if let Some(addr) = ftp_listen {
        node.config.ftp_listen = addr;
    }
    if let Some(addr) = web_listen {
        node.config.web_listen = Some(addr);
    }
    if fresh && !node.config.accounts_file.exists() {
        account::create_demo_account(&node).await?;
        eprintln!(
            "created the demo account (user {}, password {}) in {}; remove its line before serving anyone else",
            account::DEMO_USER,
            account::DEMO_PASSWORD,
            node.config.accounts_file.display()
        );
    }
    // A long-running node keeps RSA keys ready so new directories are quick.
    node.grid = node.grid.with_key_pool(4)?;
    let p = node.config.params;
    let where_servers = match &node.config.servers_yaml {
        Some(list) => format!("networked storage servers from {}", list.display()),
        None if crate::introducer::furls::introducers_path(dir).exists() => {
            "networked storage servers announced by its introducers".to_string()
        }
        None => format!("local storage servers under {}", node.config.storage_path.display()),
    };
    eprintln!(
        "lafs node at {}: {} {where_servers}, encoding {}-of-{} (happy {}), max segment {} bytes",
        dir.display(),
        node.grid.servers().len(),
        p.needed,
        p.total,
        p.happy,
        p.max_segment_size
    );
    for server in node.grid.servers() {
        match server.version().await {
            Ok(v) => eprintln!(
                "  {} ({}) ready, {} MiB free",
                server.id().nickname,
                server.id().short_id(),
                v.available_space >> 20
            ),
            Err(e) => eprintln!(
                "  {} ({}) not reachable now: {e}",
                server.id().nickname,
                server.id().short_id()
            ),
        }
    }
    let listeners = Listeners::bind(&node.config).await?;
    let config = node.config.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = node::serve::start(node, listeners, async move {
        let _ = stopped.await;
    })
    .await?;
    if let (Some(storage), Some(published)) = (&config.storage_server, &running.storage) {
        eprintln!(
            "storage server {} listening on {} (HTTPS), shares in {}; NURL in {}, announcement in {}",
            storage.nickname,
            published.address,
            storage.path.display(),
            published.nurl_file.display(),
            published.announcement_file.display()
        );
    }
    if let Some(address) = running.ftp {
        eprintln!(
            "ftp listening on {address}{}",
            match (&config.ftps, config.ftps_required) {
                (Some(_), true) => " (FTPS required)",
                (Some(_), false) => " (FTPS offered)",
                (None, _) => "",
            }
        );
    }
    if let Some(address) = running.sftp {
        eprintln!("sftp listening on {address}");
    }
    if let Some(address) = running.web {
        eprintln!("web API listening on http://{address}/ (node.url written)");
    }
    for folder in &config.drop_uploads {
        eprintln!("drop-upload {} watching {}", folder.name, folder.local_dir.display());
    }
    eprintln!("serving until Ctrl-C; `lafs put FILE` and `lafs get CAP` with this node directory use this grid");
    let finished = running.finish();
    tokio::pin!(finished);
    tokio::select! {
        signal = wait_for_stop_signal() => {
            signal?;
            eprintln!("stopping");
            let _ = stop.send(());
            finished.await?;
        }
        result = &mut finished => result?,
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}
