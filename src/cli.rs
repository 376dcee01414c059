//! The `lafs` command line: the arguments, and one file per command family under `cli/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::node;

mod account;
mod alias;
mod backup;
mod check;
mod copy;
mod debug;
mod deep;
mod drop_upload;
mod files;
mod listing;
mod run;
mod shared;

pub use account::AccountCommand;
pub use alias::AliasCommand;
pub use debug::DebugCommand;
pub use deep::ManifestField;
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
        /// Join the grid of the Tahoe introducer at this fURL (written to
        /// `private/introducers.yaml`, Tahoe's file, as petname `default`).
        #[arg(long)]
        introducer_furl: Option<String>,
        /// Serve as an introducer (`[introducer] enabled = true`); `lafs run` writes its fURL
        /// to `private/introducer.furl`.
        #[arg(long)]
        introducer: bool,
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
        /// Where to link it (`alias:dir/name`); an existing file there is replaced, a directory
        /// is refused before anything is uploaded.
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
    /// Create a directory at PATH (`alias:dir/name`); without PATH, an unlinked one, whose
    /// write cap is printed.
    Mkdir {
        /// The new directory's path.
        path: Option<String>,
        /// SDMF (Tahoe's default) or MDMF.
        #[arg(long, default_value = "SDMF", value_parser = ["SDMF", "MDMF", "sdmf", "mdmf"])]
        format: String,
    },
    /// List a directory (default: the root of the default alias), as Tahoe's `ls`.
    Ls {
        /// Show kind, size and modification date.
        #[arg(short = 'l')]
        long: bool,
        /// List subdirectories too, each under its path.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Show each entry's cap.
        #[arg(long)]
        uri: bool,
        /// Append `/` to directories.
        #[arg(short = 'F', long)]
        classify: bool,
        /// Print the directory as Tahoe's web API does (`t=json`): caps, sizes, raw metadata.
        #[arg(long)]
        json: bool,
        /// The directory's path (or a cap).
        path: Option<String>,
    },
    /// Every file and directory below PATH, with its cap (Tahoe's `manifest`).
    Manifest {
        /// Print storage indexes only.
        #[arg(long, conflicts_with_all = ["verify_cap", "repair_cap", "json"])]
        storage_index: bool,
        /// Print verify caps only.
        #[arg(long, conflicts_with_all = ["repair_cap", "json"])]
        verify_cap: bool,
        /// Print repair caps only.
        #[arg(long, conflicts_with = "json")]
        repair_cap: bool,
        /// One JSON object per node, then the stats (Tahoe's `--raw`).
        #[arg(long, alias = "raw")]
        json: bool,
        /// The tree's root (default: the default alias).
        path: Option<String>,
    },
    /// Counts and sizes of everything below PATH, with a file size histogram (Tahoe's `stats`).
    Stats {
        /// Print Tahoe's deep-stats JSON.
        #[arg(long, alias = "raw")]
        json: bool,
        /// The tree's root (default: the default alias).
        path: Option<String>,
    },
    /// Check the health of everything below PATH; exits 2 when something stays unhealthy.
    DeepCheck {
        /// Read and verify every block, not just the share headers.
        #[arg(long)]
        verify: bool,
        /// Re-create missing shares of what is unhealthy.
        #[arg(long)]
        repair: bool,
        /// Add or renew this node's lease on every share found.
        #[arg(long)]
        add_lease: bool,
        /// One line per object.
        #[arg(short, long)]
        verbose: bool,
        /// One JSON object per object checked, then the tally.
        #[arg(long, alias = "raw")]
        json: bool,
        /// The tree's root (default: the default alias).
        path: Option<String>,
    },
    /// Move (rename) an entry, also between aliases or dircaps; a file at the target is
    /// replaced, a directory never is; a target ending in `/` means "into that directory".
    Mv {
        /// What to move (`alias:path`, `URI:DIR2…/path` or a path under the default alias).
        from: String,
        /// Where to.
        to: String,
    },
    /// Link an entry (or a cap) at another path too, also across aliases or dircaps; a file at
    /// the target is replaced, a directory never is.
    Ln {
        /// What to link (`alias:path`, `URI:DIR2…/path`, or a cap).
        from: String,
        /// Where.
        to: String,
    },
    /// Copy files: local to grid, grid to local, grid to grid (by cap). The last argument is
    /// the target; with several sources it must be a directory.
    Cp {
        /// Copy directories and everything below them.
        #[arg(short, long)]
        recursive: bool,
        /// Sources, then the target.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Back up a local directory, Tahoe style: TARGET/Archives/<UTC time> and TARGET/Latest link an
    /// immutable snapshot; files unchanged since an earlier run are not uploaded again.
    Backup {
        /// Leave out files and directories whose name matches this glob (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Leave out version-control directories (.git, .hg, .svn, CVS, …).
        #[arg(long)]
        exclude_vcs: bool,
        /// Say which archive was made.
        #[arg(short, long)]
        verbose: bool,
        /// The local directory.
        from: PathBuf,
        /// Where the backups go (`alias:path`).
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
    /// Show the introducers (`private/introducers.yaml`) and each storage server they announced:
    /// when, and whether it answers now.
    Status,
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
    let uses_grid = !matches!(
        cli.command,
        Command::Init { .. } | Command::Account { .. } | Command::DropUpload { .. } | Command::Debug { .. }
    );
    if uses_grid {
        // The servers an introducer knows, into its cache, before the grid is opened from it.
        crate::introducer::refresh_caches(&node_dir).await;
    }
    match cli.command {
        Command::Init {
            dir,
            introducer_furl,
            introducer,
        } => {
            let dir = dir.unwrap_or(node_dir);
            node::init(&dir)?;
            if introducer {
                crate::introducer::enable_server(&dir)?;
            }
            if let Some(furl) = introducer_furl {
                let furl: crate::foolscap::furl::Furl = furl.parse()?;
                crate::introducer::furls::write_default(&dir, &furl)?;
            }
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
        Command::Mkdir { path, format } => files::mkdir(&node_dir, path.as_deref(), &format).await,
        Command::Ls {
            long,
            recursive,
            uri,
            classify,
            json,
            path,
        } => {
            let style = listing::Style {
                long,
                recursive,
                uri,
                classify,
                json,
            };
            listing::ls(&node_dir, path.as_deref().unwrap_or(""), style).await
        }
        Command::Manifest {
            storage_index,
            verify_cap,
            repair_cap,
            json,
            path,
        } => {
            let field = match (storage_index, verify_cap, repair_cap, json) {
                (true, ..) => ManifestField::StorageIndex,
                (_, true, ..) => ManifestField::VerifyCap,
                (_, _, true, _) => ManifestField::RepairCap,
                (.., true) => ManifestField::Json,
                _ => ManifestField::CapAndPath,
            };
            deep::manifest(&node_dir, path.as_deref().unwrap_or(""), field).await
        }
        Command::Stats { json, path } => deep::stats(&node_dir, path.as_deref().unwrap_or(""), json).await,
        Command::DeepCheck {
            verify,
            repair,
            add_lease,
            verbose,
            json,
            path,
        } => {
            let flags = deep::DeepCheckFlags {
                verify,
                repair,
                add_lease,
                verbose,
                json,
            };
            deep::deep_check(&node_dir, path.as_deref().unwrap_or(""), flags).await
        }
        Command::Mv { from, to } => files::link_or_move(&node_dir, &from, &to, crate::vfs::LinkMode::Move).await,
        Command::Ln { from, to } => files::ln(&node_dir, &from, &to).await,
        Command::Cp { recursive, mut paths } => {
            let target = paths.pop().unwrap_or_default();
            copy::cp(&node_dir, &paths, &target, recursive).await
        }
        Command::Backup {
            mut exclude,
            exclude_vcs,
            verbose,
            from,
            to,
        } => {
            if exclude_vcs {
                exclude.extend(
                    [
                        ".git",
                        ".hg",
                        ".svn",
                        ".bzr",
                        "CVS",
                        "_darcs",
                        ".gitignore",
                        ".hgignore",
                        ".cvsignore",
                    ]
                    .map(String::from),
                );
            }
            backup::backup(&node_dir, &from, &to, &exclude, verbose).await
        }
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
        Command::Status => {
            for line in crate::introducer::status::report(&node_dir)
                .await
                .map_err(anyhow::Error::msg)?
            {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// A command that ran to the end but met problems (each already printed on its own line):
/// `lafs` exits with status 2 for it, and 1 for a command that failed outright.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Incomplete(pub String);
