//! The immutable share upload routes: allocate, write (PATCH) and abort, and idle uploads dropped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode};
use subtle::ConstantTimeEq;

use super::messages::{
    Answer, Refusal, SecretKind, cbor, empty, lease_secrets, parse_content_range, read_body, read_cbor, secrets,
};
use super::service::StorageService;
use super::upload_state::{CheckedUpload, Upload, no_upload};
use crate::grid::storage::http::wire;
use crate::grid::storage::{Error, ShareNum, StorageServer};
use crate::grid::uri::StorageIndex;

/// An upload nobody has written to for this long is dropped (Tahoe's server does the same).
pub(super) const UPLOAD_IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Largest PATCH body (the 1.20 client sends about 1 MiB at a time).
const MAX_PATCH_BODY: usize = 64 * 1024 * 1024;
/// Largest share size an allocation may ask for.
const MAX_ALLOCATION: u64 = 1 << 56;

impl StorageService {
    pub(super) async fn allocate(&self, si: StorageIndex, request: Request<Incoming>) -> Answer {
        let found = secrets(
            request.headers(),
            &[SecretKind::LeaseRenew, SecretKind::LeaseCancel, SecretKind::Upload],
        )?;
        let (wanted, allocated_size) = wire::parse_allocate_request(&read_cbor(request, 8192).await?)?;
        if allocated_size > MAX_ALLOCATION {
            return Err(Error::NoSpace.into());
        }
        let upload_secret = found[&SecretKind::Upload].clone();
        self.drop_idle_uploads().await;
        // Shares this upload already holds stay allocated; those another upload is writing are
        // in neither set (as Tahoe answers).
        let (mine, others): (BTreeSet<ShareNum>, BTreeSet<ShareNum>) = {
            let uploads = self.uploads();
            let busy: Vec<_> = wanted
                .iter()
                .filter_map(|&n| {
                    uploads
                        .get(&(si, n))
                        .map(|u| (n, bool::from(u.secret.ct_eq(&upload_secret))))
                })
                .collect();
            (
                busy.iter().filter(|(_, same)| *same).map(|(n, _)| *n).collect(),
                busy.iter().filter(|(_, same)| !*same).map(|(n, _)| *n).collect(),
            )
        };
        let ask: BTreeSet<ShareNum> = wanted
            .difference(&mine)
            .filter(|n| !others.contains(n))
            .copied()
            .collect();
        let mut allocation = if ask.is_empty() {
            Default::default()
        } else {
            self.backend
                .allocate_buckets(si, lease_secrets(&found), &ask, allocated_size)
                .await?
        };
        {
            let mut uploads = self.uploads();
            for &n in &allocation.allocated {
                uploads.insert(
                    (si, n),
                    Upload {
                        secret: upload_secret.clone(),
                        allocated: allocated_size,
                        written: Vec::new(),
                        last_write: Instant::now(),
                        closing: false,
                        turn: Arc::default(),
                    },
                );
            }
        }
        allocation.allocated.extend(mine);
        Ok(cbor(
            StatusCode::OK,
            &wire::allocate_response(&allocation.already_have, &allocation.allocated),
        ))
    }

    /// Aborts uploads nobody has written to for [`UPLOAD_IDLE_LIMIT`].
    pub(super) async fn drop_idle_uploads(&self) {
        let idle: Vec<_> = {
            let mut uploads = self.uploads();
            let candidates: Vec<_> = uploads
                .iter()
                .filter(|(_, u)| !u.closing && u.last_write.elapsed() > UPLOAD_IDLE_LIMIT)
                .map(|(k, _)| *k)
                .collect();
            let mut idle = Vec::new();
            for key in candidates {
                // Dropped only with its turn held, as an abort is: a request holding the turn is
                // using the upload right now, so it is not idle.
                let Some(turn) = uploads.get(&key).and_then(|u| u.turn.clone().try_lock_owned().ok()) else {
                    continue;
                };
                uploads.remove(&key);
                idle.push((key, turn));
            }
            idle
        };
        for ((si, n), _turn) in idle {
            let _ = self.backend.abort_share(si, n).await;
        }
    }

    /// Checks the upload secret; returns it and the share's turn lock.
    pub(super) fn check_upload_secret(
        &self,
        si: StorageIndex,
        n: ShareNum,
        headers: &HeaderMap,
    ) -> Result<CheckedUpload, Refusal> {
        let mut found = secrets(headers, &[SecretKind::Upload])?;
        let secret = found.remove(&SecretKind::Upload).unwrap_or_default();
        let uploads = self.uploads();
        let upload = uploads.get(&(si, n)).ok_or_else(no_upload)?;
        if !bool::from(upload.secret.ct_eq(&secret)) {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong upload secret"));
        }
        Ok(CheckedUpload {
            secret,
            turn: upload.turn.clone(),
        })
    }

    pub(super) async fn write(&self, si: StorageIndex, n: ShareNum, request: Request<Incoming>) -> Answer {
        let checked = self.check_upload_secret(si, n, request.headers())?;
        let (begin, end) = parse_content_range(request.headers())?;
        let data = read_body(request.into_body(), MAX_PATCH_BODY).await?;
        if data.len() as u64 != end - begin {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body length does not match Content-Range",
            ));
        }
        // One write (or close, or abort) of a share at a time, from the checks to the record.
        let _turn = checked.turn.lock().await;
        let overlaps = {
            let mut uploads = self.uploads();
            let upload = checked.current(&mut uploads, (si, n))?;
            if upload.closing {
                return Err(no_upload());
            }
            if end > upload.allocated {
                return Err(Refusal::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "write past the allocated size",
                ));
            }
            upload.overlaps(begin, end)
        };
        // Rewriting bytes is fine when they are the same bytes (a retried request).
        for (b, e) in overlaps {
            let have = self.backend.read_incoming(si, n, b, (e - b) as usize).await?;
            if have[..] != data[(b - begin) as usize..(e - begin) as usize] {
                return Err(Refusal::new(StatusCode::CONFLICT, "write overlaps different bytes"));
            }
        }
        self.backend.write_share(si, n, begin, data).await?;
        let missing = {
            let mut uploads = self.uploads();
            let upload = checked.current(&mut uploads, (si, n))?;
            upload.record(begin, end);
            let missing = upload.missing();
            upload.closing = missing.is_empty();
            missing
        };
        if !missing.is_empty() {
            return Ok(cbor(StatusCode::OK, &wire::required_ranges(&missing)));
        }
        // The last byte: the share is made durable before anyone hears it is complete; until
        // then it stays in the map (closing), so no allocation or abort can touch it.
        let closed = self.backend.close_share(si, n).await;
        self.uploads().remove(&(si, n));
        closed?;
        Ok(cbor(StatusCode::CREATED, &wire::required_ranges(&[])))
    }

    pub(super) async fn abort(&self, si: StorageIndex, n: ShareNum, headers: &HeaderMap) -> Answer {
        let checked = match self.check_upload_secret(si, n, headers) {
            Ok(checked) => checked,
            Err(Refusal(StatusCode::NOT_FOUND, _)) => return Err(self.nothing_to_abort(si, n).await),
            Err(other) => return Err(other),
        };
        let _turn = checked.turn.lock().await;
        let removed = {
            let mut uploads = self.uploads();
            match checked.current(&mut uploads, (si, n)).map(|upload| upload.closing) {
                Ok(true) => Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "that share is completing")),
                Ok(false) => Ok(uploads.remove(&(si, n))),
                Err(refusal) => Err(refusal),
            }
        };
        match removed {
            Ok(Some(_)) => {
                self.backend.abort_share(si, n).await?;
                Ok(empty(StatusCode::OK))
            }
            // Completed (or aborted) while this request waited for the turn.
            Ok(None) | Err(Refusal(StatusCode::NOT_FOUND, _)) => Err(self.nothing_to_abort(si, n).await),
            Err(other) => Err(other),
        }
    }

    /// Why an abort found no upload: 405 if the share is complete, else 404.
    pub(super) async fn nothing_to_abort(&self, si: StorageIndex, n: ShareNum) -> Refusal {
        match self.backend.list_shares(si).await {
            Ok(shares) if shares.contains(&n) => {
                Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "that share is already complete")
            }
            Ok(_) => no_upload(),
            Err(e) => e.into(),
        }
    }
}
