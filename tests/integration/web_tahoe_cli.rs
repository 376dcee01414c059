//! The real `tahoe` CLI (tahoe-lafs 1.20) against `lafs run`'s web API, every output compared
//! with the same command against a real Tahoe client node on the same storage servers
//! (`tests/interop/tahoe_webapi.py` sets it up and compares).

/// The commands the script compares (one PASS line each).
const EXPECTED_CHECKS: usize = 57;

#[test]
fn the_real_tahoe_cli_gets_the_same_answers_from_lafs_as_from_tahoe() {
    crate::common::tahoe::run_comparison("tahoe_webapi.py", EXPECTED_CHECKS, 300);
}
