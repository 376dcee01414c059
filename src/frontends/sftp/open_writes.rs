//! Files open for writing, as every session of one user sees them: their current size and the mtime a client set, by path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What every session of one user can see of the others: files open for writing, by path.
#[derive(Debug, Default)]
pub struct OpenWrites {
    table: Mutex<HashMap<UserPath, Vec<Arc<WriteState>>>>,
}

/// A user name and a normalized path.
type UserPath = (String, String);

/// The visible state of one file open for writing.
#[derive(Debug, Default)]
pub struct WriteState {
    size: AtomicU64,
    mtime: Mutex<Option<f64>>,
    mode: Mutex<Option<u32>>,
}

impl WriteState {
    /// The file's size so far.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Records the file's size.
    pub fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Relaxed);
    }

    /// Records the mtime a client set, applied when the file is committed.
    pub fn set_mtime(&self, mtime: f64) {
        if let Ok(mut slot) = self.mtime.lock() {
            *slot = Some(mtime);
        }
    }

    /// The mtime a client set, if any.
    pub fn mtime(&self) -> Option<f64> {
        self.mtime.lock().ok().and_then(|slot| *slot)
    }

    /// Records the permission bits a client set, applied when the file is committed.
    pub fn set_mode(&self, mode: u32) {
        if let Ok(mut slot) = self.mode.lock() {
            *slot = Some(mode);
        }
    }

    /// The permission bits a client set, if any.
    pub fn mode(&self) -> Option<u32> {
        self.mode.lock().ok().and_then(|slot| *slot)
    }
}

/// One writer's entry in [`OpenWrites`], removed when dropped.
pub struct Registration {
    registry: Arc<OpenWrites>,
    key: UserPath,
    /// The writer's visible state.
    pub state: Arc<WriteState>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut table) = self.registry.table.lock()
            && let Some(states) = table.get_mut(&self.key)
        {
            states.retain(|s| !Arc::ptr_eq(s, &self.state));
            if states.is_empty() {
                table.remove(&self.key);
            }
        }
    }
}

impl OpenWrites {
    /// Enters a new writer of `path`.
    pub fn register(self: &Arc<Self>, user: &str, path: &str) -> Registration {
        let key = (user.to_string(), path.to_string());
        let state = Arc::new(WriteState::default());
        if let Ok(mut table) = self.table.lock() {
            table.entry(key.clone()).or_default().push(state.clone());
        }
        Registration {
            registry: self.clone(),
            key,
            state,
        }
    }

    /// The most recently opened writer of `path`, if any.
    pub fn latest(&self, user: &str, path: &str) -> Option<Arc<WriteState>> {
        let table = self.table.lock().ok()?;
        table
            .get(&(user.to_string(), path.to_string()))
            .and_then(|states| states.last().cloned())
    }
}
