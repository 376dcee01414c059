//! `lafs account`: adding users to the accounts file the SFTP and FTP frontends read.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::frontends::accounts::{self, Accounts};
use crate::grid::uri::Cap;
use crate::node::Node;

/// Account subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add a login for USER: an SSH public key or a password (stored as an argon2 hash).
    ///
    /// A new user gets a fresh root directory unless --root names one; an existing user keeps theirs.
    Add {
        /// The user name.
        user: String,
        /// An OpenSSH public key file (`id_ed25519.pub`, ecdsa or rsa).
        #[arg(long, conflicts_with = "password", required_unless_present = "password")]
        key: Option<PathBuf>,
        /// Ask for a password (read from standard input when it is not a terminal).
        #[arg(long)]
        password: bool,
        /// The root directory for a new user: a dircap or `alias:path`.
        #[arg(long)]
        root: Option<String>,
        /// Give a new user only read access (the read-only cap of the root).
        #[arg(long)]
        read_only: bool,
    },
    /// List the users and how many logins each has (never their caps).
    List,
}

/// Runs an account subcommand for the node at `dir`.
pub async fn account(dir: &Path, command: AccountCommand) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    let file = node.config.accounts_file.clone();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let (existing, errors) = Accounts::parse(&text);
    for error in &errors {
        eprintln!("warning: {}: {error} (skipped)", file.display());
    }
    match command {
        AccountCommand::List => {
            let mut users: Vec<_> = text
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|u| !u.starts_with('#'))
                .filter_map(|u| existing.get(u))
                .map(|a| (a.user.clone(), a.root.is_read_only()))
                .collect();
            users.dedup();
            for (user, read_only) in users {
                println!("{user}{}", if read_only { " (read-only)" } else { "" });
            }
            Ok(())
        }
        AccountCommand::Add {
            user,
            key,
            password,
            root,
            read_only,
        } => {
            if user.is_empty() || user.contains(':') || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("a user name may not be empty or contain ':', spaces or control characters");
            }
            let credential = match key {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    accounts::check_public_key_line(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None if password => accounts::hash_password(&read_password()?).map_err(anyhow::Error::msg)?,
                None => bail!("give --key FILE or --password"),
            };
            let root = match (existing.get(&user), root) {
                (Some(_), Some(_)) => bail!("user {user:?} exists already and keeps its root directory"),
                (Some(account), None) => account.root.clone(),
                (None, Some(text)) => root_from(dir, &text).await?,
                (None, None) => node.grid.create_directory().await?,
            };
            let root = if read_only { root.read_only() } else { root };
            append_line(&file, &format!("{user} {credential} {root}"))?;
            println!("added a login for {user} to {}", file.display());
            Ok(())
        }
    }
}

async fn root_from(dir: &Path, text: &str) -> anyhow::Result<Cap> {
    if text.starts_with("URI:") && !text.contains('/') {
        let cap = Cap::parse(text).map_err(|e| anyhow::anyhow!("bad root cap: {e}"))?;
        if !matches!(cap, Cap::Directory(_)) {
            bail!("the root must be a directory cap");
        }
        return Ok(cap);
    }
    let (_, vfs, path) = super::shared::open_path(dir, text)?;
    let cap = vfs
        .cap_of(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
    if !matches!(cap, Cap::Directory(_)) {
        bail!("{text} is not a directory");
    }
    Ok(cap)
}

fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

/// Appends one line to the accounts file, creating it readable by its owner only.
pub fn append_line(file: &Path, line: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    writeln!(out, "{line}").with_context(|| format!("cannot write {}", file.display()))?;
    out.sync_all()?;
    Ok(())
}

/// The demo login a fresh node gets: user `demo`, password `demo`, a new root directory.
pub async fn create_demo_account(node: &Node) -> anyhow::Result<()> {
    let root = node.grid.create_directory().await?;
    let hash = accounts::hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    append_line(&node.config.accounts_file, &format!("{DEMO_USER} {hash} {root}"))?;
    Ok(())
}

/// The demo account's user name.
pub const DEMO_USER: &str = "demo";
/// The demo account's password (documented in the README; loopback only).
pub const DEMO_PASSWORD: &str = "demo";
