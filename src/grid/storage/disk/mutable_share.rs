//! The mutable share path of a disk server: slot containers opened, created, written and leased,
//! and read-test-write applied atomically across a storage index's shares.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use subtle::ConstantTimeEq;

use super::files::{is_mutable_container, share_files};
use super::leases::{now_plus_lease, stored_secrets};
use crate::grid::hashutil::Hash;
use crate::grid::storage::mutable_container::{
    self, DATA_OFFSET, HEADER_LEASE_SLOTS, HEADER_SIZE, LEASE_SIZE, Lease, lease_slot_offset,
};
use crate::grid::storage::{Error, LeaseSecrets, ReadTestWriteResult, ShareNum, TestAndWrite};

/// The most bytes a read-test-write answers with, over all its reads of all shares: the read
/// vector is applied to every share of the storage index, so a small request could otherwise
/// make the server hold gigabytes (and the client refuses answers far smaller than this).
pub const MAX_READ_TEST_WRITE_ANSWER: u64 = 64 * 1024 * 1024;

/// An open mutable container.
pub(super) struct MutableShare {
    pub(super) file: File,
    header: mutable_container::Header,
}

impl MutableShare {
    pub(super) fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut raw = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| Error::io("read mutable header", e))?;
        let header = mutable_container::Header::decode(&raw)
            .ok_or_else(|| Error::io("read mutable header", std::io::Error::other("bad magic")))?;
        Ok(MutableShare { file, header })
    }

    fn create(path: &Path, node_id: [u8; 20], write_enabler: Hash) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let header = mutable_container::Header {
            version: 2,
            node_id,
            write_enabler,
            data_length: 0,
            extra_lease_offset: DATA_OFFSET,
        };
        let mut share = MutableShare { file, header };
        share
            .file
            .write_all_at(&[0u8; DATA_OFFSET as usize - HEADER_SIZE], HEADER_SIZE as u64)
            .map_err(|e| Error::io("write lease slots", e))?;
        share.write_extra_leases(&[])?;
        share.write_header()?;
        Ok(share)
    }

    /// The expiration times (Unix seconds) of the leases in its slots and after its data.
    pub(super) fn lease_expirations(&self) -> Result<Vec<u32>, Error> {
        let mut expirations = Vec::new();
        for slot in 0..HEADER_LEASE_SLOTS {
            let mut raw = [0u8; LEASE_SIZE];
            self.file
                .read_exact_at(&mut raw, lease_slot_offset(slot) as u64)
                .map_err(|e| Error::io("read leases", e))?;
            expirations.extend(Lease::decode(&raw).map(|l| l.expiration));
        }
        for raw in self.extra_leases()? {
            expirations.extend(Lease::decode(&raw).map(|l| l.expiration));
        }
        Ok(expirations)
    }

    fn write_header(&mut self) -> Result<(), Error> {
        self.file
            .write_all_at(&self.header.encode(), 0)
            .map_err(|e| Error::io("write mutable header", e))
    }

    /// Where a read of `len` bytes at `offset` starts and ends, short at the end of the data.
    fn read_extent(&self, offset: u64, len: u64) -> (u64, u64) {
        let end = offset.saturating_add(len).min(self.header.data_length);
        (offset.min(end), end)
    }

    pub(super) fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let (start, end) = self.read_extent(offset, len);
        let mut buf = vec![0u8; (end - start) as usize];
        self.file
            .read_exact_at(&mut buf, DATA_OFFSET + start)
            .map_err(|e| Error::io("read mutable share", e))?;
        Ok(buf)
    }

    fn extra_leases(&self) -> Result<Vec<[u8; LEASE_SIZE]>, Error> {
        let mut count = [0u8; 4];
        if self
            .file
            .read_at(&mut count, self.header.extra_lease_offset)
            .map_err(|e| Error::io("read leases", e))?
            < 4
        {
            return Ok(Vec::new());
        }
        let count = u32::from_be_bytes(count) as u64;
        let mut out = Vec::new();
        for i in 0..count {
            let mut record = [0u8; LEASE_SIZE];
            self.file
                .read_exact_at(&mut record, self.header.extra_lease_offset + 4 + i * LEASE_SIZE as u64)
                .map_err(|e| Error::io("read leases", e))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Writes the extra-lease block right after the data, and cuts the file there.
    fn write_extra_leases(&mut self, leases: &[[u8; LEASE_SIZE]]) -> Result<(), Error> {
        let at = DATA_OFFSET + self.header.data_length;
        let mut block = (leases.len() as u32).to_be_bytes().to_vec();
        for lease in leases {
            block.extend_from_slice(lease);
        }
        self.file
            .write_all_at(&block, at)
            .map_err(|e| Error::io("write leases", e))?;
        self.file
            .set_len(at + block.len() as u64)
            .map_err(|e| Error::io("truncate share", e))?;
        self.header.extra_lease_offset = at;
        Ok(())
    }

    fn write(&mut self, writes: &[(u64, Vec<u8>)], new_length: Option<u64>) -> Result<(), Error> {
        let extra = self.extra_leases()?;
        let old_end = self.header.data_length;
        let mut length = old_end;
        for (offset, data) in writes {
            length = length.max(offset + data.len() as u64);
        }
        if let Some(new_length) = new_length {
            length = length.min(new_length);
        }
        if writes.iter().any(|(offset, data)| offset + data.len() as u64 > old_end) {
            // Whatever follows the data (our extra-lease block, or in a container Tahoe truncated
            // with new-length, stale data up to its extra_lease_offset) must not show through a
            // gap a write past the end opens: Tahoe zero-fills from the old end. Cutting the file
            // there does that at once; the leases were read above and are written back below.
            self.file
                .set_len(DATA_OFFSET + old_end)
                .map_err(|e| Error::io("zero-fill mutable share", e))?;
        }
        for (offset, data) in writes {
            self.file
                .write_all_at(data, DATA_OFFSET + offset)
                .map_err(|e| Error::io("write mutable share", e))?;
        }
        self.header.data_length = length;
        self.write_extra_leases(&extra)?;
        self.write_header()
    }

    pub(super) fn add_or_renew_lease(&mut self, lease: &LeaseSecrets, node_id: [u8; 20]) -> Result<(), Error> {
        let (renew, cancel) = stored_secrets(u32::from(self.header.version), lease);
        let record = Lease {
            owner_num: 1,
            expiration: now_plus_lease(),
            renew_secret: renew,
            cancel_secret: cancel,
            node_id,
        };
        let mut empty_slot = None;
        for slot in 0..HEADER_LEASE_SLOTS {
            let at = lease_slot_offset(slot) as u64;
            let mut raw = [0u8; LEASE_SIZE];
            self.file
                .read_exact_at(&mut raw, at)
                .map_err(|e| Error::io("read lease", e))?;
            match Lease::decode(&raw) {
                Some(existing) if bool::from(existing.renew_secret.ct_eq(&renew)) => {
                    let renewed = Lease {
                        expiration: record.expiration,
                        ..existing
                    };
                    return self
                        .file
                        .write_all_at(&renewed.encode(), at)
                        .map_err(|e| Error::io("renew lease", e));
                }
                None if empty_slot.is_none() => empty_slot = Some(at),
                _ => {}
            }
        }
        let mut extra = self.extra_leases()?;
        for raw in extra.iter_mut() {
            if let Some(existing) = Lease::decode(raw)
                && bool::from(existing.renew_secret.ct_eq(&renew))
            {
                *raw = Lease {
                    expiration: record.expiration,
                    ..existing
                }
                .encode();
                return self.write_extra_leases(&extra);
            }
        }
        if let Some(at) = empty_slot {
            return self
                .file
                .write_all_at(&record.encode(), at)
                .map_err(|e| Error::io("add lease", e));
        }
        extra.push(record.encode());
        self.write_extra_leases(&extra)?;
        self.write_header()
    }
}

/// Applies a read-test-write to the shares in `dir`; the flag says whether a share changed (its
/// bytes and directory entries are written but not yet synced: the caller syncs them).
pub(super) fn read_test_write(
    dir: &Path,
    node_id: [u8; 20],
    write_enabler: Hash,
    lease: LeaseSecrets,
    test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
    read_vector: Vec<(u64, u64)>,
) -> Result<(ReadTestWriteResult, bool), Error> {
    let mut shares = BTreeMap::new();
    for (num, path) in share_files(dir)? {
        if is_mutable_container(&path)? {
            shares.insert(num, (MutableShare::open(&path)?, path));
        }
    }
    for (share, _) in shares.values() {
        if !bool::from(share.header.write_enabler.ct_eq(&write_enabler)) {
            return Err(Error::BadWriteEnabler);
        }
    }
    let answer = shares
        .values()
        .flat_map(|(share, _)| {
            read_vector.iter().map(|&(offset, size)| {
                let (start, end) = share.read_extent(offset, size);
                end - start
            })
        })
        .fold(0u64, u64::saturating_add);
    if answer > MAX_READ_TEST_WRITE_ANSWER {
        return Err(Error::OutOfBounds {
            offset: 0,
            len: answer,
            allocated: MAX_READ_TEST_WRITE_ANSWER,
        });
    }
    let mut result = ReadTestWriteResult::default();
    for (num, (share, _)) in &shares {
        let reads = read_vector
            .iter()
            .map(|&(offset, size)| share.read(offset, size))
            .collect::<Result<Vec<_>, _>>()?;
        result.data.insert(*num, reads);
    }
    for (num, tw) in &test_and_writes {
        for test in &tw.tests {
            // One byte more than the specimen tells a longer range from an equal one, so a
            // test's size cannot make the server read (and hold) more than the request carried.
            let size = test.size.min(test.specimen.len() as u64 + 1);
            let actual = match shares.get(num) {
                Some((share, _)) => share.read(test.offset, size)?,
                None => Vec::new(),
            };
            if !bool::from(actual.ct_eq(&test.specimen)) {
                return Ok((result, false));
            }
        }
    }
    // Made only when a share is created, so a request that creates none leaves no empty directory.
    let mut dirs_made = false;
    let mut changed = false;
    for (num, tw) in test_and_writes {
        if tw.new_length == Some(0) {
            if let Some((_, path)) = shares.remove(&num) {
                fs::remove_file(&path).map_err(|e| Error::io("delete mutable share", e))?;
                changed = true;
            }
            continue;
        }
        if tw.writes.is_empty() && tw.new_length.is_none() {
            continue;
        }
        let mut share = match shares.remove(&num) {
            Some((share, _)) => share,
            None => {
                if !dirs_made {
                    fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                    dirs_made = true;
                }
                MutableShare::create(&dir.join(num.to_string()), node_id, write_enabler)?
            }
        };
        share.write(&tw.writes, tw.new_length)?;
        share.add_or_renew_lease(&lease, node_id)?;
        changed = true;
    }
    result.success = true;
    Ok((result, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::storage::disk::tests::lease;
    use crate::grid::storage::disk::{DiskServer, share_lease_expirations};
    use crate::grid::storage::{StorageServer, TestVector};
    use crate::grid::uri::StorageIndex;

    #[tokio::test]
    async fn mutable_read_test_write_checks_tests_and_write_enabler() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([2; 16]);
        let create = TestAndWrite {
            tests: vec![TestVector {
                offset: 0,
                size: 1,
                specimen: vec![],
            }],
            writes: vec![(0, b"version-1".to_vec())],
            new_length: None,
        };
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [(3, create.clone())].into(), vec![(0, 9)])
            .await
            .unwrap();
        assert!(r.success);
        assert!(r.data.is_empty());
        // Creating again fails the "must not exist" test and reads the current bytes.
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [(3, create)].into(), vec![(0, 9)])
            .await
            .unwrap();
        assert!(!r.success);
        assert_eq!(r.data[&3], vec![b"version-1".to_vec()]);
        let update = TestAndWrite {
            tests: vec![TestVector {
                offset: 0,
                size: 9,
                specimen: b"version-1".to_vec(),
            }],
            writes: vec![(0, b"version-2".to_vec()), (20, b"tail".to_vec())],
            new_length: None,
        };
        assert!(matches!(
            server
                .mutable_read_test_write(si, [8; 32], lease(1), [(3, update.clone())].into(), vec![])
                .await,
            Err(Error::BadWriteEnabler)
        ));
        server.add_or_renew_lease(si, lease(7)).await.unwrap();
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [(3, update)].into(), vec![])
            .await
            .unwrap();
        assert!(r.success);
        let data = server.read_mutable_share(si, 3, 0, 100).await.unwrap();
        assert_eq!(data, b"version-2\0\0\0\0\0\0\0\0\0\0\0tail");
        assert_eq!(server.list_mutable_shares(si).await.unwrap(), [3].into());
        assert!(server.list_shares(si).await.unwrap().is_empty());
        let shrink = TestAndWrite {
            tests: vec![],
            writes: vec![],
            new_length: Some(7),
        };
        assert!(
            server
                .mutable_read_test_write(si, [9; 32], lease(1), [(3, shrink)].into(), vec![])
                .await
                .unwrap()
                .success
        );
        assert_eq!(server.read_mutable_share(si, 3, 0, 100).await.unwrap(), b"version");
        let delete = TestAndWrite {
            tests: vec![],
            writes: vec![],
            new_length: Some(0),
        };
        assert!(
            server
                .mutable_read_test_write(si, [9; 32], lease(1), [(3, delete)].into(), vec![])
                .await
                .unwrap()
                .success
        );
        assert!(server.list_mutable_shares(si).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn writes_past_the_end_keep_each_other_and_the_gaps_read_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([5; 16]);
        // As an MDMF publish does: one call writes a header at 0 and blocks further on.
        let create = TestAndWrite {
            tests: vec![],
            writes: vec![(0, b"header".to_vec()), (10, b"blocks".to_vec())],
            new_length: None,
        };
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [(0, create)].into(), vec![])
            .await
            .unwrap();
        assert!(r.success);
        assert_eq!(
            server.read_mutable_share(si, 0, 0, 100).await.unwrap(),
            b"header\0\0\0\0blocks"
        );
        // A write that starts inside the data and runs past its end, beside one further out.
        let grow = TestAndWrite {
            tests: vec![],
            writes: vec![(30, b"far".to_vec()), (14, b"KSMORE".to_vec())],
            new_length: None,
        };
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [(0, grow)].into(), vec![])
            .await
            .unwrap();
        assert!(r.success);
        let mut expected = b"header\0\0\0\0blocKSMORE".to_vec();
        expected.resize(30, 0);
        expected.extend_from_slice(b"far");
        assert_eq!(server.read_mutable_share(si, 0, 0, 100).await.unwrap(), expected);
    }

    /// Writes (untested) to share 0 of `si`; whether the server took it.
    async fn write_0(server: &DiskServer, si: StorageIndex, writes: &[(u64, &[u8])], new_length: Option<u64>) -> bool {
        let tw = TestAndWrite {
            tests: vec![],
            writes: writes.iter().map(|(o, d)| (*o, d.to_vec())).collect(),
            new_length,
        };
        server
            .mutable_read_test_write(si, [9; 32], lease(1), [(0, tw)].into(), vec![])
            .await
            .unwrap()
            .success
    }

    #[tokio::test]
    async fn a_write_past_the_end_of_a_share_tahoe_truncated_reads_zeros_not_stale_data() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([6; 16]);
        assert!(write_0(&server, si, &[(0, &[b'x'; 1000])], None).await);
        server.add_or_renew_lease(si, lease(2)).await.unwrap();
        server.add_or_renew_lease(si, lease(3)).await.unwrap();
        server.add_or_renew_lease(si, lease(4)).await.unwrap();
        server.add_or_renew_lease(si, lease(5)).await.unwrap();
        // An extra lease beyond the four slots, so there is an extra-lease block to keep.
        server.add_or_renew_lease(si, lease(6)).await.unwrap();
        // Tahoe's writev(new_length=10) only lowers data_length: the container keeps its size,
        // the 990 stale bytes after the data and the extra leases at the old extra_lease_offset.
        let path = server.share_dir(si).join("0");
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut raw = [0u8; 100];
        file.read_exact_at(&mut raw, 0).unwrap();
        let mut header = mutable_container::Header::decode(&raw).unwrap();
        assert_eq!(header.extra_lease_offset, DATA_OFFSET + 1000);
        header.data_length = 10;
        file.write_all_at(&header.encode(), 0).unwrap();
        drop(file);
        assert_eq!(server.read_mutable_share(si, 0, 0, 1000).await.unwrap(), vec![b'x'; 10]);

        assert!(write_0(&server, si, &[(600, b"new")], None).await);
        let mut expected = vec![b'x'; 10];
        expected.resize(600, 0);
        expected.extend_from_slice(b"new");
        assert_eq!(server.read_mutable_share(si, 0, 0, 1000).await.unwrap(), expected);
        let (_, expirations) = share_lease_expirations(&path).unwrap();
        assert_eq!(expirations.len(), 6, "the extra lease survives the move");
    }

    #[tokio::test]
    async fn new_length_applies_after_the_writes_and_truncated_bytes_never_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([7; 16]);
        // As Tahoe: the writes land first, then the share is cut to new_length.
        assert!(write_0(&server, si, &[(0, b"0123456789")], Some(4)).await);
        assert_eq!(server.read_mutable_share(si, 0, 0, 100).await.unwrap(), b"0123");
        // A new_length past the end does not grow the share.
        assert!(write_0(&server, si, &[], Some(50)).await);
        assert_eq!(server.read_mutable_share(si, 0, 0, 100).await.unwrap(), b"0123");
        // Growing again: the cut-off "456789" must read as zeros.
        assert!(write_0(&server, si, &[(12, b"AB")], None).await);
        assert_eq!(
            server.read_mutable_share(si, 0, 0, 100).await.unwrap(),
            b"0123\0\0\0\0\0\0\0\0AB"
        );
    }

    #[tokio::test]
    async fn read_test_write_answers_are_capped_in_total_over_all_shares() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([8; 16]);
        let half = MAX_READ_TEST_WRITE_ANSWER / 2;
        // Two sparse shares of half the cap each.
        let grow = |n: ShareNum| {
            let tw = TestAndWrite {
                tests: vec![],
                writes: vec![(half - 1, b"z".to_vec())],
                new_length: None,
            };
            (n, tw)
        };
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), [grow(0), grow(1)].into(), vec![])
            .await
            .unwrap();
        assert!(r.success);
        // Exactly the cap: answered.
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), BTreeMap::new(), vec![(0, half)])
            .await
            .unwrap();
        assert_eq!(
            r.data.values().map(|reads| reads[0].len() as u64).sum::<u64>(),
            2 * half
        );
        assert_eq!(r.data[&1][0].last(), Some(&b'z'));
        // A byte over it, counting every share's reads together: refused, and nothing written.
        let write = TestAndWrite {
            tests: vec![],
            writes: vec![(0, b"changed".to_vec())],
            new_length: None,
        };
        let refused = server
            .mutable_read_test_write(
                si,
                [9; 32],
                lease(1),
                [(0, write)].into(),
                vec![(0, half), (half - 1, 1)],
            )
            .await;
        assert!(matches!(refused, Err(Error::OutOfBounds { .. })), "{refused:?}");
        assert_eq!(server.read_mutable_share(si, 0, 0, 1).await.unwrap(), b"\0");
        // Reads past the end of the data cost nothing: only what is answered counts.
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), BTreeMap::new(), vec![(half, u64::MAX / 2); 30])
            .await
            .unwrap();
        assert!(r.data.values().flatten().all(Vec::is_empty));
    }

    #[tokio::test]
    async fn a_test_compares_its_whole_range_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([10; 16]);
        assert!(write_0(&server, si, &[(0, b"abcdef")], None).await);
        let test = |size: u64, specimen: &[u8]| {
            let tw = TestAndWrite {
                tests: vec![TestVector {
                    offset: 1,
                    size,
                    specimen: specimen.to_vec(),
                }],
                writes: vec![(0, b"abcdef".to_vec())],
                new_length: None,
            };
            server.mutable_read_test_write(si, [9; 32], lease(1), [(0, tw)].into(), vec![])
        };
        assert!(test(3, b"bcd").await.unwrap().success);
        assert!(
            !test(4, b"bcd").await.unwrap().success,
            "the range is longer than the specimen"
        );
        assert!(
            !test(2, b"bcd").await.unwrap().success,
            "the range is shorter than the specimen"
        );
        // Reaching past the data, the range is what the share has.
        assert!(test(1000, b"bcdef").await.unwrap().success);
        assert!(!test(1000, b"bcde").await.unwrap().success);
    }

    #[tokio::test]
    async fn share_directories_are_made_only_for_a_share_created_and_go_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([11; 16]);
        let prefix = server.share_dir(si).parent().unwrap().to_path_buf();
        // Reads, a failed test and a delete of a share that is not there create nothing.
        let r = server
            .mutable_read_test_write(si, [9; 32], lease(1), BTreeMap::new(), vec![(0, 10)])
            .await
            .unwrap();
        assert!(r.success && r.data.is_empty());
        assert!(write_0(&server, si, &[], Some(0)).await);
        assert!(!prefix.exists());
        assert!(write_0(&server, si, &[(0, b"data")], None).await);
        assert_eq!(server.list_mutable_shares(si).await.unwrap(), [0].into());
        assert!(write_0(&server, si, &[], Some(0)).await);
        assert!(server.list_mutable_shares(si).await.unwrap().is_empty());
    }
}
