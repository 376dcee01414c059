//! Where an upload's shares go and how they end: finding servers for all N shares, writing to them while servers fail, and the one finish-or-abort path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;

use crate::grid::immutable::upload::plan::{NodeId, UploadPlan};
use crate::grid::selection;
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::{Cap, StorageIndex};
use crate::grid::{ClientSecrets, Error, Grid};

/// How long the aborts sent to a server that failed mid-upload may take, in the background.
const ABORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the shares of one upload go.
pub(super) struct Placement {
    /// The file's storage index.
    pub(super) si: StorageIndex,
    /// The happiness the upload must keep while servers fail.
    happy: usize,
    servers: Vec<Arc<dyn StorageServer>>,
    /// Shares the servers already hold: server index → shares.
    existing: BTreeMap<usize, BTreeSet<ShareNum>>,
    /// Shares being written: server index → shares.
    allocated: BTreeMap<usize, BTreeSet<ShareNum>>,
    /// Servers that failed during the upload (their shares were given up).
    failed: Vec<NodeId>,
    /// This process's turn to write the file's shares, held until the upload ends: a second
    /// upload of the same file (same convergent storage index) waits, then finds every share
    /// already there, where the servers would have refused it the shares being written.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

pub(super) type WriteResults = Vec<(usize, Result<(), crate::grid::storage::Error>)>;

impl Placement {
    fn happiness(&self) -> usize {
        let mut by_share: BTreeMap<ShareNum, BTreeSet<usize>> = BTreeMap::new();
        for (server, shares) in self.existing.iter().chain(self.allocated.iter()) {
            for share in shares {
                by_share.entry(*share).or_default().insert(*server);
            }
        }
        selection::happiness(&by_share)
    }

    fn server_count(&self) -> usize {
        self.existing
            .keys()
            .chain(self.allocated.keys())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Fails with [`Error::HappinessNotMet`] unless the shares placed still meet `happy`.
    fn check_happiness(&self, happy: usize) -> Result<(), Error> {
        let achieved = self.happiness();
        if achieved < happy {
            return Err(Error::HappinessNotMet {
                happy,
                achieved,
                servers: self.server_count(),
            });
        }
        Ok(())
    }

    async fn abort_all(&self) {
        let si = self.si;
        let aborts = self.allocated.iter().flat_map(|(server, shares)| {
            let server = self.servers[*server].clone();
            shares.iter().map(move |share| {
                let server = server.clone();
                async move { server.abort_share(si, *share).await }
            })
        });
        for result in join_all(aborts).await {
            if let Err(e) = result {
                tracing::debug!(storage_index = %si, "abort failed: {e}");
            }
        }
    }

    /// Drops a server that failed mid-upload; the upload goes on if happiness still holds.
    async fn drop_server(&mut self, server: usize) -> Result<(), Error> {
        let si = self.si;
        if let Some(shares) = self.allocated.remove(&server) {
            if !shares.is_empty() {
                self.failed.push(self.servers[server].id().node_id);
            }
            tracing::warn!(storage_index = %si, server = %self.servers[server].id().nickname, "server failed during upload; its shares are dropped");
            // A failing server may hang: its aborts must not hold up the shares still going to the others.
            let failing = self.servers[server].clone();
            tokio::spawn(async move {
                for share in shares {
                    let _ = tokio::time::timeout(ABORT_TIMEOUT, failing.abort_share(si, share)).await;
                }
            });
        }
        self.check_happiness(self.happy)
    }

    /// Starts one write per allocated share; the future owns everything it needs, so
    /// several segments' writes can be in flight while the placement is updated.
    pub(super) fn start_writes(
        &self,
        what: impl Fn(ShareNum) -> Option<(u64, Bytes)>,
    ) -> impl std::future::Future<Output = WriteResults> + Send + 'static {
        let si = self.si;
        let writes: Vec<_> = self
            .allocated
            .iter()
            .flat_map(|(&server, shares)| {
                let s = self.servers[server].clone();
                let what = &what;
                shares.iter().filter_map(move |&share| {
                    what(share).map(|(offset, data)| (server, s.clone(), share, offset, data))
                })
            })
            .collect();
        join_all(
            writes
                .into_iter()
                .map(move |(server, s, share, offset, data)| async move {
                    (server, s.write_share(si, share, offset, data).await)
                }),
        )
    }

    /// Drops the servers whose writes failed; fails if happiness no longer holds.
    pub(super) async fn finish_writes(&mut self, results: WriteResults) -> Result<(), Error> {
        let mut failed = BTreeSet::new();
        for (server, result) in results {
            if let Err(e) = result {
                if self.allocated.contains_key(&server) {
                    tracing::warn!(storage_index = %self.si, "share write failed: {e}");
                }
                failed.insert(server);
            }
        }
        for server in failed {
            self.drop_server(server).await?;
        }
        Ok(())
    }

    /// Writes to every allocated share (`what` gives offset and bytes per share number); drops failing servers.
    pub(super) async fn write_to_all(&mut self, what: impl Fn(ShareNum) -> Option<(u64, Bytes)>) -> Result<(), Error> {
        let results = self.start_writes(what).await;
        self.finish_writes(results).await
    }

    /// Closes (commits) every written share, dropping servers whose close fails while happiness
    /// holds, and renews the leases of shares that were already there.
    async fn close(&mut self, secrets: &ClientSecrets) -> Result<(), Error> {
        let si = self.si;
        let closes = self.allocated.iter().flat_map(|(&server, shares)| {
            let s = self.servers[server].clone();
            shares.iter().map(move |&share| {
                let s = s.clone();
                async move { (server, s.close_share(si, share).await) }
            })
        });
        let mut failed = BTreeSet::new();
        for (server, result) in join_all(closes).await {
            if let Err(e) = result {
                tracing::warn!(storage_index = %si, "closing share failed: {e}");
                failed.insert(server);
            }
        }
        for server in failed {
            self.drop_server(server).await?;
        }
        tracing::debug!(storage_index = %si, "shares closed");
        let renewals = self.existing.keys().map(|&server| {
            let s = self.servers[server].clone();
            let lease = secrets.lease_for(si, &s.id().node_id);
            async move { s.add_or_renew_lease(si, lease).await }
        });
        for result in join_all(renewals).await {
            if let Err(e) = result {
                tracing::warn!(storage_index = %si, "lease renewal failed: {e}");
            }
        }
        self.allocated.clear();
        Ok(())
    }
}

impl Grid {
    /// Finds servers for all N shares, allocating them; fails if happiness cannot be met.
    pub(super) async fn place_shares(
        &self,
        si: StorageIndex,
        allocated_size: u64,
        plan: &UploadPlan,
    ) -> Result<Placement, Error> {
        let params = plan.params;
        let turn = self.lock_for_writing(si).await;
        let servers = self.permuted_servers(si);
        let listings = join_all(servers.iter().map(|s| s.list_shares(si))).await;
        let mut usable: Vec<usize> = Vec::new();
        let mut existing = BTreeMap::new();
        // Share numbers at or past N are none of this file's (a confused or lying server):
        // counting them would let it fake happiness.
        let in_range = |shares: &BTreeSet<ShareNum>| -> BTreeSet<ShareNum> {
            shares
                .iter()
                .copied()
                .filter(|&s| usize::from(s) < params.total)
                .collect()
        };
        // Copies this upload must not count (a repair's corrupt shares), by server index.
        let node_ids: Vec<NodeId> = servers.iter().map(|s| s.id().node_id).collect();
        let avoid = plan.avoided_by_index(&node_ids);
        let countable = |server: usize, shares: BTreeSet<ShareNum>| -> BTreeSet<ShareNum> {
            shares.into_iter().filter(|&s| !avoid.contains(&(server, s))).collect()
        };
        for (i, listing) in listings.into_iter().enumerate() {
            match listing {
                Ok(shares) => {
                    let shares = countable(i, in_range(&shares));
                    usable.push(i);
                    if !shares.is_empty() {
                        existing.insert(i, shares);
                    }
                }
                Err(e) => tracing::warn!(server = %servers[i].id().nickname, "server unusable for upload: {e}"),
            }
        }
        let mut placement = Placement {
            si,
            happy: params.happy,
            servers,
            existing,
            allocated: BTreeMap::new(),
            failed: Vec::new(),
            _turn: turn,
        };
        let all_shares: Vec<ShareNum> = (0..params.total as ShareNum).collect();
        loop {
            let placed: BTreeSet<ShareNum> = placement
                .existing
                .values()
                .chain(placement.allocated.values())
                .flatten()
                .copied()
                .collect();
            let homeless: Vec<ShareNum> = all_shares.iter().copied().filter(|s| !placed.contains(s)).collect();
            if homeless.is_empty() || usable.is_empty() {
                break;
            }
            let load: BTreeMap<usize, usize> = usable
                .iter()
                .map(|&s| {
                    (
                        s,
                        placement.existing.get(&s).map_or(0, BTreeSet::len)
                            + placement.allocated.get(&s).map_or(0, BTreeSet::len),
                    )
                })
                .collect();
            let assignment = selection::assign_homeless_avoiding(&homeless, &usable, &load, &avoid);
            if assignment.is_empty() {
                // What is left may go only to servers holding bad copies of it.
                break;
            }
            let requests = assignment.iter().map(|(&server, shares)| {
                let s = placement.servers[server].clone();
                let lease = self.secrets().lease_for(si, &s.id().node_id);
                let shares = shares.clone();
                async move {
                    (
                        server,
                        shares.clone(),
                        s.allocate_buckets(si, lease, &shares, allocated_size).await,
                    )
                }
            });
            for (server, asked, answer) in join_all(requests).await {
                match answer {
                    Ok(allocation) => {
                        let already_have = countable(server, in_range(&allocation.already_have));
                        // Only shares asked for are written to (the HTTP client refuses others too).
                        let allocated: BTreeSet<ShareNum> =
                            allocation.allocated.intersection(&asked).copied().collect();
                        if !already_have.is_empty() {
                            placement
                                .existing
                                .entry(server)
                                .or_default()
                                .extend(already_have.iter().copied());
                        }
                        if !allocated.is_empty() {
                            placement
                                .allocated
                                .entry(server)
                                .or_default()
                                .extend(allocated.iter().copied());
                        }
                        let answered = asked
                            .iter()
                            .filter(|s| allocated.contains(s) || already_have.contains(s))
                            .count();
                        if answered < asked.len() {
                            // Full (or busy with these shares): ask it for nothing more.
                            usable.retain(|&u| u != server);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(server = %placement.servers[server].id().nickname, "allocation failed: {e}");
                        usable.retain(|&u| u != server);
                    }
                }
            }
        }
        if let Err(e) = placement.check_happiness(params.happy) {
            placement.abort_all().await;
            return Err(e);
        }
        Ok(placement)
    }

    /// The one way every upload ends. When its shares were written, they are closed; when the
    /// writing or the closing failed, every unfinished share is aborted. After a success, the
    /// shares of servers that failed during the upload are placed elsewhere if the plan says so.
    pub(super) async fn finish_upload(
        &self,
        plan: &UploadPlan,
        mut placement: Placement,
        written: Result<Cap, Error>,
    ) -> Result<Cap, Error> {
        let closed = match written {
            Ok(cap) => placement.close(self.secrets()).await.map(|()| cap),
            Err(e) => Err(e),
        };
        match closed {
            Ok(cap) => {
                let failed = std::mem::take(&mut placement.failed);
                // The upload is over: its turn goes, for the repair below places shares of it too.
                drop(placement);
                if plan.replace_dropped {
                    self.replace_dropped_shares(&cap, &failed).await;
                }
                Ok(cap)
            }
            Err(e) => {
                placement.abort_all().await;
                Err(e)
            }
        }
    }

    /// After an upload that met happiness without the shares of servers that failed during
    /// it, places those shares on other servers (a repair, from the shares just written).
    /// The upload has succeeded either way: a failure here is logged, not returned.
    ///
    /// Returned as a boxed trait object: a repair uploads, and an upload may repair.
    fn replace_dropped_shares<'a>(
        &'a self,
        cap: &'a Cap,
        failed: &'a [NodeId],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Cap::Chk(chk) = cap else { return };
            if failed.is_empty() {
                return;
            }
            let si = chk.storage_index();
            tracing::warn!(storage_index = %si, failed = failed.len(), "placing the shares of failed servers elsewhere");
            // The servers that failed are left out: they would take the shares and fail again.
            let others = self.without_servers(failed);
            match others.repair(chk, &std::env::temp_dir(), false).await {
                Ok(report) => tracing::info!(
                    storage_index = %si,
                    good_shares = report.after.good_shares(),
                    "shares of failed servers placed elsewhere"
                ),
                Err(e) => tracing::warn!(storage_index = %si, "could not place the shares of failed servers: {e}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::EncodingParams;

    fn grid(dir: &std::path::Path) -> Grid {
        let secrets = ClientSecrets {
            convergence: b"convergence".to_vec(),
            lease: b"lease".to_vec(),
        };
        Grid::open_local(dir, 10, EncodingParams::default(), secrets).unwrap()
    }

    /// The servers holding `share` of the file `si`, by node id.
    async fn holders(grid: &Grid, si: StorageIndex, share: ShareNum) -> Vec<NodeId> {
        let mut found = Vec::new();
        for server in grid.servers() {
            if server.list_shares(si).await.unwrap().contains(&share) {
                found.push(server.id().node_id);
            }
        }
        found
    }

    #[tokio::test]
    async fn a_plan_that_avoids_a_copy_places_that_share_again_on_another_server() {
        let dir = tempfile::tempdir().unwrap();
        let grid = grid(dir.path());
        let data = vec![5u8; 5000];
        let Cap::Chk(cap) = grid.upload_bytes(data.clone()).await.unwrap() else {
            panic!("not a CHK cap")
        };
        let si = cap.storage_index();
        let first = holders(&grid, si, 0).await;
        assert_eq!(first.len(), 1);

        // An ordinary plan counts the copy already there and places nothing new.
        let again = grid.upload_bytes(data.clone()).await.unwrap();
        assert_eq!(again, Cap::Chk(cap.clone()));
        assert_eq!(holders(&grid, si, 0).await, first);

        let plan = UploadPlan::repair(&cap, EncodingParams::default().max_segment_size, [(first[0], 0)]);
        let size = data.len() as u64;
        let stored = grid
            .upload_with_plan(std::io::Cursor::new(data), size, &plan, None)
            .await
            .unwrap();
        assert_eq!(stored, Cap::Chk(cap));
        let now = holders(&grid, si, 0).await;
        assert_eq!(now.len(), 2, "share 0 placed once more: {now:?}");
        assert!(now.contains(&first[0]), "the avoided copy is left where it was");
        for share in 1..10 {
            assert_eq!(
                holders(&grid, si, share).await.len(),
                1,
                "share {share} is not placed again"
            );
        }
    }
}
