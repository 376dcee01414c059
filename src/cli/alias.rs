//! `lafs alias`: names for directory caps (`private/aliases`, Tahoe's format).

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;

use super::shared::parse_cap;
use crate::grid::uri::Cap;
use crate::node::{self, Node};

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

pub(crate) async fn alias(dir: &Path, command: AliasCommand) -> anyhow::Result<()> {
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
