//! Server selection: Tahoe's permuted ring, share placement, and servers-of-happiness.

use std::collections::{BTreeMap, BTreeSet};

use crate::grid::hashutil::permute_server_hash;
use crate::grid::storage::{ServerId, ShareNum};

/// Indexes of `servers` in the order Tahoe visits them for `storage_index`.
pub fn permuted_order(storage_index: &[u8], servers: &[&ServerId]) -> Vec<usize> {
    let mut order: Vec<(usize, [u8; 20])> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| (i, permute_server_hash(storage_index, &s.permutation_seed)))
        .collect();
    order.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    order.into_iter().map(|(i, _)| i).collect()
}

/// Servers-of-happiness: the size of a maximum matching of shares to distinct servers.
///
/// `placements` maps each share to the servers holding (or about to hold) it.
pub fn happiness(placements: &BTreeMap<ShareNum, BTreeSet<usize>>) -> usize {
    // Kuhn's augmenting paths; at most 256 shares, so this is instant.
    let mut server_owner: BTreeMap<usize, ShareNum> = BTreeMap::new();
    let mut matched = 0;
    for &share in placements.keys() {
        let mut visited = BTreeSet::new();
        if augment(share, placements, &mut server_owner, &mut visited) {
            matched += 1;
        }
    }
    matched
}

fn augment(
    share: ShareNum,
    placements: &BTreeMap<ShareNum, BTreeSet<usize>>,
    server_owner: &mut BTreeMap<usize, ShareNum>,
    visited: &mut BTreeSet<usize>,
) -> bool {
    for &server in placements.get(&share).into_iter().flatten() {
        if !visited.insert(server) {
            continue;
        }
        let free = match server_owner.get(&server) {
            None => true,
            Some(&other) => augment(other, placements, server_owner, visited),
        };
        if free {
            server_owner.insert(server, share);
            return true;
        }
    }
    false
}

/// Assigns shares that no server holds to `candidates` (in permuted order).
///
/// Servers that hold nothing yet are filled first, one share each, so the
/// placement spreads over as many servers as possible; then shares go round
/// the ring again.
pub fn assign_homeless(
    homeless: &[ShareNum],
    candidates: &[usize],
    existing: &BTreeMap<usize, usize>,
) -> BTreeMap<usize, BTreeSet<ShareNum>> {
    assign_homeless_avoiding(homeless, candidates, existing, &BTreeSet::new())
}

/// As [`assign_homeless`], but never gives a server a share paired with it in `avoid`
/// (a repair does not hand a share back to the server whose copy of it is corrupt).
/// A share every candidate must avoid stays unassigned.
pub fn assign_homeless_avoiding(
    homeless: &[ShareNum],
    candidates: &[usize],
    existing: &BTreeMap<usize, usize>,
    avoid: &BTreeSet<(usize, ShareNum)>,
) -> BTreeMap<usize, BTreeSet<ShareNum>> {
    let mut assigned: BTreeMap<usize, BTreeSet<ShareNum>> = BTreeMap::new();
    let load = |server: usize, assigned: &BTreeMap<usize, BTreeSet<ShareNum>>| {
        existing.get(&server).copied().unwrap_or(0) + assigned.get(&server).map_or(0, BTreeSet::len)
    };
    for &share in homeless {
        let least = candidates
            .iter()
            .filter(|&&s| !avoid.contains(&(s, share)))
            .min_by_key(|&&s| load(s, &assigned));
        if let Some(&least) = least {
            assigned.entry(least).or_default().insert(share);
        }
    }
    assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placements(pairs: &[(ShareNum, &[usize])]) -> BTreeMap<ShareNum, BTreeSet<usize>> {
        pairs
            .iter()
            .map(|(s, servers)| (*s, servers.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn happiness_counts_distinct_servers_matched_to_shares() {
        assert_eq!(happiness(&placements(&[])), 0);
        assert_eq!(happiness(&placements(&[(0, &[0]), (1, &[0]), (2, &[0])])), 1);
        assert_eq!(happiness(&placements(&[(0, &[0, 1]), (1, &[0])])), 2);
        assert_eq!(happiness(&placements(&[(0, &[0]), (1, &[1]), (2, &[2]), (3, &[2])])), 3);
    }

    #[test]
    fn homeless_shares_spread_before_doubling_up() {
        let shares: Vec<ShareNum> = (0..10).collect();
        let assigned = assign_homeless(&shares, &[4, 2, 0], &BTreeMap::new());
        let counts: Vec<usize> = [4, 2, 0].iter().map(|s| assigned[s].len()).collect();
        assert_eq!(counts, vec![4, 3, 3]);
        assert!(assigned[&4].contains(&0));
        assert!(assigned[&2].contains(&1));
        let with_existing = assign_homeless(&[5], &[4, 2], &[(4, 1)].into());
        assert_eq!(with_existing[&2], [5].into());
        // A share is never given to a server it must avoid, even the least loaded one.
        let avoiding = assign_homeless_avoiding(&[5, 6], &[4, 2], &[(4, 1)].into(), &[(2, 5), (4, 5)].into());
        assert_eq!(avoiding, [(2, [6].into())].into());
    }

    #[test]
    fn permuted_order_matches_tahoe_hash() {
        let a = ServerId {
            nickname: "a".into(),
            node_id: [0; 20],
            permutation_seed: b"seed-a".to_vec(),
        };
        let b = ServerId {
            nickname: "b".into(),
            node_id: [1; 20],
            permutation_seed: b"seed-b".to_vec(),
        };
        let order = permuted_order(b"SI", &[&a, &b]);
        let ha = permute_server_hash(b"SI", b"seed-a");
        let hb = permute_server_hash(b"SI", b"seed-b");
        assert_eq!(order, if ha < hb { vec![0, 1] } else { vec![1, 0] });
    }
}
