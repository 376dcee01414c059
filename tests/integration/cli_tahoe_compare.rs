//! The `lafs` CLI beside the real `tahoe` CLI (tahoe-lafs 1.20) on a tree of 1,000 files in 50
//! directories (`tests/interop/lafs_cli_compare.py` sets up the nodes and compares).

/// The comparisons the script makes (one PASS line each).
const EXPECTED_CHECKS: usize = 19;

#[test]
fn lafs_commands_give_what_tahoe_gives_on_a_thousand_file_tree() {
    crate::common::tahoe::run_comparison("lafs_cli_compare.py", EXPECTED_CHECKS, 600);
}
