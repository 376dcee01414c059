//! An upload plan: the choices one immutable upload makes (encoding, key, which copies to avoid, whether to replace dropped shares), passed to the uploader rather than set on the grid.

use std::collections::BTreeSet;

use crate::grid::EncodingParams;
use crate::grid::storage::ShareNum;
use crate::grid::uri::ChkCap;

/// How the file's AES key is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// From the content and the node's convergence secret: identical files share shares.
    Convergent,
    /// Random: nobody can tell two uploads of the same file apart.
    Random,
    /// An existing file's key: with its parameters the file encodes to the same shares (repair).
    Given([u8; 16]),
}

/// A storage server's node id.
pub type NodeId = [u8; 20];

/// What one immutable upload encodes with and where its shares may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// k, happy, N and the maximum segment size.
    pub params: EncodingParams,
    /// How the AES key is chosen.
    pub key: KeyChoice,
    /// Whether, after it succeeds, the shares of servers that failed during the upload are placed
    /// on other servers (a repair of its own). Off inside a repair, which is that already.
    pub replace_dropped: bool,
    /// Copies (server node id, share) the upload must neither count as placed nor ask for: a
    /// repair's corrupt shares, which are placed afresh on other servers.
    pub avoid: BTreeSet<(NodeId, ShareNum)>,
}

impl UploadPlan {
    /// An ordinary upload: `params`, the key chosen by `key`, shares of servers that fail during
    /// it replaced afterwards, no copy avoided.
    pub fn new(params: EncodingParams, key: KeyChoice) -> Self {
        UploadPlan {
            params,
            key,
            replace_dropped: true,
            avoid: BTreeSet::new(),
        }
    }

    /// A repair's upload of `cap`: its own key, k, N and `segment_size` (so it encodes to the
    /// same shares), happy 1, never replacing dropped shares, and the `bad_copies` avoided.
    pub fn repair(cap: &ChkCap, segment_size: u64, bad_copies: impl IntoIterator<Item = (NodeId, ShareNum)>) -> Self {
        UploadPlan {
            params: EncodingParams {
                needed: cap.needed.into(),
                total: cap.total.into(),
                // Place shares wherever there is room: a repair that improves the file is worth
                // keeping even when fewer servers than `happy` are up.
                happy: 1,
                max_segment_size: segment_size,
            },
            key: KeyChoice::Given(cap.key),
            replace_dropped: false,
            avoid: bad_copies.into_iter().collect(),
        }
    }

    /// The avoided copies as (index into `servers`, share); copies on servers not listed are left out.
    pub fn avoided_by_index(&self, servers: &[NodeId]) -> BTreeSet<(usize, ShareNum)> {
        self.avoid
            .iter()
            .filter_map(|(node_id, share)| {
                let server = servers.iter().position(|s| s == node_id)?;
                Some((server, *share))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> ChkCap {
        ChkCap {
            key: [7; 16],
            ueb_hash: [0; 32],
            needed: 2,
            total: 5,
            size: 1000,
        }
    }

    #[test]
    fn an_ordinary_upload_replaces_dropped_shares_and_avoids_nothing() {
        let params = EncodingParams::default();
        let plan = UploadPlan::new(params, KeyChoice::Random);
        assert_eq!(plan.params, params);
        assert_eq!(plan.key, KeyChoice::Random);
        assert!(plan.replace_dropped);
        assert!(plan.avoid.is_empty());
        assert!(plan.avoided_by_index(&[[1; 20], [2; 20]]).is_empty());
    }

    #[test]
    fn a_repair_re_encodes_with_the_caps_own_key_and_shape_and_avoids_the_bad_copies() {
        let plan = UploadPlan::repair(&cap(), 4096, [([1; 20], 3), ([2; 20], 0)]);
        assert_eq!(
            plan.params,
            EncodingParams {
                needed: 2,
                total: 5,
                happy: 1,
                max_segment_size: 4096
            }
        );
        assert_eq!(plan.key, KeyChoice::Given([7; 16]));
        assert!(!plan.replace_dropped, "a repair must not start another repair");
        assert_eq!(plan.avoid, BTreeSet::from([([1; 20], 3), ([2; 20], 0)]));
    }

    #[test]
    fn avoided_copies_are_named_by_server_index_and_unknown_servers_are_left_out() {
        let plan = UploadPlan::repair(&cap(), 4096, [([1; 20], 3), ([2; 20], 0), ([9; 20], 4)]);
        let servers = [[2; 20], [5; 20], [1; 20]];
        assert_eq!(plan.avoided_by_index(&servers), BTreeSet::from([(2, 3), (0, 0)]));
    }
}
