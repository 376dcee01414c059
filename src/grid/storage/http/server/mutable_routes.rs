//! The mutable share route: read-test-write.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::messages::{Answer, Refusal, SecretKind, cbor, hash32, lease_secrets, read_cbor, secrets};
use super::service::StorageService;
use crate::grid::storage::disk::MAX_READ_TEST_WRITE_ANSWER;
use crate::grid::storage::http::wire;
use crate::grid::storage::{Error, StorageServer};
use crate::grid::uri::StorageIndex;

/// Largest CBOR request body (Tahoe allows 2^48 for read-test-write; mutable shares here are small).
const MAX_CBOR_BODY: usize = 64 * 1024 * 1024;

impl StorageService {
    pub(super) async fn read_test_write(&self, si: StorageIndex, request: Request<Incoming>) -> Answer {
        let found = secrets(
            request.headers(),
            &[
                SecretKind::WriteEnabler,
                SecretKind::LeaseRenew,
                SecretKind::LeaseCancel,
            ],
        )?;
        let (test_and_writes, read_vector) =
            wire::parse_read_test_write_request(&read_cbor(request, MAX_CBOR_BODY).await?)?;
        let result = self
            .backend
            .mutable_read_test_write(
                si,
                hash32(&found[&SecretKind::WriteEnabler]),
                lease_secrets(&found),
                test_and_writes,
                read_vector,
            )
            .await
            .map_err(|e| match e {
                // The request asked for too much at once: its fault, not the share's size (a 416
                // would tell the client to retry a different range of the same share).
                Error::OutOfBounds { .. } => Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the reads would answer more than {MAX_READ_TEST_WRITE_ANSWER} bytes"),
                ),
                other => other.into(),
            })?;
        Ok(cbor(StatusCode::OK, &wire::read_test_write_response(&result)))
    }
}
