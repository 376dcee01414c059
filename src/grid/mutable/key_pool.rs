//! A small pool of pre-generated RSA-2048 keys, so creating a directory need not wait for key generation.
//!
//! Generating a 2048-bit key takes tens to hundreds of milliseconds of CPU; a
//! background thread keeps a few ready, refilling as they are taken.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use rsa::RsaPrivateKey;

use crate::grid::Error;
use crate::grid::mutable::publish::generate_signing_key;

/// Pre-generated signing keys.
#[derive(Debug)]
pub struct KeyPool {
    ready: Mutex<Receiver<RsaPrivateKey>>,
}

impl KeyPool {
    /// Starts a background thread that keeps up to `size` keys ready (it stops when the pool is dropped).
    pub fn start(size: usize) -> Result<Self, Error> {
        let (tx, rx) = sync_channel(size.max(1));
        std::thread::Builder::new()
            .name("rsa-key-pool".into())
            .spawn(move || fill(tx))
            .map_err(|e| Error::Internal(format!("cannot start the key pool: {e}")))?;
        Ok(KeyPool { ready: Mutex::new(rx) })
    }

    /// A ready key, or `None` when the pool is momentarily empty.
    pub fn try_take(&self) -> Option<RsaPrivateKey> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).try_recv().ok()
    }
}

fn fill(tx: SyncSender<RsaPrivateKey>) {
    loop {
        let Ok(key) = generate_signing_key() else { return };
        // `send` blocks while the pool is full, and fails once the pool is gone.
        match tx.try_send(key) {
            Ok(()) => {}
            Err(TrySendError::Full(key)) => {
                if tx.send(key).is_err() {
                    return;
                }
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}
