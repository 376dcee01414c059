//! The request-head parsers of the storage server, reachable from the fuzz harness (fuzz/): they
//! stay private to the server, and this runs them the way its routes do.

use std::sync::Arc;
use std::time::Instant;

use hyper::header::HeaderMap;

use super::messages::{SecretKind, lease_secrets, parse_content_range, parse_range, secrets};
use super::upload_state::Upload;
use crate::grid::base32;

/// Runs the path, secret and range parsers on a sequence of requests for one share upload of
/// `allocated` bytes, recording each PATCH range that fits as the write route does, and returns
/// what each parser made of each request. Panics if the written and missing ranges stop
/// partitioning `[0, allocated)`.
pub fn requests(requests: &[(String, HeaderMap)], allocated: u64) -> Vec<String> {
    let wanted_sets: [&[SecretKind]; 4] = [
        &[],
        &[SecretKind::Upload],
        &[SecretKind::LeaseRenew, SecretKind::LeaseCancel],
        &[SecretKind::WriteEnabler],
    ];
    let mut upload = Upload {
        secret: Vec::new(),
        allocated,
        written: Vec::new(),
        last_write: Instant::now(),
        closing: false,
        turn: Arc::new(tokio::sync::Mutex::new(())),
    };
    let mut outcomes = Vec::new();
    for (path, headers) in requests {
        let segments: Vec<bool> = path
            .split('/')
            .map(|s| base32::decode_array::<16>(s).is_some())
            .collect();
        outcomes.push(format!("path {segments:?}"));
        for wanted in wanted_sets {
            let found = secrets(headers, wanted);
            if let Ok(found) = &found
                && wanted.contains(&SecretKind::LeaseRenew)
            {
                let _ = lease_secrets(found);
            }
            outcomes.push(format!("secrets {:?}", found.map(|f| f.len()).map_err(|r| r.1)));
        }
        outcomes.push(format!("range {:?}", parse_range(headers).map_err(|r| r.1)));
        let content_range = parse_content_range(headers);
        if let Ok((begin, end)) = content_range
            && end <= allocated
        {
            let _ = upload.overlaps(begin, end);
            upload.record(begin, end);
            let mut covered: Vec<(u64, u64)> = upload.written.iter().chain(&upload.missing()).copied().collect();
            covered.sort_unstable();
            let mut at = 0;
            for (b, e) in covered {
                assert!(
                    b == at && e > b,
                    "ranges {:?} leave a gap or overlap at {at}",
                    upload.written
                );
                at = e;
            }
            assert_eq!(
                at, allocated,
                "ranges {:?} do not end at the allocation",
                upload.written
            );
        }
        outcomes.push(format!("content range {:?}", content_range.map_err(|r| r.1)));
    }
    outcomes
}
