//! Tahoe's Merkle hash trees: complete binary trees stored breadth-first, leaves padded with empty-leaf hashes.

use std::collections::BTreeMap;

use crate::grid::hashutil::{Hash, tag, tagged_hash, tagged_pair_hash};

/// The padding leaf at position `i` of the leaf row.
pub fn empty_leaf_hash(i: usize) -> Hash {
    tagged_hash(tag::MERKLE_EMPTY_LEAF, i.to_string().as_bytes())
}

/// The hash of an interior node from its two children.
pub fn pair_hash(left: &Hash, right: &Hash) -> Hash {
    tagged_pair_hash(tag::MERKLE_INTERNAL_NODE, left, right)
}

/// The number of leaf slots: the leaf count rounded up to a power of two (at least 1).
pub fn leaf_slots(num_leaves: usize) -> usize {
    num_leaves.max(1).next_power_of_two()
}

/// The number of nodes in a tree with `num_leaves` leaves.
pub fn node_count(num_leaves: usize) -> usize {
    2 * leaf_slots(num_leaves) - 1
}

/// Builds the whole tree (breadth-first, root first) over already-hashed leaves.
pub fn build(leaves: &[Hash]) -> Vec<Hash> {
    let slots = leaf_slots(leaves.len());
    let first_leaf = slots - 1;
    let mut nodes = vec![[0u8; 32]; 2 * slots - 1];
    for i in 0..slots {
        nodes[first_leaf + i] = leaves.get(i).copied().unwrap_or_else(|| empty_leaf_hash(i));
    }
    for i in (0..first_leaf).rev() {
        nodes[i] = pair_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]);
    }
    nodes
}

/// The indexes of the nodes a reader needs to check leaf `leaf` against the root.
///
/// These are the siblings of every node on the path from the leaf to the root,
/// plus the leaf itself when `include_leaf` is set. The root is never included
/// (for a one-leaf tree, the leaf is the root and has index 0).
pub fn needed_hashes(leaf: usize, num_leaves: usize, include_leaf: bool) -> Vec<usize> {
    let mut index = leaf_slots(num_leaves) - 1 + leaf;
    let mut needed = Vec::new();
    if include_leaf {
        needed.push(index);
    }
    while index > 0 {
        let sibling = if index % 2 == 1 { index + 1 } else { index - 1 };
        needed.push(sibling);
        index = (index - 1) / 2;
    }
    needed.sort_unstable();
    needed
}

/// The nodes of `tree` that a holder of leaf `leaf` stores (see [`needed_hashes`]).
pub fn chain(tree: &[Hash], leaf: usize, num_leaves: usize, include_leaf: bool) -> BTreeMap<usize, Hash> {
    needed_hashes(leaf, num_leaves, include_leaf)
        .into_iter()
        .map(|i| (i, tree[i]))
        .collect()
}

/// Appends a hash chain as `>H32s` pairs (2-byte index, hash) in index order.
pub fn encode_chain(chain: &BTreeMap<usize, Hash>, out: &mut Vec<u8>) {
    for (index, hash) in chain {
        out.extend_from_slice(&(*index as u16).to_be_bytes());
        out.extend_from_slice(hash);
    }
}

/// Parses `>H32s` pairs; `None` unless the bytes are whole pairs with no index repeated.
pub fn parse_chain(bytes: &[u8]) -> Option<BTreeMap<usize, Hash>> {
    if !bytes.len().is_multiple_of(34) {
        return None;
    }
    let nodes: BTreeMap<usize, Hash> = bytes
        .chunks_exact(34)
        .map(|c| Some((u16::from_be_bytes([c[0], c[1]]) as usize, c[2..].try_into().ok()?)))
        .collect::<Option<_>>()?;
    (nodes.len() == bytes.len() / 34).then_some(nodes)
}

/// Checks that `leaf_hash` at position `leaf` hashes up to `root` through `nodes`.
pub fn verify_leaf(
    leaf: usize,
    num_leaves: usize,
    leaf_hash: &Hash,
    nodes: &BTreeMap<usize, Hash>,
    root: &Hash,
) -> bool {
    let mut index = leaf_slots(num_leaves) - 1 + leaf;
    let mut hash = *leaf_hash;
    while index > 0 {
        let (sibling, is_left) = if index % 2 == 1 {
            (index + 1, true)
        } else {
            (index - 1, false)
        };
        let Some(other) = nodes.get(&sibling) else {
            return false;
        };
        hash = if is_left {
            pair_hash(&hash, other)
        } else {
            pair_hash(other, &hash)
        };
        index = (index - 1) / 2;
    }
    bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &root[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| tagged_hash(b"leaf", &[i as u8])).collect()
    }

    #[test]
    fn one_leaf_tree_is_the_leaf() {
        let l = leaves(1);
        assert_eq!(build(&l), l);
        assert_eq!(needed_hashes(0, 1, true), vec![0]);
        assert!(verify_leaf(0, 1, &l[0], &BTreeMap::new(), &l[0]));
    }

    #[test]
    fn padding_uses_positional_empty_leaves() {
        let l = leaves(3);
        let tree = build(&l);
        assert_eq!(tree.len(), 7);
        assert_eq!(tree[6], empty_leaf_hash(3));
        assert_eq!(tree[0], pair_hash(&tree[1], &tree[2]));
        assert_eq!(tree[2], pair_hash(&l[2], &empty_leaf_hash(3)));
    }

    #[test]
    fn needed_hashes_for_ten_shares_match_tahoe() {
        // 16 leaf slots, leaf 0 is node 15: needs 15 (itself), 16, 8, 4, 2.
        assert_eq!(needed_hashes(0, 10, true), vec![2, 4, 8, 15, 16]);
        assert_eq!(needed_hashes(0, 10, false), vec![2, 4, 8, 16]);
        assert_eq!(needed_hashes(0, 5, true), vec![2, 4, 7, 8]);
    }

    #[test]
    fn every_leaf_verifies_and_a_wrong_one_does_not() {
        for n in 1..20 {
            let l = leaves(n);
            let tree = build(&l);
            for (i, leaf) in l.iter().enumerate() {
                let nodes: BTreeMap<usize, Hash> =
                    needed_hashes(i, n, false).into_iter().map(|j| (j, tree[j])).collect();
                assert!(verify_leaf(i, n, leaf, &nodes, &tree[0]));
                assert!(!verify_leaf(i, n, &[9u8; 32], &nodes, &tree[0]));
            }
        }
    }
}
