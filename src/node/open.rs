//! A loaded node: its validated config and the grid it describes (local servers, or the
//! networked ones a `servers.yaml` lists).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::config::{NodeConfig, load_config};
use super::error::{Error, io};
use super::secrets::read_secret;
use crate::grid::{ClientSecrets, EncodingParams, Grid};

/// A loaded node: its config and its grid.
#[derive(Debug, Clone)]
pub struct Node {
    /// The validated config.
    pub config: NodeConfig,
    /// The grid it stores files on.
    pub grid: Grid,
}

impl Node {
    /// Loads the node at `dir` and opens its local grid.
    pub fn open(dir: &Path) -> Result<Node, Error> {
        let config = load_config(dir)?;
        let secrets = ClientSecrets {
            convergence: read_secret(dir, "convergence")?,
            lease: read_secret(dir, "secret")?,
        };
        let introduced = !crate::introducer::furls::load(dir)
            .map_err(|e| Error::BadConfig {
                file: crate::introducer::furls::introducers_path(dir).display().to_string(),
                message: e.to_string(),
            })?
            .is_empty();
        let grid = if config.servers_yaml.is_some() || introduced {
            network_grid(dir, config.servers_yaml.as_deref(), config.params, secrets)?
        } else {
            Grid::open_local(&config.storage_path, config.storage_servers, config.params, secrets)?
        }
        .with_blocklist(crate::grid::blocklist::Blocklist::new(dir.join("access.blacklist")))
        .with_memory_budget(config.memory_budget);
        Ok(Node { config, grid })
    }
}

/// A grid of the HTTP storage servers listed in a Tahoe `servers.yaml` and those the node's
/// introducers announced (their caches); a server in both is taken from `servers.yaml`.
fn network_grid(
    dir: &Path,
    path: Option<&Path>,
    params: EncodingParams,
    secrets: ClientSecrets,
) -> Result<Grid, Error> {
    let file = path.map_or_else(
        || crate::introducer::furls::introducers_path(dir).display().to_string(),
        |p| p.display().to_string(),
    );
    let bad = |message: String| Error::BadConfig {
        file: file.clone(),
        message,
    };
    let mut listed = match path {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(io(format!("read {file}")))?;
            crate::grid::announcement::parse_servers_yaml(&text).map_err(|e| bad(e.to_string()))?
        }
        None => crate::grid::announcement::ServersYaml::default(),
    };
    let (introduced, introduced_skipped) = crate::introducer::cached_servers(dir).map_err(&bad)?;
    for announcement in introduced {
        if !listed.usable.iter().any(|a| a.server_id == announcement.server_id) {
            listed.usable.push(announcement);
        }
    }
    listed.skipped.extend(introduced_skipped);
    let mut skipped: Vec<String> = listed.skipped.iter().map(ToString::to_string).collect();
    let mut servers = Vec::new();
    for announcement in &listed.usable {
        match crate::grid::storage::http::client::HttpStorageClient::new(
            announcement.server_id(),
            &announcement.nurls[0],
        ) {
            Ok(client) => servers.push(Arc::new(client) as Arc<dyn crate::grid::storage::StorageServer>),
            Err(e) => skipped.push(format!("server {}: {e}", announcement.server_id)),
        }
    }
    // As Tahoe does, a server entry that cannot be used leaves the rest of the grid usable.
    for why in &skipped {
        tracing::warn!(file = %file, "skipping a storage server: {why}");
    }
    // A node that learns its servers from introducers starts without any (the first storage
    // node of a new grid has no other to know); its puts fail until servers are announced.
    let introduced = !crate::introducer::furls::load(dir)
        .map_err(|e| bad(e.to_string()))?
        .is_empty();
    if servers.is_empty() && !introduced {
        return Err(bad(if skipped.is_empty() {
            "no storage servers listed".into()
        } else {
            format!("no usable storage servers: {}", skipped.join("; "))
        }));
    }
    Ok(Grid::new(servers, params, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_yaml_entries_that_cannot_be_used_are_skipped_unless_none_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servers.yaml");
        let secrets = || ClientSecrets {
            convergence: vec![1; 16],
            lease: vec![2; 32],
        };
        let good = crate::grid::announcement::servers_yaml_entry(&crate::grid::announcement::OwnAnnouncement {
            server_id: "v0-good",
            nickname: "good",
            furl: "pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:7/swissnum1",
            nurl: "pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:7/swissnum1#v=1",
            permutation_seed_base32: "mfrgg",
            seqnum: 1,
            nonce: "x",
        });
        let foolscap_only = "storage:\n  v0-old:\n    ann:\n      anonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:8/swissnum2\n";
        fs::write(&path, foolscap_only).unwrap();
        let err = network_grid(dir.path(), Some(&path), EncodingParams::default(), secrets())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no usable storage servers") && err.contains("v0-old"),
            "{err}"
        );
        assert!(!err.contains("swissnum2"), "a fURL leaked: {err}");
        fs::write(&path, format!("{foolscap_only}{}", good.replace("storage:\n", ""))).unwrap();
        let grid = network_grid(dir.path(), Some(&path), EncodingParams::default(), secrets()).unwrap();
        let names: Vec<_> = grid.servers().iter().map(|s| s.id().nickname.clone()).collect();
        assert_eq!(names, ["good"]);
    }
}
