//! The storage service's state: the disk server it fronts, the expected swissnum, and the uploads in progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::upload_state::Upload;
use crate::grid::storage::disk::DiskServer;
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::StorageIndex;

/// The storage service behind the HTTPS listener.
pub struct StorageService {
    pub(super) backend: Arc<DiskServer>,
    /// The whole expected `Authorization` header value.
    pub(super) authorization: Vec<u8>,
    pub(super) application_version: String,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Upload>>,
}

impl std::fmt::Debug for StorageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization header holds the swissnum.
        write!(f, "StorageService({:?})", self.backend.id())
    }
}

impl StorageService {
    /// Serves `backend` to clients that present `swissnum`.
    pub fn new(backend: Arc<DiskServer>, swissnum: &str) -> Self {
        StorageService {
            backend,
            authorization: format!("Tahoe-LAFS {}", BASE64.encode(swissnum.as_bytes())).into_bytes(),
            application_version: format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION")),
            uploads: Mutex::default(),
        }
    }

    pub(super) fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}
