//! The `lafs` command line: init, run, put, get, check and debug commands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;

use crate::grid::immutable::layout::ShareLayout;
use crate::grid::immutable::ueb::UriExtension;
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::storage::{immutable_container, mutable_container};
use crate::grid::uri::Cap;
use crate::grid::{base32, immutable::check::ShareHealth};
use crate::node::{self, Node};

mod account;
use account::AccountCommand;

/// Store files on a Tahoe-LAFS grid.
#[derive(Debug, Parser)]
#[command(name = "lafs", version)]
pub struct Cli {
    /// The node directory (default: $LAFS_NODE_DIR, else ~/.lafs).
    #[arg(long, global = true, env = "LAFS_NODE_DIR")]
    pub node_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node directory with the default config and fresh secrets.
    Init {
        /// Where (default: the node directory).
        dir: Option<PathBuf>,
    },
    /// Start the node (creating it with defaults and a demo account if it does not exist yet).
    Run {
        /// Listen for SFTP here instead of the config's `sftp_listen` (port 0: any free port).
        #[arg(long)]
        sftp_listen: Option<std::net::SocketAddr>,
        /// Listen for FTP here instead of the config's `ftp_listen` (port 0: any free port).
        #[arg(long)]
        ftp_listen: Option<std::net::SocketAddr>,
    },
    /// Upload a file; prints its cap, and links it at PATH (`alias:path`) when given.
    Put {
        /// The file to upload.
        file: PathBuf,
        /// Where to link it (`alias:dir/name`); an existing file there is replaced.
        path: Option<String>,
        /// Use a random key instead of the convergent one.
        #[arg(long)]
        random_key: bool,
    },
    /// Download a file by cap or by path (`alias:dir/name`), to OUT or standard output.
    Get {
        /// The file's cap, or its path.
        cap: String,
        /// Where to write it (default: standard output).
        out: Option<PathBuf>,
    },
    /// Create a directory at PATH (`alias:dir/name`).
    Mkdir {
        /// The new directory's path.
        path: String,
    },
    /// List a directory (default: the root of the default alias).
    Ls {
        /// Show kind, size and modification time.
        #[arg(short = 'l')]
        long: bool,
        /// The directory's path.
        path: Option<String>,
    },
    /// Move (rename) an entry; an existing target is replaced.
    Mv {
        /// What to move.
        from: String,
        /// Where to (under the same alias).
        to: String,
    },
    /// Remove a file, or an empty directory.
    Rm {
        /// What to remove.
        path: String,
    },
    /// Name directory caps, Tahoe style (`private/aliases`), for `alias:path` arguments.
    Alias {
        /// Which alias command.
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Show each share of a file, its server and its health.
    Check {
        /// The file's cap.
        cap: String,
        /// Read and verify every block, not just the share headers.
        #[arg(long)]
        verify: bool,
        /// Re-create missing shares (the file is downloaded, verified and re-encoded).
        #[arg(long)]
        repair: bool,
    },
    /// Manage the logins SFTP and FTP accept (the accounts file).
    Account {
        /// Which account command.
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Watched folders (`[[drop_upload]]` in lafs.toml).
    DropUpload {
        /// Which drop-upload command.
        #[command(subcommand)]
        command: DropUploadCommand,
    },
    /// Tools for looking inside the grid.
    Debug {
        /// Which tool.
        #[command(subcommand)]
        command: DebugCommand,
    },
}

/// Alias subcommands.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create a new empty directory and name it.
    Create {
        /// The alias name.
        name: String,
    },
    /// Name an existing directory cap.
    Add {
        /// The alias name.
        name: String,
        /// The directory cap.
        cap: String,
    },
    /// List the aliases (names only: the caps are secrets).
    List,
}

/// Drop-upload subcommands.
#[derive(Debug, Subcommand)]
pub enum DropUploadCommand {
    /// List each watched folder's files: pending, uploading, done and failed (with the reason).
    Status,
}

/// Debugging subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the container, layout and URI extension block of a share file.
    DumpShare {
        /// Path to the share file.
        path: PathBuf,
    },
}

fn default_node_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".lafs"), |home| PathBuf::from(home).join(".lafs"))
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let node_dir = cli.node_dir.clone().unwrap_or_else(default_node_dir);
    match cli.command {
        Command::Init { dir } => {
            let dir = dir.unwrap_or(node_dir);
            node::init(&dir)?;
            println!("node initialized at {}", dir.display());
            Ok(())
        }
        Command::Run {
            sftp_listen,
            ftp_listen,
        } => run_node(&node_dir, sftp_listen, ftp_listen).await,
        Command::Put { file, path, random_key } => put(&node_dir, &file, path.as_deref(), random_key).await,
        Command::Get { cap, out } => get(&node_dir, &cap, out.as_deref()).await,
        Command::Mkdir { path } => {
            let (_, vfs, path) = open_path(&node_dir, &path)?;
            vfs.mkdir(path.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))
        }
        Command::Ls { long, path } => ls(&node_dir, path.as_deref().unwrap_or(""), long).await,
        Command::Mv { from, to } => mv(&node_dir, &from, &to).await,
        Command::Rm { path } => rm(&node_dir, &path).await,
        Command::Alias { command } => alias(&node_dir, command).await,
        Command::Check { cap, verify, repair } => check(&node_dir, &cap, verify, repair).await,
        Command::Account { command } => account::account(&node_dir, command).await,
        Command::DropUpload {
            command: DropUploadCommand::Status,
        } => drop_upload_status(&node_dir),
        Command::Debug {
            command: DebugCommand::DumpShare { path },
        } => dump_share(&path),
    }
}

fn drop_upload_status(dir: &Path) -> anyhow::Result<()> {
    let config = node::load_config(dir)?;
    if config.drop_uploads.is_empty() {
        println!(
            "no [[drop_upload]] folders in {}",
            dir.join(node::CONFIG_FILE).display()
        );
    }
    for folder in &config.drop_uploads {
        if !folder.journal.exists() {
            println!("{}: not started yet ({})", folder.name, folder.local_dir.display());
            continue;
        }
        let journal = crate::frontends::drop_upload::Journal::open_read_only(&folder.journal)?;
        print!(
            "{}",
            crate::frontends::drop_upload::status_report(&folder.name, &journal)?
        );
    }
    Ok(())
}

fn parse_cap(text: &str) -> anyhow::Result<Cap> {
    // The error never repeats the text: it may be a valid cap with a typo.
    Cap::parse(text).map_err(|e| anyhow::anyhow!("bad cap: {e}"))
}

fn progress_bar(len: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}") {
        bar.set_style(style);
    }
    Some(bar)
}

async fn run_node(
    dir: &Path,
    sftp_listen: Option<std::net::SocketAddr>,
    ftp_listen: Option<std::net::SocketAddr>,
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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut services = tokio::task::JoinSet::new();
    if let Some(storage) = &node.config.storage_server {
        let listener = tokio::net::TcpListener::bind(storage.listen)
            .await
            .with_context(|| format!("cannot listen for storage on {}", storage.listen))?;
        let (published, serving) = crate::storage_node::start(dir, storage, listener, stop_requested(&stopped))?;
        eprintln!(
            "storage server {} listening on {} (HTTPS), shares in {}; NURL in {}, announcement in {}",
            storage.nickname,
            published.address,
            storage.path.display(),
            published.nurl_file.display(),
            published.announcement_file.display()
        );
        services.spawn(async move {
            serving.await;
            Ok(())
        });
    }
    let accounts = Arc::new(crate::frontends::accounts::AccountsFile::new(
        &node.config.accounts_file,
    ));
    let throttle = Arc::new(crate::frontends::throttle::LoginThrottle::default());
    if node.config.ftp {
        let listener = tokio::net::TcpListener::bind(node.config.ftp_listen)
            .await
            .with_context(|| format!("cannot listen for FTP on {}", node.config.ftp_listen))?;
        let settings = crate::frontends::ftp::FtpSettings {
            accounts: accounts.clone(),
            throttle: throttle.clone(),
            spool_dir: node.config.spool_dir.clone(),
            passive_ports: node.config.ftp_passive_ports.clone(),
            ftps: node.config.ftps.clone(),
            ftps_required: node.config.ftps_required,
            limits: node.config.session_limits,
        };
        eprintln!(
            "ftp listening on {}{}",
            listener.local_addr()?,
            match (&settings.ftps, settings.ftps_required) {
                (Some(_), true) => " (FTPS required)",
                (Some(_), false) => " (FTPS offered)",
                (None, _) => "",
            }
        );
        let serving = crate::frontends::ftp::serve(listener, node.grid.clone(), settings, stop_requested(&stopped));
        services.spawn(async move { serving.await.context("ftp server") });
    }
    if node.config.sftp {
        let listener = tokio::net::TcpListener::bind(node.config.sftp_listen)
            .await
            .with_context(|| format!("cannot listen for SFTP on {}", node.config.sftp_listen))?;
        let settings = crate::frontends::sftp::SftpSettings {
            host_key: node::read_host_key(&node.config.ssh_host_key)?,
            accounts: accounts.clone(),
            throttle: throttle.clone(),
            spool_dir: node.config.spool_dir.clone(),
            auth_rejection_time: std::time::Duration::from_secs(1),
            limits: node.config.session_limits,
        };
        eprintln!("sftp listening on {}", listener.local_addr()?);
        let serving = crate::frontends::sftp::serve(listener, node.grid.clone(), settings, stop_requested(&stopped));
        services.spawn(async move { serving.await.context("sftp server") });
    }
    for folder in node.config.drop_uploads.clone() {
        eprintln!("drop-upload {} watching {}", folder.name, folder.local_dir.display());
        let watching =
            crate::frontends::drop_upload::run(folder, node.grid.clone(), accounts.clone(), stop_requested(&stopped));
        services.spawn(async move { watching.await.context("drop-upload") });
    }
    eprintln!("serving until Ctrl-C; `lafs put FILE` and `lafs get CAP` with this node directory use this grid");
    tokio::select! {
        signal = wait_for_stop_signal() => signal?,
        Some(result) = services.join_next() => {
            result.context("a service panicked")??;
        }
    }
    eprintln!("stopping");
    let _ = stop.send(true);
    while let Some(result) = services.join_next().await {
        result.context("a service panicked")??;
    }
    Ok(())
}

/// Completes once `stop` says true: the shutdown signal each server takes.
fn stop_requested(stop: &tokio::sync::watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

async fn put(dir: &Path, file: &Path, target: Option<&str>, random_key: bool) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    let source = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let meta = source
        .metadata()
        .with_context(|| format!("cannot stat {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", file.display());
    }
    let size = meta.len();
    let bar = progress_bar(size);
    let progress = bar
        .clone()
        .map(|b| Arc::new(move |done: u64| b.set_position(done)) as crate::grid::immutable::upload::Progress);
    let key = if random_key {
        KeyChoice::Random
    } else {
        KeyChoice::Convergent
    };
    let cap = node.grid.upload(source, size, key, progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(target) = target {
        let (_, vfs, path) = open_path(dir, target)?;
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent.to_string(), name.to_string()),
            None => (String::new(), path.clone()),
        };
        let dircap = vfs
            .cap_of(parent.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("{parent}: {e}"))?;
        let name = crate::vfs::check_name(name.as_bytes()).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        node.grid
            .link(&dircap, &name, &cap, true, serde_json::Map::new())
            .await
            .map_err(|e| anyhow::anyhow!("{path}: {}", crate::vfs::Error::from(e)))?;
    }
    println!("{cap}");
    Ok(())
}

/// Splits `alias:path`, `URI:DIR2…/path` or a plain path (under the default alias) into a vfs and a path.
fn open_path(dir: &Path, text: &str) -> anyhow::Result<(Node, crate::vfs::Vfs, String)> {
    let node = Node::open(dir)?;
    let (root, path) = if text.starts_with("URI:") {
        let (cap, path) = text.split_once('/').unwrap_or((text, ""));
        (parse_cap(cap)?, path.to_string())
    } else {
        let (alias, path) = text.split_once(':').unwrap_or((node::DEFAULT_ALIAS, text));
        let aliases = node::read_aliases(dir)?;
        let cap = aliases
            .get(alias)
            .with_context(|| format!("no alias {alias:?} (make one with `lafs alias create {alias}`)"))?;
        (parse_cap(cap)?, path.to_string())
    };
    if !matches!(root, Cap::Directory(_)) {
        bail!("{} is not a directory cap", root.kind());
    }
    let vfs = crate::vfs::Vfs::new(node.grid.clone(), root);
    Ok((node, vfs, path))
}

async fn ls(dir: &Path, target: &str, long: bool) -> anyhow::Result<()> {
    let (_, vfs, path) = open_path(dir, target)?;
    let entries = vfs
        .list(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    for (name, stat) in entries {
        if long {
            let kind = if stat.kind == crate::vfs::Kind::Directory {
                'd'
            } else {
                '-'
            };
            let mode = if stat.read_only { "r--" } else { "rw-" };
            let mtime = stat.mtime.map_or_else(|| "-".to_string(), |t| format!("{t:.0}"));
            println!("{kind}{mode} {:>12} {:>11} {name}", stat.size, mtime);
        } else {
            println!("{name}");
        }
    }
    Ok(())
}

async fn mv(dir: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    let alias_of = |t: &str| t.split_once(':').map(|(a, _)| a.to_string());
    if alias_of(from) != alias_of(to) {
        bail!("mv works within one alias; copy with get and put across aliases");
    }
    let (_, vfs, from_path) = open_path(dir, from)?;
    let (_, _, to_path) = open_path(dir, to)?;
    vfs.rename(from_path.as_bytes(), to_path.as_bytes(), true)
        .await
        .map_err(|e| anyhow::anyhow!("{from} -> {to}: {e}"))
}

async fn rm(dir: &Path, target: &str) -> anyhow::Result<()> {
    let (_, vfs, path) = open_path(dir, target)?;
    let stat = vfs
        .stat(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    let result = if stat.kind == crate::vfs::Kind::Directory {
        vfs.rmdir(path.as_bytes()).await
    } else {
        vfs.remove(path.as_bytes()).await
    };
    result.map_err(|e| anyhow::anyhow!("{target}: {e}"))
}

async fn alias(dir: &Path, command: AliasCommand) -> anyhow::Result<()> {
    match command {
        AliasCommand::Create { name } => {
            let node = Node::open(dir)?;
            if node::read_aliases(dir)?.contains_key(&name) {
                bail!("alias {name:?} already exists");
            }
            let cap = node.grid.create_directory().await?;
            node::add_alias(dir, &name, &cap.to_string())?;
            println!("alias {name} created");
        }
        AliasCommand::Add { name, cap } => {
            if !matches!(parse_cap(&cap)?, Cap::Directory(_)) {
                bail!("an alias must name a directory cap");
            }
            node::add_alias(dir, &name, &cap)?;
            println!("alias {name} added");
        }
        AliasCommand::List => {
            for (name, cap) in node::read_aliases(dir)? {
                let kind = Cap::parse(&cap).map(|c| c.kind()).unwrap_or("invalid");
                println!("{name}: {kind}");
            }
        }
    }
    Ok(())
}

async fn get(dir: &Path, cap_text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let cap = if cap_text.starts_with("URI:") && !cap_text.contains('/') {
        parse_cap(cap_text)?
    } else {
        let (_, vfs, path) = open_path(dir, cap_text)?;
        vfs.cap_of(path.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("{cap_text}: {e}"))?
    };
    let chk = match cap {
        Cap::Literal(lit) => {
            return write_output(out, &lit.data).await;
        }
        Cap::Chk(chk) => chk,
        Cap::Mutable(mutable) => {
            // Mutable files (SDMF, MDMF) are read whole: Tahoe keeps them small.
            let node = Node::open(dir)?;
            let data = node.grid.read_mutable(&mutable).await?;
            return write_output(out, &data).await;
        }
        other => bail!("{} caps cannot be downloaded as files", other.kind()),
    };
    let node = Node::open(dir)?;
    let mut reader = node.grid.open_file(&chk).await?;
    let bar = progress_bar(reader.size());
    let progress = bar.clone().map(|b| move |done: u64| b.set_position(done));
    let progress_ref = progress.as_ref().map(|p| p as &(dyn Fn(u64) + Send + Sync));
    match out {
        Some(path) => {
            // Write beside the target and rename, so a failed download never leaves a partial file under its name.
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".lafs-partial");
            let tmp = PathBuf::from(tmp);
            let file = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
            if let Err(e) = reader.write_to(&mut writer, progress_ref).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e.into());
            }
            writer.flush().await.context("write download")?;
            drop(writer);
            tokio::fs::rename(&tmp, path)
                .await
                .with_context(|| format!("cannot rename to {}", path.display()))?;
        }
        None => {
            let mut stdout = tokio::io::stdout();
            reader.write_to(&mut stdout, progress_ref).await?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

async fn write_output(out: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => tokio::fs::write(path, data)
            .await
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            let mut stdout = tokio::io::stdout();
            stdout.write_all(data).await?;
            stdout.flush().await.context("write to standard output")
        }
    }
}

async fn check(dir: &Path, cap_text: &str, verify: bool, repair: bool) -> anyhow::Result<()> {
    let cap = match parse_cap(cap_text)? {
        Cap::Directory(inner) => *inner,
        other => other,
    };
    let chk = match cap {
        Cap::Literal(_) => {
            println!("LIT file: its data is in the cap itself; nothing on the grid to check");
            return Ok(());
        }
        Cap::Chk(chk) => chk,
        Cap::Mutable(mutable) => return check_mutable(dir, &mutable, repair).await,
        other => bail!("checking {} caps is not supported yet", other.kind()),
    };
    let node = Node::open(dir)?;
    println!("storage index {}", chk.storage_index());
    println!("{}-of-{} encoding, {} bytes", chk.needed, chk.total, chk.size);
    if repair {
        let repaired = node.grid.repair(&chk, &node.config.spool_dir, verify).await?;
        print_check(&repaired.before);
        if repaired.before.is_healthy() {
            println!("repair: not needed");
            return Ok(());
        }
        if !repaired.before.is_recoverable() {
            bail!(
                "file is unrecoverable: {} shares needed, {} good found",
                repaired.before.needed,
                repaired.before.good_shares()
            );
        }
        if repaired.repaired {
            println!("repair: re-created shares; after repair:");
        } else {
            println!("repair: no server could take the missing shares; after repair:");
        }
        print_check(&repaired.after);
        if !repaired.after.is_healthy() {
            bail!(
                "repair incomplete: {} of {} shares good (too few servers could take the rest)",
                repaired.after.good_shares(),
                repaired.after.total
            );
        }
        return Ok(());
    }
    let report = node.grid.check(&chk, verify).await?;
    print_check(&report);
    if !report.is_recoverable() {
        bail!(
            "file is unrecoverable: {} shares needed, {} good found",
            report.needed,
            report.good_shares()
        );
    }
    Ok(())
}

/// Checks (and with `repair` republishes) a mutable file or directory.
async fn check_mutable(dir: &Path, cap: &crate::grid::uri::MutableCap, repair: bool) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    println!("storage index {}", cap.storage_index());
    let print = |h: &crate::grid::immutable::repair::MutableHealth| {
        for (share, server) in &h.shares {
            println!("  share {share:>3} on {server:<12} good (version {})", h.seqnum);
        }
        if h.other_versions > 0 {
            println!("  {} shares of other versions", h.other_versions);
        }
        println!(
            "{} of {} shares good ({} needed), version {}: {}",
            h.shares.len(),
            h.total,
            h.needed,
            h.seqnum,
            if h.is_healthy() {
                "healthy"
            } else {
                "not healthy but recoverable"
            }
        );
    };
    if !repair {
        print(&node.grid.check_mutable(cap).await?);
        return Ok(());
    }
    let (before, after) = node.grid.repair_mutable(cap).await.map_err(|e| match e {
        crate::grid::Error::ReadOnly => anyhow::anyhow!("repairing a mutable file needs its write cap"),
        other => other.into(),
    })?;
    print(&before);
    if before.is_healthy() {
        println!("repair: not needed");
        return Ok(());
    }
    if after.shares.len() > before.shares.len() {
        println!("repair: republished, shares re-created; after repair:");
    } else {
        println!("repair: republished; no server could take the missing shares; after repair:");
    }
    print(&after);
    if after.shares.len() < after.total {
        bail!(
            "repair incomplete: {} of {} shares good (too few servers could take the rest)",
            after.shares.len(),
            after.total
        );
    }
    if after.other_versions > 0 {
        bail!(
            "repair incomplete: {} shares of other versions are still on the grid",
            after.other_versions
        );
    }
    Ok(())
}

fn print_check(report: &crate::grid::immutable::check::CheckReport) {
    for share in &report.shares {
        match &share.health {
            ShareHealth::Good => println!("  share {:>3} on {:<12} good", share.share, share.server),
            ShareHealth::Bad(why) => println!("  share {:>3} on {:<12} BAD: {why}", share.share, share.server),
        }
    }
    let state = if report.is_healthy() {
        "healthy"
    } else if report.is_recoverable() {
        "not healthy but recoverable"
    } else {
        "UNRECOVERABLE"
    };
    println!(
        "{} of {} shares good ({} needed){}: {state}",
        report.good_shares(),
        report.total,
        report.needed,
        if report.verified { ", every block verified" } else { "" }
    );
}

fn dump_share(path: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(header) = mutable_container::Header::decode(&raw) {
        println!("mutable share container v{}", header.version);
        println!("  server node id: {}", base32::encode(&header.node_id));
        println!("  data length: {}", header.data_length);
        println!("  extra lease offset: {}", header.extra_lease_offset);
        for slot in 0..mutable_container::HEADER_LEASE_SLOTS {
            let at = mutable_container::lease_slot_offset(slot);
            if let Some(lease) = raw.get(at..).and_then(mutable_container::Lease::decode) {
                println!(
                    "  lease slot {slot}: owner {} expires {}",
                    lease.owner_num, lease.expiration
                );
            }
        }
        return Ok(());
    }
    let container = immutable_container::Container::parse(&raw).map_err(|e| match e {
        immutable_container::ContainerError::TooShort => {
            anyhow::anyhow!("{} is too short to be a share", path.display())
        }
        immutable_container::ContainerError::UnknownVersion(version) => anyhow::anyhow!(
            "{} is not a Tahoe share container (version field {version})",
            path.display()
        ),
        immutable_container::ContainerError::LeasesDoNotFit(leases) => {
            anyhow::anyhow!("{} is truncated: {leases} leases do not fit", path.display())
        }
    })?;
    let header = container.header;
    let data = container.data;
    println!(
        "immutable share container v{}, max size {}, {} lease(s), {} bytes of share data",
        header.version,
        header.max_size,
        header.num_leases,
        data.len()
    );
    for (i, lease) in container.leases().enumerate() {
        println!("  lease {i}: owner {} expires {}", lease.owner_num, lease.expiration);
    }
    let layout = ShareLayout::decode_header(data).map_err(|e| anyhow::anyhow!("share layout: {e}"))?;
    println!(
        "share layout v{}: block size {}, share data size {}",
        layout.version, layout.block_size, layout.data_size
    );
    println!(
        "  offsets: data {} crypttext tree {} block hashes {} share hashes {} URI extension {}",
        layout.data, layout.crypttext_hash_tree, layout.block_hashes, layout.share_hashes, layout.uri_extension
    );
    let field = layout.ueb_length_field() as usize;
    let at = layout.uri_extension as usize;
    let len_bytes = data
        .get(at..at + field)
        .context("share is truncated before its URI extension block")?;
    let len = crate::grid::immutable::layout::be_uint(len_bytes) as usize;
    let packed = data
        .get(at + field..at + field + len)
        .context("URI extension block is truncated")?;
    let ueb = UriExtension::parse(packed).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "URI extension block ({len} bytes, hash {}):",
        base32::encode(&ueb.hash())
    );
    println!(
        "  codec {} params {} tail {}",
        ueb.codec_name, ueb.codec_params, ueb.tail_codec_params
    );
    println!(
        "  size {} segment size {} segments {} needed {} total {}",
        ueb.size, ueb.segment_size, ueb.num_segments, ueb.needed_shares, ueb.total_shares
    );
    println!("  crypttext hash {}", base32::encode(&ueb.crypttext_hash));
    println!("  crypttext root hash {}", base32::encode(&ueb.crypttext_root_hash));
    println!("  share root hash {}", base32::encode(&ueb.share_root_hash));
    let chain = data
        .get(layout.share_hashes as usize..layout.uri_extension as usize)
        .unwrap_or(&[]);
    let indexes: Vec<String> = chain
        .chunks_exact(34)
        .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
        .collect();
    println!("share hash chain nodes: {}", indexes.join(", "));
    Ok(())
}
