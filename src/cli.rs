//! The `lafs` command line: the arguments, and one file per command family under `cli/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::node;

mod account;
mod alias;
mod check;
mod debug;
mod drop_upload;
mod files;
mod run;
mod shared;

pub use account::AccountCommand;
pub use alias::AliasCommand;
pub use debug::DebugCommand;
pub use drop_upload::DropUploadCommand;

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
        /// Serve the web API here instead of the config's `[web] listen` (port 0: any free port).
        #[arg(long)]
        web_listen: Option<std::net::SocketAddr>,
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
            web_listen,
        } => run::run_node(&node_dir, sftp_listen, ftp_listen, web_listen).await,
        Command::Put { file, path, random_key } => files::put(&node_dir, &file, path.as_deref(), random_key).await,
        Command::Get { cap, out } => files::get(&node_dir, &cap, out.as_deref()).await,
        Command::Mkdir { path } => files::mkdir(&node_dir, &path).await,
        Command::Ls { long, path } => files::ls(&node_dir, path.as_deref().unwrap_or(""), long).await,
        Command::Mv { from, to } => files::mv(&node_dir, &from, &to).await,
        Command::Rm { path } => files::rm(&node_dir, &path).await,
        Command::Alias { command } => alias::alias(&node_dir, command).await,
        Command::Check { cap, verify, repair } => check::check(&node_dir, &cap, verify, repair).await,
        Command::Account { command } => account::account(&node_dir, command).await,
        Command::DropUpload {
            command: DropUploadCommand::Status,
        } => drop_upload::drop_upload_status(&node_dir),
        Command::Debug {
            command: DebugCommand::DumpShare { path },
        } => debug::dump_share(&path),
    }
}
