//! The bookkeeping of an immutable share upload in progress: what was written, what is
//! missing, and the check that a request still has the upload it presented the secret for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hyper::StatusCode;
use subtle::ConstantTimeEq;

use super::messages::Refusal;
use crate::grid::storage::ShareNum;
use crate::grid::uri::StorageIndex;

/// An immutable share being uploaded over HTTP.
pub(super) struct Upload {
    pub(super) secret: Vec<u8>,
    pub(super) allocated: u64,
    /// Written byte ranges `[begin, end)`, sorted and merged.
    pub(super) written: Vec<(u64, u64)>,
    pub(super) last_write: Instant,
    /// Its last byte arrived and it is being made durable: no more writes or aborts.
    pub(super) closing: bool,
    /// Held from a write's checks to its record (and through the close), so a share's writes,
    /// its close and its abort happen one at a time.
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Upload(allocated={}, written={:?}, closing={})",
            self.allocated, self.written, self.closing
        )
    }
}

impl Upload {
    pub(super) fn missing(&self) -> Vec<(u64, u64)> {
        let mut missing = Vec::new();
        let mut at = 0;
        for &(begin, end) in &self.written {
            if begin > at {
                missing.push((at, begin));
            }
            at = at.max(end);
        }
        if at < self.allocated {
            missing.push((at, self.allocated));
        }
        missing
    }

    /// The parts of `[begin, end)` already written.
    pub(super) fn overlaps(&self, begin: u64, end: u64) -> Vec<(u64, u64)> {
        self.written
            .iter()
            .filter_map(|&(b, e)| {
                let (b, e) = (b.max(begin), e.min(end));
                (b < e).then_some((b, e))
            })
            .collect()
    }

    pub(super) fn record(&mut self, begin: u64, end: u64) {
        self.written.push((begin, end));
        self.written.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.written.len());
        for &(b, e) in &self.written {
            match merged.last_mut() {
                Some(last) if b <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((b, e)),
            }
        }
        self.written = merged;
        self.last_write = Instant::now();
    }
}

/// An upload a request presented the right secret for. The request checks it again once it
/// holds the turn: while it waited (for its body, or for the turn) the upload may have been
/// aborted, dropped as idle, or replaced by a new allocation of the same share.
pub(super) struct CheckedUpload {
    pub(super) secret: Vec<u8>,
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
}

impl CheckedUpload {
    /// The upload, if it is still the one checked; call with its turn held.
    pub(super) fn current<'a>(
        &self,
        uploads: &'a mut HashMap<(StorageIndex, ShareNum), Upload>,
        key: (StorageIndex, ShareNum),
    ) -> Result<&'a mut Upload, Refusal> {
        let upload = uploads.get_mut(&key).ok_or_else(no_upload)?;
        if !bool::from(upload.secret.ct_eq(&self.secret)) {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong upload secret"));
        }
        // The same secret on a new upload (a client that aborted and allocated again) is
        // still not the upload this request was checked against.
        if !Arc::ptr_eq(&upload.turn, &self.turn) {
            return Err(no_upload());
        }
        Ok(upload)
    }
}

pub(super) fn no_upload() -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "no upload of that share is in progress")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_ranges_merge_and_report_what_is_missing() {
        let mut upload = Upload {
            secret: vec![1],
            allocated: 100,
            written: Vec::new(),
            last_write: Instant::now(),
            closing: false,
            turn: Arc::default(),
        };
        assert_eq!(upload.missing(), vec![(0, 100)]);
        upload.record(50, 60);
        upload.record(0, 10);
        assert_eq!(upload.missing(), vec![(10, 50), (60, 100)]);
        assert_eq!(upload.overlaps(5, 55), vec![(5, 10), (50, 55)]);
        upload.record(10, 50);
        upload.record(60, 100);
        assert!(upload.missing().is_empty());
        assert_eq!(upload.written, vec![(0, 100)]);
    }
}
