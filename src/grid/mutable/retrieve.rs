//! Reading a mutable (SDMF) file: the server map of every share's version, and the newest recoverable version.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use crate::grid::hashutil::Hash;
use crate::grid::mutable::share::{AnyShare, checkstring_len};
use crate::grid::mutable::{mdmf, sdmf};
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::{MutableAccess, MutableCap, readkey_from_writekey};
use crate::grid::{Error, Grid};

/// How long a writer waits between re-reads of a mixed server map.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// How many re-reads before publishing over a map that keeps changing anyway.
const SETTLE_ROUNDS: usize = 40;

/// One share found on one server.
#[derive(Debug, Clone)]
pub struct FoundShare {
    /// The server holding it.
    pub server: Arc<dyn StorageServer>,
    /// Its number.
    pub share: ShareNum,
    /// The parsed share, if it verified against the cap.
    pub verified: Option<AnyShare>,
    /// The checkstring read from the server (what a writer must test to replace it).
    pub checkstring: Vec<u8>,
}

/// Every share of a mutable file the grid holds, grouped by version.
#[derive(Debug, Default)]
pub struct ServerMap {
    /// All shares found, good or bad.
    pub shares: Vec<FoundShare>,
}

impl ServerMap {
    /// Verified shares by version `(seqnum, root hash)`, newest last.
    pub fn versions(&self) -> BTreeMap<(u64, Hash), Vec<&FoundShare>> {
        let mut out: BTreeMap<(u64, Hash), Vec<&FoundShare>> = BTreeMap::new();
        for found in &self.shares {
            if let Some(share) = &found.verified {
                out.entry(share.version()).or_default().push(found);
            }
        }
        out
    }

    /// The newest version with at least k distinct verified shares.
    pub fn newest_recoverable(&self) -> Option<(&AnyShare, Vec<&FoundShare>)> {
        self.versions().into_iter().rev().find_map(|(_, shares)| {
            let first = shares.first()?.verified.as_ref()?;
            let mut distinct: BTreeMap<ShareNum, &FoundShare> = BTreeMap::new();
            for found in shares {
                distinct.entry(found.share).or_insert(found);
            }
            (distinct.len() >= first.needed()).then(|| (first, distinct.into_values().collect()))
        })
    }

    /// Whether the shares disagree: another writer may be half-way through a publish.
    pub fn is_mixed(&self) -> bool {
        let mut checkstrings = self.shares.iter().map(|f| &f.checkstring);
        checkstrings
            .next()
            .is_some_and(|first| checkstrings.any(|c| c != first))
    }

    fn fingerprint(&self) -> Vec<(String, ShareNum, Vec<u8>)> {
        let mut out: Vec<_> = self
            .shares
            .iter()
            .map(|f| (f.server.id().nickname.clone(), f.share, f.checkstring.clone()))
            .collect();
        out.sort();
        out
    }

    /// The highest sequence number seen on any verified share.
    pub fn highest_seqnum(&self) -> Option<u64> {
        self.shares
            .iter()
            .filter_map(|f| f.verified.as_ref())
            .map(|s| s.version().0)
            .max()
    }
}

/// The readkey of a read or write cap.
pub fn readkey_of(cap: &MutableCap) -> Option<[u8; 16]> {
    match cap.access {
        MutableAccess::Write(wk) => Some(readkey_from_writekey(&wk)),
        MutableAccess::Read(rk) => Some(rk),
        MutableAccess::Verify(_) => None,
    }
}

impl Grid {
    /// Reads every share of a mutable file from every server and verifies each against the cap.
    pub async fn mutable_servermap(&self, cap: &MutableCap) -> ServerMap {
        let si = cap.storage_index();
        let servers = self.permuted_servers(si);
        let reads = servers.iter().map(|server| async move {
            let mut found = Vec::new();
            let Ok(numbers) = server.list_mutable_shares(si).await else {
                return found;
            };
            for share in numbers {
                let Ok(image) = server.read_mutable_share(si, share, 0, u64::MAX).await else {
                    continue;
                };
                let checkstring = image.get(..checkstring_len(&image)).unwrap_or(&image).to_vec();
                let verified = AnyShare::parse(&image).ok().filter(|s| s.verify(share as usize, &cap.fingerprint).is_ok());
                if verified.is_none() {
                    tracing::warn!(storage_index = %si, share, server = %server.id().nickname, "mutable share does not verify");
                }
                found.push(FoundShare { server: server.clone(), share, verified, checkstring });
            }
            found
        });
        ServerMap {
            shares: join_all(reads).await.into_iter().flatten().collect(),
        }
    }

    /// A server map a writer may publish against.
    ///
    /// When the shares disagree, another writer may be mid-publish: overwriting
    /// its shares now could bury a version it is about to acknowledge. So a mixed
    /// map is re-read until it stops changing (the other publish finished or was
    /// abandoned) before it is returned.
    pub async fn settled_servermap(&self, cap: &MutableCap) -> ServerMap {
        let mut map = self.mutable_servermap(cap).await;
        for _ in 0..SETTLE_ROUNDS {
            if !map.is_mixed() {
                break;
            }
            tokio::time::sleep(SETTLE_WAIT).await;
            let again = self.mutable_servermap(cap).await;
            let stable = again.fingerprint() == map.fingerprint();
            map = again;
            if stable {
                break;
            }
        }
        map
    }

    /// Reads the newest recoverable version of a mutable file.
    pub async fn read_mutable(&self, cap: &MutableCap) -> Result<Vec<u8>, Error> {
        let map = self.mutable_servermap(cap).await;
        self.read_mutable_from(cap, &map)
    }

    /// Decodes the newest recoverable version in an already-read server map.
    ///
    /// A writer that bases its next version on these contents must publish with
    /// the same map, so that any version published since is detected.
    pub fn read_mutable_from(&self, cap: &MutableCap, map: &ServerMap) -> Result<Vec<u8>, Error> {
        let readkey = readkey_of(cap).ok_or(Error::UnsupportedCap("verify"))?;
        self.check_allowed(cap.storage_index())?;
        let Some((first, shares)) = map.newest_recoverable() else {
            let found = map.versions().values().map(Vec::len).max().unwrap_or(0);
            return Err(Error::NotEnoughShares {
                needed: self.params().needed,
                found,
            });
        };
        let chosen = shares
            .iter()
            .take(first.needed())
            .filter_map(|f| f.verified.as_ref().map(|s| (f.share as usize, s)));
        match first {
            AnyShare::Sdmf(s) => {
                let blocks = chosen
                    .filter_map(|(n, share)| match share {
                        AnyShare::Sdmf(sh) => Some((n, sh.block.clone())),
                        AnyShare::Mdmf(_) => None,
                    })
                    .collect();
                sdmf::decode(&readkey, &s.prefix, blocks).map_err(Error::from)
            }
            AnyShare::Mdmf(_) => {
                let picked: Vec<(usize, &mdmf::Share)> = chosen
                    .filter_map(|(n, share)| match share {
                        AnyShare::Mdmf(sh) => Some((n, sh)),
                        AnyShare::Sdmf(_) => None,
                    })
                    .collect();
                mdmf::decode(&readkey, &picked).map_err(Error::from)
            }
        }
    }
}
