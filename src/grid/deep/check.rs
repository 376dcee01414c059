//! Deep-check: the health of each walked node (optionally verified, repaired, its leases
//! renewed), and the tally Tahoe's `deep-check` prints at the end.

use std::path::PathBuf;

use super::walk::{DeepNode, NodeKind};
use crate::grid::immutable::check::{CheckReport, ShareHealth};
use crate::grid::immutable::repair::MutableHealth;
use crate::grid::storage::ShareNum;
use crate::grid::uri::{Cap, MutableCap, StorageIndex};
use crate::grid::{Error, Grid};

/// What to do to each node besides looking for its shares.
#[derive(Debug, Clone, Default)]
pub struct DeepCheckOptions {
    /// Read and verify every block of immutable files.
    pub verify: bool,
    /// Re-create missing shares of unhealthy nodes.
    pub repair: bool,
    /// Add or renew this client's lease on every share found.
    pub add_lease: bool,
    /// Where a repair spools a file it re-encodes.
    pub scratch_dir: PathBuf,
}

/// One node's health: before, and with repair after.
#[derive(Debug, Clone)]
pub struct NodeCheck {
    /// The names from the root.
    pub path: Vec<String>,
    /// What it is.
    pub kind: NodeKind,
    /// Its storage index (none for LIT files, which are always healthy).
    pub storage_index: Option<StorageIndex>,
    /// Good shares found (distinct share numbers), k and N.
    pub good_shares: usize,
    /// k.
    pub needed: usize,
    /// N.
    pub total: usize,
    /// All N shares good (before any repair).
    pub healthy: bool,
    /// At least k good shares.
    pub recoverable: bool,
    /// Shares that failed verification: server nickname and share number.
    pub corrupt_shares: Vec<(String, ShareNum)>,
    /// A repair was tried.
    pub repair_attempted: bool,
    /// The node is healthy after the repair.
    pub healthy_after: bool,
    /// Servers whose lease could not be added (with `add_lease`).
    pub lease_failures: usize,
}

impl NodeCheck {
    /// Tahoe's one-line summary of the check.
    pub fn summary(&self) -> String {
        if self.storage_index.is_none() {
            "Healthy (LIT)".into()
        } else if self.healthy {
            "Healthy".into()
        } else if self.recoverable {
            format!(
                "Not Healthy: {} shares (enc {}-of-{})",
                self.good_shares, self.needed, self.total
            )
        } else {
            format!(
                "Unrecoverable: {} shares (enc {}-of-{})",
                self.good_shares, self.needed, self.total
            )
        }
    }

    fn healthy_lit(node: &DeepNode) -> NodeCheck {
        NodeCheck {
            path: node.path.clone(),
            kind: node.kind,
            storage_index: None,
            good_shares: 0,
            needed: 0,
            total: 0,
            healthy: true,
            recoverable: true,
            corrupt_shares: Vec::new(),
            repair_attempted: false,
            healthy_after: true,
            lease_failures: 0,
        }
    }
}

/// Checks (and repairs, renews leases of) one node. An unreadable node is reported as
/// unrecoverable, not as an error; errors are the grid failing otherwise (I/O, bugs).
pub async fn check_node(grid: &Grid, node: &DeepNode, options: &DeepCheckOptions) -> Result<NodeCheck, Error> {
    let file_cap = match &node.cap {
        Cap::Directory(inner) => inner.as_ref(),
        other => other,
    };
    let mut result = match file_cap {
        Cap::Chk(chk) => {
            if options.repair {
                let repaired = grid.repair(chk, &options.scratch_dir, options.verify).await?;
                let mut result = from_report(node, &repaired.before);
                result.repair_attempted = !repaired.before.is_healthy() && repaired.before.is_recoverable();
                result.healthy_after = repaired.after.is_healthy();
                result
            } else {
                from_report(node, &grid.check(chk, options.verify).await?)
            }
        }
        Cap::Mutable(m) => check_mutable(grid, node, m, options.repair).await?,
        Cap::Literal(_) => return Ok(NodeCheck::healthy_lit(node)),
        _ => {
            // Unknown caps (and bare verify caps of files) are left as they are.
            return Ok(NodeCheck::healthy_lit(node));
        }
    };
    if options.add_lease
        && let Some(si) = result.storage_index
    {
        result.lease_failures = add_leases(grid, si).await;
    }
    Ok(result)
}

fn from_report(node: &DeepNode, report: &CheckReport) -> NodeCheck {
    let corrupt_shares = report
        .shares
        .iter()
        .filter(|s| matches!(s.health, ShareHealth::Bad(_)))
        .map(|s| (s.server.clone(), s.share))
        .collect();
    NodeCheck {
        path: node.path.clone(),
        kind: node.kind,
        storage_index: node.cap.storage_index(),
        good_shares: report.good_shares(),
        needed: report.needed,
        total: report.total,
        healthy: report.is_healthy(),
        recoverable: report.is_recoverable(),
        corrupt_shares,
        repair_attempted: false,
        healthy_after: report.is_healthy(),
        lease_failures: 0,
    }
}

async fn check_mutable(grid: &Grid, node: &DeepNode, cap: &MutableCap, repair: bool) -> Result<NodeCheck, Error> {
    let from_health = |h: &MutableHealth| NodeCheck {
        path: node.path.clone(),
        kind: node.kind,
        storage_index: Some(cap.storage_index()),
        good_shares: h.shares.len(),
        needed: h.needed,
        total: h.total,
        healthy: h.is_healthy(),
        recoverable: h.shares.len() >= h.needed,
        corrupt_shares: Vec::new(),
        repair_attempted: false,
        healthy_after: h.is_healthy(),
        lease_failures: 0,
    };
    let unrecoverable = |needed: usize, found: usize| NodeCheck {
        path: node.path.clone(),
        kind: node.kind,
        storage_index: Some(cap.storage_index()),
        good_shares: found,
        needed,
        total: grid.params().total,
        healthy: false,
        recoverable: false,
        corrupt_shares: Vec::new(),
        repair_attempted: false,
        healthy_after: false,
        lease_failures: 0,
    };
    let writable = matches!(cap.access, crate::grid::uri::MutableAccess::Write(_));
    if repair && writable {
        return match grid.repair_mutable(cap).await {
            Ok((before, after)) => {
                let mut result = from_health(&before);
                result.repair_attempted = !before.is_healthy();
                result.healthy_after = after.is_healthy();
                Ok(result)
            }
            Err(Error::NotEnoughShares { needed, found }) => Ok(unrecoverable(needed, found)),
            Err(e) => Err(e),
        };
    }
    match grid.check_mutable(cap).await {
        Ok(health) => Ok(from_health(&health)),
        Err(Error::NotEnoughShares { needed, found }) => Ok(unrecoverable(needed, found)),
        Err(e) => Err(e),
    }
}

/// Adds or renews this client's lease on `si` at every server; returns how many servers that
/// hold shares of it refused.
async fn add_leases(grid: &Grid, si: StorageIndex) -> usize {
    let renewals = grid.servers().iter().map(|server| {
        let lease = grid.secrets().lease_for(si, &server.id().node_id);
        async move { server.add_or_renew_lease(si, lease).await }
    });
    futures::future::join_all(renewals)
        .await
        .into_iter()
        .filter(|r| matches!(r, Err(e) if !matches!(e, crate::grid::storage::Error::NoSuchShare)))
        .count()
}

/// The counts Tahoe's `deep-check` ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeepCheckTally {
    /// Nodes checked.
    pub checked: u64,
    /// Healthy before any repair.
    pub healthy: u64,
    /// Not healthy before any repair.
    pub unhealthy: u64,
    /// Of those, not even recoverable.
    pub unrecoverable: u64,
    /// Repairs tried.
    pub repairs_attempted: u64,
    /// Repairs after which the node was healthy.
    pub repairs_successful: u64,
    /// Healthy after repair.
    pub healthy_after: u64,
    /// Not healthy after repair.
    pub unhealthy_after: u64,
    /// Nodes that could not be checked at all (unreadable directories, grid errors).
    pub errors: u64,
}

impl DeepCheckTally {
    /// Counts one node's result.
    pub fn add(&mut self, check: &NodeCheck) {
        self.checked += 1;
        if check.healthy {
            self.healthy += 1;
        } else {
            self.unhealthy += 1;
            if !check.recoverable {
                self.unrecoverable += 1;
            }
        }
        if check.repair_attempted {
            self.repairs_attempted += 1;
            if check.healthy_after {
                self.repairs_successful += 1;
            }
        }
        if check.healthy_after {
            self.healthy_after += 1;
        } else {
            self.unhealthy_after += 1;
        }
    }

    /// Whether everything checked is healthy now (after repair, when repairing).
    pub fn all_healthy(&self) -> bool {
        self.unhealthy_after == 0 && self.errors == 0
    }
}
