//! Checking an immutable file: which shares exist where, and (with verify) whether every block is intact.

use std::collections::BTreeSet;

use crate::grid::immutable::download::{locate_shares, read_share_ueb};
use crate::grid::storage::ShareNum;
use crate::grid::uri::ChkCap;
use crate::grid::{Error, Grid};

/// The health of one share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareHealth {
    /// Its UEB matches the cap (without verify) or every block checks out (with verify).
    Good,
    /// It fails a check; the reason says which.
    Bad(String),
}

/// One share as `check` found it.
#[derive(Debug, Clone)]
pub struct ShareReport {
    /// Share number.
    pub share: ShareNum,
    /// Nickname of the server holding it.
    pub server: String,
    /// That server's node id (nicknames need not be unique).
    pub node_id: [u8; 20],
    /// Whether it passed.
    pub health: ShareHealth,
}

/// What `check` found for a file.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// k.
    pub needed: usize,
    /// N.
    pub total: usize,
    /// Every share found.
    pub shares: Vec<ShareReport>,
    /// Whether blocks were read and verified.
    pub verified: bool,
}

impl CheckReport {
    /// Distinct share numbers that are good.
    pub fn good_shares(&self) -> usize {
        self.shares
            .iter()
            .filter(|s| s.health == ShareHealth::Good)
            .map(|s| s.share)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// All N shares are present and good.
    pub fn is_healthy(&self) -> bool {
        self.good_shares() >= self.total
    }

    /// At least k good shares: the file can be read.
    pub fn is_recoverable(&self) -> bool {
        self.good_shares() >= self.needed
    }
}

impl Grid {
    /// Finds every share of a CHK file and checks it; `verify` reads and checks every block.
    pub async fn check(&self, cap: &ChkCap, verify: bool) -> Result<CheckReport, Error> {
        let si = cap.storage_index();
        let mut shares = Vec::new();
        let opened = if verify {
            Some(self.open_file_with_every_share(cap).await)
        } else {
            None
        };
        let verify = verify && !matches!(opened, Some(Err(Error::NotEnoughShares { .. })));
        if let Some(opened) = opened.filter(|_| verify) {
            match opened {
                Ok(reader) => {
                    for (location, verdict) in reader.verify_all().await {
                        shares.push(ShareReport {
                            share: location.share,
                            server: location.server.id().nickname.clone(),
                            node_id: location.server.id().node_id,
                            health: verdict.map_or_else(ShareHealth::Bad, |()| ShareHealth::Good),
                        });
                    }
                    shares.sort_by_key(|s| s.share);
                }
                Err(e) => return Err(e),
            }
        } else {
            for location in locate_shares(self, si).await {
                let health = match read_share_ueb(si, &location, &cap.ueb_hash).await {
                    Ok(_) => ShareHealth::Good,
                    Err(fault) => ShareHealth::Bad(fault.to_string()),
                };
                shares.push(ShareReport {
                    share: location.share,
                    server: location.server.id().nickname.clone(),
                    node_id: location.server.id().node_id,
                    health,
                });
            }
            shares.sort_by_key(|s| s.share);
        }
        Ok(CheckReport {
            needed: cap.needed as usize,
            total: cap.total as usize,
            shares,
            verified: verify,
        })
    }
}
