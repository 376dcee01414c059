//! A storage server on local disk, in Tahoe's directory layout and share container formats.
//!
//! `<root>/shares/<2 chars>/<SI>/<shnum>` holds complete shares; uploads in
//! progress live under `<root>/shares/incoming/` and are renamed into place
//! only after an fsync, so a crash never leaves a partial share where readers
//! look. A real Tahoe storage node pointed at `<root>` reads the same files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use blake2::{Blake2b256, Digest};
use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::mutable_container::{self, DATA_OFFSET, HEADER_LEASE_SLOTS, LEASE_SIZE, Lease};
use super::{
    Allocation, Error, LeaseSecrets, ReadTestWriteResult, ServerId, ServerVersion, ShareNum, StorageServer,
    TestAndWrite,
};
use crate::grid::base32;
use crate::grid::crypto::random_bytes;
use crate::grid::hashutil::Hash;
use crate::grid::uri::StorageIndex;

/// Immutable container header: `>LLL` (version, max size, lease count).
const IMMUTABLE_HEADER: u64 = 12;
/// Immutable lease record: `>L32s32sL`.
const IMMUTABLE_LEASE: u64 = 72;
/// Tahoe's lease duration.
pub const LEASE_SECONDS: u64 = 31 * 24 * 3600;
/// The immutable container version new shares get (as Tahoe 1.20).
const IMMUTABLE_CONTAINER_VERSION: u32 = 2;
/// The most bytes a read-test-write answers with, over all its reads of all shares: the read
/// vector is applied to every share of the storage index, so a small request could otherwise
/// make the server hold gigabytes (and the client refuses answers far smaller than this).
pub const MAX_READ_TEST_WRITE_ANSWER: u64 = 64 * 1024 * 1024;

/// A storage server whose shares are files under one directory.
#[derive(Debug)]
pub struct DiskServer {
    root: PathBuf,
    id: ServerId,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Arc<Upload>>>,
    /// Read-test-write must be atomic across all shares of a storage index.
    mutable_lock: Arc<Mutex<()>>,
    /// Adding a lease to an immutable share rewrites its lease count and appends a record:
    /// two at once would both append at the same place and one lease would be lost.
    lease_locks: Arc<StripedLocks>,
}

/// Locks by storage index, a fixed number shared among indexes (which are uniformly random),
/// so nothing grows with the number of indexes ever touched.
struct StripedLocks(Vec<Mutex<()>>);

impl std::fmt::Debug for StripedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StripedLocks({})", self.0.len())
    }
}

impl StripedLocks {
    const STRIPES: usize = 64;

    fn new() -> Self {
        StripedLocks((0..Self::STRIPES).map(|_| Mutex::new(())).collect())
    }

    fn lock(&self, si: &StorageIndex) -> std::sync::MutexGuard<'_, ()> {
        let stripe = usize::from(u16::from_be_bytes([si.0[0], si.0[1]])) % self.0.len();
        // The lock guards no data of its own: a panic while it was held leaves nothing to repair.
        self.0[stripe].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The locks a server takes to add or renew a share's leases (and, for a mutable share, to
/// write it); its lease crawler takes them too, so a lease renewed while the crawler judges a
/// share is never deleted with it.
#[derive(Debug, Clone)]
pub struct ShareLocks {
    mutable: Arc<Mutex<()>>,
    leases: Arc<StripedLocks>,
}

impl ShareLocks {
    /// Holds off lease changes (and mutable writes) to the `kind` shares of `si` while held.
    pub fn lock(&self, si: &StorageIndex, kind: ShareKind) -> std::sync::MutexGuard<'_, ()> {
        match kind {
            ShareKind::Immutable => self.leases.lock(si),
            // The lock guards no data of its own: a panic while it was held leaves nothing to repair.
            ShareKind::Mutable => self.mutable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }
}

#[derive(Debug)]
struct Upload {
    file: File,
    incoming: PathBuf,
    max_size: u64,
    /// The end of the furthest write: a share allocated larger than it turned out is trimmed to it.
    written_end: std::sync::atomic::AtomicU64,
}

fn now_plus_lease() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(now + LEASE_SECONDS).unwrap_or(u32::MAX)
}

/// v2 containers store `BLAKE2b-256(secret)` rather than the secret itself.
fn hash_lease_secret(secret: &Hash) -> Hash {
    Blake2b256::digest(secret).into()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Unavailable(format!("storage worker failed: {e}")))?
}

fn read_identity(path: &Path) -> Option<[u8; 20]> {
    base32::decode_array(fs::read_to_string(path).ok()?.trim())
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync {}", dir.display()), e))
}

/// Locks a just-created incoming file for as long as the upload holds it, so that a server
/// opening the same directory (another process on a local grid) leaves it alone; `None` if such
/// a server took it for a leftover and removed it before the lock was taken.
fn lock_claim(file: File, path: &Path) -> Option<File> {
    use std::os::unix::fs::MetadataExt as _;
    file.try_lock().ok()?;
    let ours = file.metadata().ok()?;
    let named = fs::metadata(path).ok()?;
    (ours.dev() == named.dev() && ours.ino() == named.ino()).then_some(file)
}

/// Removes the partial uploads in `shares/incoming/`, as Tahoe's storage server does when it
/// starts: nobody can finish them, and each file is a claim that keeps its share from being
/// allocated again. Files another open server is still uploading (locked) are kept.
fn clear_incoming(incoming: &Path) -> Result<(), Error> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, Error> {
        match fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::io(format!("list {}", dir.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(format!("list {}", dir.display()), e)),
        }
    };
    for prefix in list(incoming)? {
        for si_dir in list(&prefix)? {
            for path in list(&si_dir)? {
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                // Held while removing, so an upload cannot lock the file in between.
                if file.try_lock().is_ok() {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
                    }
                }
            }
            // Fails, harmlessly, while another server's upload is still in it.
            let _ = fs::remove_dir(&si_dir);
        }
        let _ = fs::remove_dir(&prefix);
    }
    Ok(())
}

/// Creates an upload's file in `shares/incoming/` exclusively: the file is the claim on the
/// share, so of two allocations racing for it exactly one gets it (`None` for the other).
fn claim_incoming(dir: &Path, path: &Path) -> Result<Option<File>, Error> {
    // A closing upload removes the incoming directories it empties, perhaps between our
    // create_dir_all and our create; then the directory is simply made again.
    for _ in 0..3 {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        match OpenOptions::new().read(true).write(true).create_new(true).open(path) {
            Ok(file) => return Ok(lock_claim(file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
    }
    Err(Error::io(
        format!("create {}", path.display()),
        std::io::Error::other("its directory kept disappearing"),
    ))
}

impl DiskServer {
    /// Opens (creating if needed) a server rooted at `root`.
    pub fn open(root: impl Into<PathBuf>, nickname: impl Into<String>) -> Result<Self, Error> {
        let root = root.into();
        let incoming = root.join("shares").join("incoming");
        clear_incoming(&incoming)?;
        fs::create_dir_all(&incoming).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let id_path = root.join("node-id");
        let node_id = match read_identity(&id_path) {
            Some(id) => id,
            None => {
                let id: [u8; 20] = random_bytes();
                fs::write(&id_path, base32::encode(&id) + "\n")
                    .map_err(|e| Error::io(format!("write {}", id_path.display()), e))?;
                id
            }
        };
        let id = ServerId {
            nickname: nickname.into(),
            node_id,
            permutation_seed: node_id.to_vec(),
        };
        Ok(DiskServer {
            root,
            id,
            uploads: Mutex::new(HashMap::new()),
            mutable_lock: Arc::new(Mutex::new(())),
            lease_locks: Arc::new(StripedLocks::new()),
        })
    }

    /// Reads back bytes already written to a share that is still being uploaded
    /// (so a repeated write can be told from a conflicting one).
    pub async fn read_incoming(
        &self,
        si: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, Error> {
        let upload = self
            .uploads()
            .get(&(si, share_num))
            .cloned()
            .ok_or(Error::NoSuchUpload)?;
        blocking(move || {
            let mut buf = vec![0u8; len];
            upload
                .file
                .read_exact_at(&mut buf, IMMUTABLE_HEADER + offset)
                .map_err(|e| Error::io("read incoming share", e))?;
            Ok(buf)
        })
        .await
    }

    /// The directory this server keeps its shares under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The locks this server takes around lease changes and mutable writes.
    pub fn share_locks(&self) -> ShareLocks {
        ShareLocks {
            mutable: self.mutable_lock.clone(),
            leases: self.lease_locks.clone(),
        }
    }

    /// Where complete shares of a storage index live.
    pub fn share_dir(&self, si: StorageIndex) -> PathBuf {
        share_dir(&self.root.join("shares"), si)
    }

    fn incoming_dir(&self, si: StorageIndex) -> PathBuf {
        share_dir(&self.root.join("shares").join("incoming"), si)
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Arc<Upload>>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.uploads.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn share_dir(base: &Path, si: StorageIndex) -> PathBuf {
    let text = si.to_string();
    base.join(&text[..2]).join(text)
}

/// Share files in a directory, by number.
fn share_files(dir: &Path) -> Result<BTreeMap<ShareNum, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        if let Some(num) = entry.file_name().to_str().and_then(|n| n.parse::<ShareNum>().ok()) {
            out.insert(num, entry.path());
        }
    }
    Ok(out)
}

fn is_mutable_container(path: &Path) -> Result<bool, Error> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut head = [0u8; 32];
    let n = file
        .read_at(&mut head, 0)
        .map_err(|e| Error::io("read share header", e))?;
    Ok(n == 32 && (head == mutable_container::magic(1) || head == mutable_container::magic(2)))
}

/// An immutable container's header fields and where its data ends.
struct ImmutableContainer {
    version: u32,
    num_leases: u64,
    data_len: u64,
}

/// The container's header, or `None` if the file is not an immutable container: too short for
/// its header, another version (a mutable container's magic, say), or too short for its leases.
fn read_immutable_container(file: &File) -> Result<Option<ImmutableContainer>, Error> {
    let mut header = [0u8; 12];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("read share header", e)),
    }
    let version = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let num_leases = u64::from(u32::from_be_bytes([header[8], header[9], header[10], header[11]]));
    let file_len = file.metadata().map_err(|e| Error::io("stat share", e))?.len();
    let data_len = file_len
        .checked_sub(IMMUTABLE_HEADER + IMMUTABLE_LEASE * num_leases)
        .filter(|_| version == 1 || version == 2);
    Ok(data_len.map(|data_len| ImmutableContainer {
        version,
        num_leases,
        data_len,
    }))
}

fn not_immutable_container() -> Error {
    Error::io("read share", std::io::Error::other("not an immutable share container"))
}

/// Writes a new immutable container's header and its uploader's lease (owner 0, as Tahoe's).
fn start_container(file: &File, allocated_size: u64, lease: &LeaseSecrets) -> Result<(), Error> {
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(&IMMUTABLE_CONTAINER_VERSION.to_be_bytes());
    header.extend_from_slice(&u32::try_from(allocated_size).unwrap_or(u32::MAX).to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    file.write_all_at(&header, 0)
        .map_err(|e| Error::io("write share header", e))?;
    let record = immutable_lease_bytes(IMMUTABLE_CONTAINER_VERSION, 0, lease);
    file.write_all_at(&record, IMMUTABLE_HEADER + allocated_size)
        .map_err(|e| Error::io("write lease", e))
}

/// Shrinks an immutable container allocated for `allocated` data bytes to the `written` it holds:
/// the lease records move up behind the data (readers find them from the file size, as Tahoe's do).
fn trim_container(file: &File, written: u64, allocated: u64) -> Result<(), Error> {
    let len = file.metadata().map_err(|e| Error::io("stat share", e))?.len();
    let leases = len.saturating_sub(IMMUTABLE_HEADER + allocated);
    let mut records = vec![0u8; leases as usize];
    file.read_exact_at(&mut records, IMMUTABLE_HEADER + allocated)
        .map_err(|e| Error::io("read leases", e))?;
    file.write_all_at(&records, IMMUTABLE_HEADER + written)
        .map_err(|e| Error::io("move leases", e))?;
    file.set_len(IMMUTABLE_HEADER + written + leases)
        .map_err(|e| Error::io("trim share", e))?;
    file.write_all_at(&u32::try_from(written).unwrap_or(u32::MAX).to_be_bytes(), 4)
        .map_err(|e| Error::io("write share header", e))
}

fn immutable_lease_bytes(version: u32, owner: u32, lease: &LeaseSecrets) -> [u8; 72] {
    let (renew, cancel) = if version == 1 {
        (lease.renew, lease.cancel)
    } else {
        (hash_lease_secret(&lease.renew), hash_lease_secret(&lease.cancel))
    };
    let mut out = [0u8; 72];
    out[..4].copy_from_slice(&owner.to_be_bytes());
    out[4..36].copy_from_slice(&renew);
    out[36..68].copy_from_slice(&cancel);
    out[68..].copy_from_slice(&now_plus_lease().to_be_bytes());
    out
}

fn add_or_renew_immutable_lease(path: &Path, lease: &LeaseSecrets) -> Result<(), Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let container = read_immutable_container(&file)?.ok_or_else(not_immutable_container)?;
    let leases_at = IMMUTABLE_HEADER + container.data_len;
    let wanted = if container.version == 1 {
        lease.renew
    } else {
        hash_lease_secret(&lease.renew)
    };
    for i in 0..container.num_leases {
        let at = leases_at + i * IMMUTABLE_LEASE;
        let mut record = [0u8; 72];
        file.read_exact_at(&mut record, at)
            .map_err(|e| Error::io("read lease", e))?;
        if bool::from(record[4..36].ct_eq(&wanted)) {
            file.write_all_at(&now_plus_lease().to_be_bytes(), at + 68)
                .map_err(|e| Error::io("renew lease", e))?;
            return file.sync_data().map_err(|e| Error::io("fsync lease", e));
        }
    }
    let record = immutable_lease_bytes(container.version, 1, lease);
    file.write_all_at(&record, leases_at + container.num_leases * IMMUTABLE_LEASE)
        .map_err(|e| Error::io("add lease", e))?;
    let count = u32::try_from(container.num_leases + 1).unwrap_or(u32::MAX);
    file.write_all_at(&count.to_be_bytes(), 8)
        .map_err(|e| Error::io("add lease", e))?;
    file.sync_data().map_err(|e| Error::io("fsync lease", e))
}

/// Whether a share file holds an immutable or a mutable share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// An immutable (CHK) share container.
    Immutable,
    /// A mutable (SDMF/MDMF) slot container.
    Mutable,
}

/// The kind of a share file and the expiration times (Unix seconds) of its leases.
pub fn share_lease_expirations(path: &Path) -> Result<(ShareKind, Vec<u32>), Error> {
    if is_mutable_container(path)? {
        let share = MutableShare::open(path)?;
        let mut expirations = Vec::new();
        for slot in 0..HEADER_LEASE_SLOTS {
            let mut raw = [0u8; LEASE_SIZE];
            share
                .file
                .read_exact_at(&mut raw, 100 + (slot * LEASE_SIZE) as u64)
                .map_err(|e| Error::io("read leases", e))?;
            expirations.extend(Lease::decode(&raw).map(|l| l.expiration));
        }
        for raw in share.extra_leases()? {
            expirations.extend(Lease::decode(&raw).map(|l| l.expiration));
        }
        return Ok((ShareKind::Mutable, expirations));
    }
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let container = read_immutable_container(&file)?.ok_or_else(not_immutable_container)?;
    let leases_at = IMMUTABLE_HEADER + container.data_len;
    let mut expirations = Vec::new();
    for i in 0..container.num_leases {
        let mut raw = [0u8; 4];
        file.read_exact_at(&mut raw, leases_at + i * IMMUTABLE_LEASE + 68)
            .map_err(|e| Error::io("read leases", e))?;
        expirations.push(u32::from_be_bytes(raw));
    }
    Ok((ShareKind::Immutable, expirations))
}

#[async_trait]
impl StorageServer for DiskServer {
    fn id(&self) -> &ServerId {
        &self.id
    }

    async fn version(&self) -> Result<ServerVersion, Error> {
        let root = self.root.clone();
        let available_space =
            blocking(move || fs4::available_space(&root).map_err(|e| Error::io("statvfs", e))).await?;
        Ok(ServerVersion {
            available_space,
            maximum_immutable_share_size: available_space,
        })
    }

    async fn allocate_buckets(
        &self,
        si: StorageIndex,
        lease: LeaseSecrets,
        share_nums: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<Allocation, Error> {
        let final_dir = self.share_dir(si);
        let incoming_dir = self.incoming_dir(si);
        let wanted = share_nums.clone();
        let root = self.root.clone();
        let lease_locks = self.lease_locks.clone();
        let busy: BTreeSet<ShareNum> = self
            .uploads()
            .keys()
            .filter(|(s, _)| *s == si)
            .map(|(_, n)| *n)
            .collect();
        let (allocation, opened) = blocking(move || {
            let mut opened: Vec<(ShareNum, Upload)> = Vec::new();
            let claim = || -> Result<Allocation, Error> {
                let existing = share_files(&final_dir)?;
                let mut allocation = Allocation::default();
                let mut space = fs4::available_space(&root).map_err(|e| Error::io("statvfs", e))?;
                let renew = |path: &Path| {
                    // As Tahoe does: an uploader that finds the share holds a lease on it too.
                    let _leases = lease_locks.lock(&si);
                    add_or_renew_immutable_lease(path, &lease)
                };
                for num in wanted {
                    if let Some(path) = existing.get(&num) {
                        renew(path)?;
                        allocation.already_have.insert(num);
                        continue;
                    }
                    let needed = (IMMUTABLE_HEADER + IMMUTABLE_LEASE).saturating_add(allocated_size);
                    if busy.contains(&num) || space < needed {
                        continue;
                    }
                    let path = incoming_dir.join(num.to_string());
                    let Some(file) = claim_incoming(&incoming_dir, &path)? else {
                        // Another allocation claimed it since `busy` was read.
                        continue;
                    };
                    let final_path = final_dir.join(num.to_string());
                    if final_path.exists() {
                        // Its upload was closed since `existing` was read: this claim came too late.
                        let _ = fs::remove_file(&path);
                        renew(&final_path)?;
                        allocation.already_have.insert(num);
                        continue;
                    }
                    if let Err(e) = start_container(&file, allocated_size, &lease) {
                        let _ = fs::remove_file(&path);
                        return Err(e);
                    }
                    opened.push((
                        num,
                        Upload {
                            file,
                            incoming: path,
                            max_size: allocated_size,
                            written_end: std::sync::atomic::AtomicU64::new(0),
                        },
                    ));
                    space = space.saturating_sub(needed);
                    allocation.allocated.insert(num);
                }
                Ok(allocation)
            };
            match claim() {
                Ok(allocation) => Ok((allocation, opened)),
                Err(e) => {
                    // Nobody will write or abort these: unclaim them, or the shares stay busy.
                    for (_, upload) in &opened {
                        let _ = fs::remove_file(&upload.incoming);
                    }
                    Err(e)
                }
            }
        })
        .await?;
        let mut uploads = self.uploads();
        for (num, upload) in opened {
            uploads.insert((si, num), Arc::new(upload));
        }
        Ok(allocation)
    }

    async fn write_share(&self, si: StorageIndex, share_num: ShareNum, offset: u64, data: Bytes) -> Result<(), Error> {
        let upload = self
            .uploads()
            .get(&(si, share_num))
            .cloned()
            .ok_or(Error::NoSuchUpload)?;
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > upload.max_size) {
            return Err(Error::OutOfBounds {
                offset,
                len,
                allocated: upload.max_size,
            });
        }
        blocking(move || {
            let at = IMMUTABLE_HEADER + offset;
            upload
                .file
                .write_all_at(&data, at)
                .map_err(|e| Error::io("write share", e))?;
            upload
                .written_end
                .fetch_max(offset + len, std::sync::atomic::Ordering::Relaxed);
            // Start writeback now (asynchronously) rather than leaving gigabytes of
            // dirty pages for the fsync at close; durability still comes from that fsync.
            let _ = nix::fcntl::posix_fadvise(
                &upload.file,
                at as i64,
                len as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
            Ok(())
        })
        .await
    }

    async fn close_share(&self, si: StorageIndex, share_num: ShareNum) -> Result<(), Error> {
        let upload = self.uploads().remove(&(si, share_num)).ok_or(Error::NoSuchUpload)?;
        let final_dir = self.share_dir(si);
        blocking(move || {
            let written = upload.written_end.load(std::sync::atomic::Ordering::Relaxed);
            if written < upload.max_size {
                trim_container(&upload.file, written, upload.max_size)?;
            }
            upload.file.sync_all().map_err(|e| Error::io("fsync share", e))?;
            let parent_existed = final_dir.parent().is_some_and(Path::exists);
            fs::create_dir_all(&final_dir).map_err(|e| Error::io(format!("create {}", final_dir.display()), e))?;
            let final_path = final_dir.join(share_num.to_string());
            fs::rename(&upload.incoming, &final_path)
                .map_err(|e| Error::io(format!("move share to {}", final_path.display()), e))?;
            fsync_dir(&final_dir)?;
            if let Some(parent) = final_dir.parent() {
                fsync_dir(parent)?;
                if !parent_existed && let Some(shares) = parent.parent() {
                    fsync_dir(shares)?;
                }
            }
            // Tidy the now-empty incoming directories; another upload may still use them.
            if let Some(dir) = upload.incoming.parent() {
                let _ = fs::remove_dir(dir).and_then(|()| dir.parent().map_or(Ok(()), fs::remove_dir));
            }
            Ok(())
        })
        .await
    }

    async fn abort_share(&self, si: StorageIndex, share_num: ShareNum) -> Result<(), Error> {
        let upload = self.uploads().remove(&(si, share_num)).ok_or(Error::NoSuchUpload)?;
        blocking(move || match fs::remove_file(&upload.incoming) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove aborted share", e)),
        })
        .await
    }

    async fn list_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        let dir = self.share_dir(si);
        blocking(move || {
            let mut out = BTreeSet::new();
            for (num, path) in share_files(&dir)? {
                if !is_mutable_container(&path)? {
                    out.insert(num);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_share(&self, si: StorageIndex, share_num: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let path = self.share_dir(si).join(share_num.to_string());
        let server = self.id.nickname.clone();
        blocking(move || {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchShare),
                Err(e) => return Err(Error::io("open share", e)),
            };
            // A mutable share is no immutable share to read; nor is a truncated or corrupt file,
            // whose "data" would be garbage to the client (which finds the share elsewhere).
            let Some(container) = read_immutable_container(&file)? else {
                if !is_mutable_container(&path)? {
                    tracing::warn!(storage_index = %si, share = share_num, %server, "unreadable immutable share container");
                }
                return Err(Error::NoSuchShare);
            };
            let end = offset.saturating_add(len).min(container.data_len);
            let start = offset.min(end);
            let mut buf = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut buf, IMMUTABLE_HEADER + start)
                .map_err(|e| Error::io("read share", e))?;
            Ok(buf)
        })
        .await
    }

    async fn add_or_renew_lease(&self, si: StorageIndex, lease: LeaseSecrets) -> Result<(), Error> {
        let dir = self.share_dir(si);
        let node_id = self.id.node_id;
        let lock = self.mutable_lock.clone();
        let lease_locks = self.lease_locks.clone();
        blocking(move || {
            let files = share_files(&dir)?;
            if files.is_empty() {
                return Err(Error::NoSuchShare);
            }
            for path in files.values() {
                if is_mutable_container(path)? {
                    let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                    let mut share = MutableShare::open(path)?;
                    share.add_or_renew_lease(&lease, node_id)?;
                    share.file.sync_all().map_err(|e| Error::io("fsync share", e))?;
                } else {
                    let _leases = lease_locks.lock(&si);
                    add_or_renew_immutable_lease(path, &lease)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn advise_corrupt_share(&self, si: StorageIndex, share_num: ShareNum, reason: &str) -> Result<(), Error> {
        tracing::warn!(storage_index = %si, share = share_num, server = %self.id.nickname, "share reported corrupt: {reason}");
        let dir = self.root.join("corruption-advisories");
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let report = format!("report: Share Corruption\nstorage_index: {si}\nshare_number: {share_num}\n\n{reason}\n");
        blocking(move || {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create advisories dir", e))?;
            fs::write(dir.join(format!("{stamp}-{si}-{share_num}")), report).map_err(|e| Error::io("write advisory", e))
        })
        .await
    }

    async fn mutable_read_test_write(
        &self,
        si: StorageIndex,
        write_enabler: Hash,
        lease: LeaseSecrets,
        test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
        read_vector: Vec<(u64, u64)>,
    ) -> Result<ReadTestWriteResult, Error> {
        let dir = self.share_dir(si);
        let node_id = self.id.node_id;
        let lock = self.mutable_lock.clone();
        blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            read_test_write(&dir, node_id, write_enabler, lease, test_and_writes, read_vector)
        })
        .await
    }

    async fn list_mutable_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        let dir = self.share_dir(si);
        blocking(move || {
            let mut out = BTreeSet::new();
            for (num, path) in share_files(&dir)? {
                if is_mutable_container(&path)? {
                    out.insert(num);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_mutable_share(
        &self,
        si: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        let path = self.share_dir(si).join(share_num.to_string());
        let lock = self.mutable_lock.clone();
        blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            if !path.exists() || !is_mutable_container(&path)? {
                return Err(Error::NoSuchShare);
            }
            MutableShare::open(&path)?.read(offset, len)
        })
        .await
    }
}

/// An open mutable container.
struct MutableShare {
    file: File,
    header: mutable_container::Header,
}

impl MutableShare {
    fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut raw = [0u8; 100];
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
            .write_all_at(&[0u8; (DATA_OFFSET - 100) as usize], 100)
            .map_err(|e| Error::io("write lease slots", e))?;
        share.write_extra_leases(&[])?;
        share.write_header()?;
        Ok(share)
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

    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
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

    fn add_or_renew_lease(&mut self, lease: &LeaseSecrets, node_id: [u8; 20]) -> Result<(), Error> {
        let (renew, cancel) = if self.header.version == 1 {
            (lease.renew, lease.cancel)
        } else {
            (hash_lease_secret(&lease.renew), hash_lease_secret(&lease.cancel))
        };
        let record = Lease {
            owner_num: 1,
            expiration: now_plus_lease(),
            renew_secret: renew,
            cancel_secret: cancel,
            node_id,
        };
        let mut empty_slot = None;
        for slot in 0..HEADER_LEASE_SLOTS {
            let at = 100 + (slot * LEASE_SIZE) as u64;
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

fn read_test_write(
    dir: &Path,
    node_id: [u8; 20],
    write_enabler: Hash,
    lease: LeaseSecrets,
    test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
    read_vector: Vec<(u64, u64)>,
) -> Result<ReadTestWriteResult, Error> {
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
                return Ok(result);
            }
        }
    }
    // Made only when a share is created, so a request that creates none leaves no empty directory.
    let mut new_dir_parents: Option<Vec<PathBuf>> = None;
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
                if new_dir_parents.is_none() {
                    new_dir_parents = Some(create_dirs(dir)?);
                }
                MutableShare::create(&dir.join(num.to_string()), node_id, write_enabler)?
            }
        };
        share.write(&tw.writes, tw.new_length)?;
        share.add_or_renew_lease(&lease, node_id)?;
        share.file.sync_all().map_err(|e| Error::io("fsync mutable share", e))?;
        changed = true;
    }
    if changed {
        fsync_dir(dir)?;
        // A new share (or prefix) directory is only an entry in its parent until that is synced:
        // without it a crash could lose the directory, and the fsynced share with it.
        for parent in new_dir_parents.into_iter().flatten() {
            fsync_dir(&parent)?;
        }
    }
    result.success = true;
    Ok(result)
}

/// Creates `dir` and its missing ancestors; returns the parents of those it created, whose
/// entries must be synced for the new directories to survive a crash.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    Ok(missing
        .iter()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::storage::TestVector;

    fn lease(n: u8) -> LeaseSecrets {
        LeaseSecrets {
            renew: [n; 32],
            cancel: [n + 100; 32],
        }
    }

    #[tokio::test]
    async fn immutable_share_is_invisible_until_closed_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([1; 16]);
        let alloc = server.allocate_buckets(si, lease(1), &[0, 1].into(), 10).await.unwrap();
        assert_eq!(alloc.allocated, [0, 1].into());
        server
            .write_share(si, 0, 0, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        server
            .write_share(si, 0, 5, Bytes::from_static(b"world"))
            .await
            .unwrap();
        assert!(matches!(
            server.write_share(si, 0, 6, Bytes::from_static(b"world")).await,
            Err(Error::OutOfBounds { .. })
        ));
        assert!(server.list_shares(si).await.unwrap().is_empty());
        server.close_share(si, 0).await.unwrap();
        server.abort_share(si, 1).await.unwrap();
        assert_eq!(server.list_shares(si).await.unwrap(), [0].into());
        assert_eq!(server.read_share(si, 0, 3, 100).await.unwrap(), b"loworld");
        assert!(matches!(server.read_share(si, 1, 0, 1).await, Err(Error::NoSuchShare)));
        // Tahoe's container: v2 header, one lease after the data.
        let raw = fs::read(server.share_dir(si).join("0")).unwrap();
        assert_eq!(&raw[..12], &[0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0, 1]);
        assert_eq!(raw.len(), 12 + 10 + 72);
        assert_eq!(&raw[12 + 10 + 4..12 + 10 + 36], &hash_lease_secret(&[1; 32]));
        server.add_or_renew_lease(si, lease(2)).await.unwrap();
        server.add_or_renew_lease(si, lease(1)).await.unwrap();
        let raw = fs::read(server.share_dir(si).join("0")).unwrap();
        assert_eq!(raw.len(), 12 + 10 + 2 * 72);
        drop(server);
        let reopened = DiskServer::open(dir.path(), "s0").unwrap();
        assert_eq!(reopened.read_share(si, 0, 0, 10).await.unwrap(), b"helloworld");
        let again = reopened
            .allocate_buckets(si, lease(1), &[0, 1].into(), 10)
            .await
            .unwrap();
        assert_eq!(again.already_have, [0].into());
        assert_eq!(again.allocated, [1].into());
    }

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

    #[test]
    fn create_dirs_names_the_parents_of_the_directories_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let shares = dir.path().join("shares");
        fs::create_dir(&shares).unwrap();
        let si_dir = shares.join("aa").join("aaaa");
        assert_eq!(create_dirs(&si_dir).unwrap(), vec![shares.join("aa"), shares.clone()]);
        assert!(si_dir.is_dir());
        assert!(create_dirs(&si_dir).unwrap().is_empty());
        assert_eq!(
            create_dirs(&shares.join("aa").join("bbbb")).unwrap(),
            vec![shares.join("aa")]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lease_renewals_of_an_immutable_share_all_keep_their_lease() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(DiskServer::open(dir.path(), "s0").unwrap());
        let si = StorageIndex([12; 16]);
        server.allocate_buckets(si, lease(0), &[0].into(), 4).await.unwrap();
        server.write_share(si, 0, 0, Bytes::from_static(b"data")).await.unwrap();
        server.close_share(si, 0).await.unwrap();
        let renewals: Vec<_> = (1..=40)
            .map(|n| {
                let server = server.clone();
                tokio::spawn(async move {
                    if n % 2 == 0 {
                        server.add_or_renew_lease(si, lease(n)).await.unwrap();
                    } else {
                        // An uploader finding the share complete adds its lease the same way.
                        let allocation = server.allocate_buckets(si, lease(n), &[0].into(), 4).await.unwrap();
                        assert_eq!(allocation.already_have, [0].into());
                    }
                })
            })
            .collect();
        for renewal in renewals {
            renewal.await.unwrap();
        }
        let (_, expirations) = share_lease_expirations(&server.share_dir(si).join("0")).unwrap();
        assert_eq!(expirations.len(), 41);
        assert_eq!(server.read_share(si, 0, 0, 100).await.unwrap(), b"data");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_allocations_of_a_share_exactly_one_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(DiskServer::open(dir.path(), "s0").unwrap());
        for round in 0..5u8 {
            let si = StorageIndex([20 + round; 16]);
            let attempts: Vec<_> = (1..=16)
                .map(|n| {
                    let server = server.clone();
                    tokio::spawn(async move { server.allocate_buckets(si, lease(n), &[0, 1].into(), 8).await })
                })
                .collect();
            let mut winners = [0; 2];
            for attempt in attempts {
                let allocation = attempt.await.unwrap().unwrap();
                assert!(allocation.already_have.is_empty());
                for n in allocation.allocated {
                    winners[usize::from(n)] += 1;
                }
            }
            assert_eq!(winners, [1, 1], "round {round}");
            // The one claim is a working upload.
            server
                .write_share(si, 0, 0, Bytes::from_static(b"12345678"))
                .await
                .unwrap();
            server.close_share(si, 0).await.unwrap();
            assert_eq!(server.read_share(si, 0, 0, 8).await.unwrap(), b"12345678");
        }
    }

    #[tokio::test]
    async fn partial_uploads_are_cleared_when_the_store_opens_and_their_shares_can_be_allocated_again() {
        let dir = tempfile::tempdir().unwrap();
        let si = StorageIndex([30; 16]);
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        assert_eq!(
            server
                .allocate_buckets(si, lease(1), &[0].into(), 10)
                .await
                .unwrap()
                .allocated,
            [0].into()
        );
        server.write_share(si, 0, 0, Bytes::from_static(b"part")).await.unwrap();
        let incoming = server.incoming_dir(si).join("0");
        drop(server);
        // As after a crash: the partial share is still there.
        assert!(incoming.exists());
        let reopened = DiskServer::open(dir.path(), "s0").unwrap();
        assert!(!incoming.exists());
        assert!(!incoming.parent().unwrap().exists(), "its empty directories go too");
        assert!(dir.path().join("shares").join("incoming").is_dir());
        let again = reopened.allocate_buckets(si, lease(1), &[0].into(), 10).await.unwrap();
        assert_eq!(again.allocated, [0].into());
        assert!(reopened.list_shares(si).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn opening_a_store_another_server_is_uploading_to_keeps_its_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let si = StorageIndex([31; 16]);
        let first = DiskServer::open(dir.path(), "s0").unwrap();
        first.allocate_buckets(si, lease(1), &[0].into(), 4).await.unwrap();
        first.write_share(si, 0, 0, Bytes::from_static(b"ab")).await.unwrap();
        let second = DiskServer::open(dir.path(), "s0").unwrap();
        let claimed = second.allocate_buckets(si, lease(2), &[0].into(), 4).await.unwrap();
        assert!(claimed.allocated.is_empty(), "the share is still being uploaded");
        first.write_share(si, 0, 2, Bytes::from_static(b"cd")).await.unwrap();
        first.close_share(si, 0).await.unwrap();
        assert_eq!(second.read_share(si, 0, 0, 4).await.unwrap(), b"abcd");
    }
}
