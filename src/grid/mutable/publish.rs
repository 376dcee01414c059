//! Writing a mutable (SDMF) file: creating it, and publishing a new version by read-test-write.
//!
//! Every share write tests the checkstring the writer last read from that
//! server, so a concurrent writer is detected (Tahoe's uncoordinated write)
//! instead of silently overwritten.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

use crate::grid::crypto::{aes_ctr_at, random_bytes};
use crate::grid::mutable::keys::MutableKeys;
use crate::grid::mutable::retrieve::ServerMap;
use crate::grid::mutable::share::AnyShare;
use crate::grid::mutable::{mdmf, sdmf};
use crate::grid::selection;
use crate::grid::storage::{ShareNum, StorageServer, TestAndWrite, TestVector};
use crate::grid::uri::{MutableAccess, MutableCap, MutableFormat};
use crate::grid::{Error, Grid};

/// RSA key size Tahoe uses for mutable files.
pub const KEY_BITS: usize = 2048;

/// Makes a fresh RSA-2048 signing key (slow: call it off the async runtime).
pub fn generate_signing_key() -> Result<RsaPrivateKey, Error> {
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| Error::Internal(format!("RSA key generation failed: {e}")))
}

/// One planned share write: which server, which share, what it must find there first.
struct Slot {
    server: std::sync::Arc<dyn StorageServer>,
    share: ShareNum,
    expected: Vec<u8>,
}

impl Grid {
    /// Creates an SDMF file holding `plaintext` with the given signing key; returns its write cap.
    pub async fn create_mutable(&self, signing_key: RsaPrivateKey, plaintext: &[u8]) -> Result<MutableCap, Error> {
        self.create_mutable_as(signing_key, plaintext, MutableFormat::Sdmf)
            .await
    }

    /// Creates a mutable file of the given format (SDMF, Tahoe's default, or MDMF); returns its write cap.
    pub async fn create_mutable_as(
        &self,
        signing_key: RsaPrivateKey,
        plaintext: &[u8],
        format: MutableFormat,
    ) -> Result<MutableCap, Error> {
        let keys = MutableKeys::from_signing_key(&signing_key)?;
        let si = keys.storage_index;
        let servers = self.permuted_servers(si);
        let total = self.params().total.min(255);
        let ids: Vec<usize> = (0..servers.len()).collect();
        let assignment =
            selection::assign_homeless(&(0..total as ShareNum).collect::<Vec<_>>(), &ids, &BTreeMap::new());
        let slots = assignment
            .into_iter()
            .flat_map(|(server, shares)| {
                let server = servers[server].clone();
                shares.into_iter().map(move |share| Slot {
                    server: server.clone(),
                    share,
                    expected: Vec::new(),
                })
            })
            .collect();
        self.publish(&keys, &signing_key, plaintext, 1, format, slots).await?;
        Ok(keys.write_cap(format))
    }

    /// Publishes `plaintext` as the next version of a mutable file.
    ///
    /// Fails with [`Error::UncoordinatedWrite`] if another writer changed the file
    /// since it was read here; the caller may read again and retry.
    pub async fn update_mutable(&self, cap: &MutableCap, plaintext: &[u8]) -> Result<(), Error> {
        if !matches!(cap.access, MutableAccess::Write(_)) {
            return Err(Error::ReadOnly);
        }
        let _turn = self.lock_for_writing(cap.storage_index()).await;
        let map = self.settled_servermap(cap).await;
        self.update_mutable_from(cap, &map, plaintext).await
    }

    /// Publishes `plaintext` as the version after the ones in `map`, testing every
    /// share against what `map` saw: any version published since then makes this
    /// fail with [`Error::UncoordinatedWrite`] rather than be overwritten.
    pub async fn update_mutable_from(&self, cap: &MutableCap, map: &ServerMap, plaintext: &[u8]) -> Result<(), Error> {
        let MutableAccess::Write(writekey) = cap.access else {
            return Err(Error::ReadOnly);
        };
        let Some((_, current)) = map.newest_recoverable() else {
            return Err(Error::NotEnoughShares {
                needed: self.params().needed,
                found: 0,
            });
        };
        let mut der = current[0]
            .verified
            .as_ref()
            .ok_or(Error::Internal("unverified share".into()))?
            .encrypted_private_key()
            .to_vec();
        aes_ctr_at(&writekey, 0, &mut der);
        let signing_key = RsaPrivateKey::from_pkcs8_der(&der).map_err(|_| Error::IntegrityFailure {
            storage_index: cap.storage_index(),
        })?;
        let keys = MutableKeys::from_signing_key(&signing_key)?;
        if keys.writekey != writekey {
            return Err(Error::IntegrityFailure {
                storage_index: cap.storage_index(),
            });
        }
        let seqnum = map.highest_seqnum().unwrap_or(0) + 1;
        // Replace every share where it is (testing what we read there); place missing share numbers anew.
        let mut slots: Vec<Slot> = map
            .shares
            .iter()
            .map(|f| Slot {
                server: f.server.clone(),
                share: f.share,
                expected: f.checkstring.clone(),
            })
            .collect();
        let total = self.params().total.min(255) as ShareNum;
        let placed: BTreeSet<ShareNum> = slots.iter().map(|s| s.share).collect();
        let missing: Vec<ShareNum> = (0..total).filter(|s| !placed.contains(s)).collect();
        if !missing.is_empty() {
            let servers = self.permuted_servers(cap.storage_index());
            let used: BTreeSet<String> = slots.iter().map(|s| s.server.id().nickname.clone()).collect();
            let idle: Vec<usize> = (0..servers.len())
                .filter(|&i| !used.contains(&servers[i].id().nickname))
                .collect();
            let candidates = if idle.is_empty() {
                (0..servers.len()).collect()
            } else {
                idle
            };
            for (server, shares) in selection::assign_homeless(&missing, &candidates, &BTreeMap::new()) {
                for share in shares {
                    slots.push(Slot {
                        server: servers[server].clone(),
                        share,
                        expected: Vec::new(),
                    });
                }
            }
        }
        self.publish(&keys, &signing_key, plaintext, seqnum, cap.format, slots)
            .await
    }

    async fn publish(
        &self,
        keys: &MutableKeys,
        signing_key: &RsaPrivateKey,
        plaintext: &[u8],
        seqnum: u64,
        format: MutableFormat,
        slots: Vec<Slot>,
    ) -> Result<(), Error> {
        let params = *self.params();
        let (needed, total) = (params.needed as u8, params.total.min(255) as u8);
        let salt = random_bytes::<16>();
        let (keys_copy, key_copy, data) = (keys.clone(), signing_key.clone(), plaintext.to_vec());
        let shares: Vec<AnyShare> = tokio::task::spawn_blocking(move || match format {
            MutableFormat::Sdmf => sdmf::encode(&keys_copy, &key_copy, &data, seqnum, needed, total, salt)
                .map(|shares| shares.into_iter().map(AnyShare::Sdmf).collect()),
            MutableFormat::Mdmf => mdmf::encode(&keys_copy, &key_copy, &data, seqnum, needed, total)
                .map(|shares| shares.into_iter().map(AnyShare::Mdmf).collect()),
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let si = keys.storage_index;
        let writes = slots.iter().map(|slot| {
            let image = shares[slot.share as usize].encode();
            let test = if slot.expected.is_empty() {
                TestVector {
                    offset: 0,
                    size: 1,
                    specimen: Vec::new(),
                }
            } else {
                TestVector {
                    offset: 0,
                    size: slot.expected.len() as u64,
                    specimen: slot.expected.clone(),
                }
            };
            let new_length = Some(image.len() as u64);
            let tw = TestAndWrite {
                tests: vec![test],
                writes: vec![(0, image)],
                new_length,
            };
            let node_id = slot.server.id().node_id;
            let write_enabler = keys.write_enabler(&node_id);
            let lease = self.secrets().lease_for(si, &node_id);
            let server = slot.server.clone();
            async move {
                server
                    .mutable_read_test_write(si, write_enabler, lease, [(slot.share, tw)].into(), Vec::new())
                    .await
            }
        });
        // Happiness counts distinct servers, identified by node id.
        let mut server_numbers: BTreeMap<[u8; 20], usize> = BTreeMap::new();
        let mut placed: BTreeMap<ShareNum, BTreeSet<usize>> = BTreeMap::new();
        let mut collided = false;
        for (slot, result) in slots.iter().zip(join_all(writes).await) {
            let next = server_numbers.len();
            let server = *server_numbers.entry(slot.server.id().node_id).or_insert(next);
            match result {
                Ok(r) if r.success => {
                    placed.entry(slot.share).or_default().insert(server);
                }
                Ok(_) => collided = true,
                Err(e) => {
                    tracing::warn!(storage_index = %si, server = %slot.server.id().nickname, "mutable share write failed: {e}")
                }
            }
        }
        if collided {
            return Err(Error::UncoordinatedWrite { storage_index: si });
        }
        let achieved = selection::happiness(&placed);
        if achieved < params.happy {
            return Err(Error::HappinessNotMet {
                happy: params.happy,
                achieved,
                servers: placed.values().flatten().collect::<BTreeSet<_>>().len(),
            });
        }
        Ok(())
    }
}
