//! What the node did lately: Tahoe's counters (`uploader.files_uploaded`, …), latency
//! histograms, and the current and recent uploads, downloads, publishes and retrieves that
//! `/status` lists.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many finished operations `/status` keeps.
const RECENT: usize = 50;
/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The kinds of operation `/status` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// An immutable upload.
    Upload,
    /// An immutable download.
    Download,
    /// A mutable publish.
    Publish,
    /// A mutable retrieve.
    Retrieve,
}

impl OpKind {
    /// Tahoe's `type` name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Upload => "upload",
            OpKind::Download => "download",
            OpKind::Publish => "publish",
            OpKind::Retrieve => "retrieve",
        }
    }
}

/// One operation, running or finished.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// A number unique in this process.
    pub id: u64,
    /// What it is.
    pub kind: OpKind,
    /// The storage index (base32), once known.
    pub storage_index: String,
    /// Bytes, once known.
    pub size: Option<u64>,
    /// When it started (Unix seconds).
    pub started: f64,
    /// How long it took, once finished.
    pub elapsed: Option<f64>,
    /// `Finished`, `Failed`, or `running`.
    pub status: String,
}

/// A latency histogram (Prometheus style: cumulative counts per bucket, sum and count).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts of observations at or under each of [`LATENCY_BUCKETS`].
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    /// Sum of the observations (seconds).
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

struct Inner {
    started: Instant,
    next_id: u64,
    active: BTreeMap<u64, OpRecord>,
    recent: VecDeque<OpRecord>,
    counters: BTreeMap<String, u64>,
    latencies: BTreeMap<&'static str, Histogram>,
}

/// Counters and operations, shared by every request.
pub struct Activity {
    inner: Mutex<Inner>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            inner: Mutex::new(Inner {
                started: Instant::now(),
                next_id: 0,
                active: BTreeMap::new(),
                recent: VecDeque::new(),
                counters: BTreeMap::new(),
                latencies: BTreeMap::new(),
            }),
        }
    }
}

/// A running operation: finish it with [`Running::finish`] (dropped unfinished: failed).
pub struct Running {
    activity: Arc<Activity>,
    id: u64,
    started: Instant,
    done: bool,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the start of an operation.
    pub fn begin(self: &Arc<Self>, kind: OpKind, storage_index: Option<String>, size: Option<u64>) -> Running {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let record = OpRecord {
            id,
            kind,
            storage_index: storage_index.unwrap_or_default(),
            size,
            started: crate::grid::directory::now(),
            elapsed: None,
            status: "running".into(),
        };
        inner.active.insert(id, record);
        Running {
            activity: self.clone(),
            id,
            started: Instant::now(),
            done: false,
        }
    }

    /// Seconds since the server started.
    pub fn uptime(&self) -> f64 {
        self.lock().started.elapsed().as_secs_f64()
    }

    /// Adds `by` to counter `name`.
    pub fn count(&self, name: &str, by: u64) {
        *self.lock().counters.entry(name.to_string()).or_default() += by;
    }

    /// The counters.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.lock().counters.clone()
    }

    /// The latency histograms, by operation kind.
    pub fn latencies(&self) -> BTreeMap<&'static str, Histogram> {
        self.lock().latencies.clone()
    }

    /// The running operations and the recent finished ones (newest first).
    pub fn operations(&self) -> (Vec<OpRecord>, Vec<OpRecord>) {
        let inner = self.lock();
        (
            inner.active.values().cloned().collect(),
            inner.recent.iter().rev().cloned().collect(),
        )
    }

    fn end(&self, id: u64, elapsed: f64, ok: bool, storage_index: Option<String>, size: Option<u64>) {
        let mut inner = self.lock();
        let Some(mut record) = inner.active.remove(&id) else {
            return;
        };
        record.elapsed = Some(elapsed);
        record.status = if ok { "Finished" } else { "Failed" }.into();
        if let Some(si) = storage_index {
            record.storage_index = si;
        }
        if size.is_some() {
            record.size = size;
        }
        if ok {
            let histogram = inner.latencies.entry(record.kind.name()).or_default();
            for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if elapsed <= bound {
                    *bucket += 1;
                }
            }
            histogram.sum += elapsed;
            histogram.count += 1;
        }
        inner.recent.push_back(record);
        while inner.recent.len() > RECENT {
            inner.recent.pop_front();
        }
    }
}

impl Running {
    /// Records the end of the operation, with what became known on the way.
    pub fn finish(mut self, ok: bool, storage_index: Option<String>, size: Option<u64>) {
        self.done = true;
        let elapsed = self.started.elapsed().as_secs_f64();
        self.activity.end(self.id, elapsed, ok, storage_index, size);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let elapsed = self.started.elapsed().as_secs_f64();
            self.activity.end(self.id, elapsed, false, None, None);
        }
    }
}
