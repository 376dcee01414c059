//! `lafs drop-upload`: the state of the watched folders (`[[drop_upload]]` in lafs.toml).

use std::path::Path;

use clap::Subcommand;

use crate::node;

/// Drop-upload subcommands.
#[derive(Debug, Subcommand)]
pub enum DropUploadCommand {
    /// List each watched folder's files: pending, uploading, done and failed (with the reason).
    Status,
}

pub(crate) fn drop_upload_status(dir: &Path) -> anyhow::Result<()> {
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
