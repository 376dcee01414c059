//! Deep traversals of a directory tree, in Tahoe's order (a directory, then its files sorted
//! by name, then its subdirectories; each object once, by verify cap): the manifest,
//! deep-check and deep-stats, streamed as newline-delimited JSON (`t=stream-manifest`,
//! `t=stream-deep-check`) or computed for `/operations/$HANDLE`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::Path;

use hyper::{Response, StatusCode};

use crate::grid::Grid;
use crate::grid::dirnode;
use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{Chunks, WebBody, respond, streamed};
use crate::web::check::check_json;
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::node_json::{listing, stated_size, verify_cap};
use crate::web::walk::cap_of_child;

/// One object found by a traversal.
#[derive(Debug, Clone)]
pub struct Visited {
    /// Names from the root (empty for the root).
    pub path: Vec<String>,
    /// Its strongest cap.
    pub cap: Cap,
}

/// Tahoe's deep-stats counters.
#[derive(Debug, Default, Clone)]
pub struct DeepStats {
    counts: BTreeMap<&'static str, u64>,
    /// (min, max) of each histogram bucket → files in it.
    histogram: BTreeMap<(u64, u64), u64>,
}

impl DeepStats {
    fn add(&mut self, key: &'static str, by: u64) {
        *self.counts.entry(key).or_default() += by;
    }

    fn max(&mut self, key: &'static str, value: u64) {
        let entry = self.counts.entry(key).or_default();
        *entry = (*entry).max(value);
    }

    /// Counts one object; `directory` gives a directory's size in bytes and its child count.
    fn visit(&mut self, cap: &Cap, directory: Option<(u64, u64)>) {
        match cap {
            Cap::Directory(_) => {
                self.add("count-directories", 1);
                if let Some((bytes, children)) = directory {
                    self.add("size-directories", bytes);
                    self.max("largest-directory", bytes);
                    self.max("largest-directory-children", children);
                }
            }
            Cap::Literal(_) | Cap::Chk(_) => {
                let size = stated_size(cap).unwrap_or(0);
                self.add("count-files", 1);
                *self.histogram.entry(bucket(size)).or_default() += 1;
                if matches!(cap, Cap::Literal(_)) {
                    self.add("count-literal-files", 1);
                    self.add("size-literal-files", size);
                } else {
                    self.add("count-immutable-files", 1);
                    self.add("size-immutable-files", size);
                    self.max("largest-immutable-file", size);
                }
            }
            Cap::Mutable(_) => {
                self.add("count-files", 1);
                self.add("count-mutable-files", 1);
            }
            _ => self.add("count-unknown", 1),
        }
    }

    /// The keys of Tahoe's deep-stats, in its order.
    pub fn json(&self) -> Json {
        let mut out = Json::object().with("api-version", 1u64);
        for key in [
            "count-immutable-files",
            "count-mutable-files",
            "count-literal-files",
            "count-files",
            "count-directories",
            "count-unknown",
            "size-immutable-files",
            "size-literal-files",
            "size-directories",
            "largest-directory",
            "largest-directory-children",
            "largest-immutable-file",
        ] {
            out.push(key, self.counts.get(key).copied().unwrap_or(0));
        }
        let buckets = self
            .histogram
            .iter()
            .map(|((min, max), n)| Json::List(vec![(*min).into(), (*max).into(), (*n).into()]))
            .collect();
        out.push("size-files-histogram", Json::List(buckets));
        out
    }
}

/// Tahoe's histogram bucket of `size`: (0,0), (1,3), (4,10), (11,31), (32,100), … two per decade.
fn bucket(size: u64) -> (u64, u64) {
    let mut bucket = (0u64, 0u64);
    if size == 0 {
        return bucket;
    }
    bucket = (1, 3);
    while size > bucket.1 {
        let lower = bucket.1 + 1;
        // Tahoe's mathutil.next_power_of_k(lower, sqrt(10)), in floats as Tahoe computes it.
        let k = 10f64.sqrt();
        let mut x = ((lower as f64).ln() / k.ln() + 0.5) as i32;
        if k.powi(x) < lower as f64 {
            x += 1;
        }
        bucket = (lower, k.powi(x) as u64);
    }
    bucket
}

/// A walk of the tree under a root in Tahoe's order: [`Traversal::next`] gives one object at a
/// time (directories are listed as the walk reaches them), and [`Traversal::stats`] counts them.
pub struct Traversal<'a> {
    grid: &'a Grid,
    /// Directories still to enter, the next on top.
    stack: Vec<Visited>,
    /// Objects of the directory entered last, still to hand out.
    ready: VecDeque<Visited>,
    /// Verify caps seen: each object once, however often it is linked.
    found: HashSet<String>,
    stats: DeepStats,
}

impl<'a> Traversal<'a> {
    /// A walk from `root`.
    pub fn new(grid: &'a Grid, root: &Cap) -> Self {
        let mut found = HashSet::new();
        if let Some(v) = verify_cap(root) {
            found.insert(v.to_string());
        }
        Traversal {
            grid,
            stack: vec![Visited {
                path: Vec::new(),
                cap: root.clone(),
            }],
            ready: VecDeque::new(),
            found,
            stats: DeepStats::default(),
        }
    }

    /// The counts of what was handed out so far.
    pub fn stats(&self) -> &DeepStats {
        &self.stats
    }

    /// The next object, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Visited>, WebError> {
        loop {
            if let Some(visited) = self.ready.pop_front() {
                return Ok(Some(visited));
            }
            let Some(dir) = self.stack.pop() else {
                return Ok(None);
            };
            let children = listing(self.grid, &dir.cap).await?;
            // Without the directory's own body, its size is that of its children packed read-only.
            let bytes = dirnode::pack(&children, None).len() as u64;
            self.stats.visit(&dir.cap, Some((bytes, children.len() as u64)));
            let mut subdirectories = Vec::new();
            self.ready.push_back(dir.clone());
            for (name, child) in &children {
                let cap = cap_of_child(child);
                if let Some(verifier) = verify_cap(&cap)
                    && !self.found.insert(verifier.to_string())
                {
                    continue;
                }
                let mut path = dir.path.clone();
                path.push(name.clone());
                let visited = Visited { path, cap };
                if matches!(visited.cap, Cap::Directory(_)) {
                    subdirectories.push(visited);
                } else {
                    self.stats.visit(&visited.cap, None);
                    self.ready.push_back(visited);
                }
            }
            // Popped in name order.
            self.stack.extend(subdirectories.into_iter().rev());
        }
    }
}

/// The manifest unit of one object.
pub fn manifest_unit(visited: &Visited) -> Json {
    let cap = &visited.cap;
    let verifier = verify_cap(cap).map(|v| v.to_string()).unwrap_or_default();
    let repair = if cap.is_immutable() || cap.is_read_only() {
        verifier.clone()
    } else {
        cap.to_string()
    };
    Json::object()
        .with(
            "path",
            Json::List(visited.path.iter().map(|n| Json::from(n.as_str())).collect()),
        )
        .with("cap", cap.to_string())
        .with(
            "type",
            if matches!(cap, Cap::Directory(_)) {
                "directory"
            } else {
                "file"
            },
        )
        .with("verifycap", verifier)
        .with("repaircap", repair)
        .with(
            "storage-index",
            cap.storage_index().map(|si| si.to_string()).unwrap_or_default(),
        )
}

/// `t=stream-manifest` / `t=stream-deep-check[&verify=][&repair=]` on the directory `dir`.
pub fn stream(state: &WebState, dir: &Cap, t: &str, args: &Args) -> Result<Response<WebBody>, WebError> {
    let check = (t == "stream-deep-check").then_some((args.boolean("verify", false)?, args.boolean("repair", false)?));
    let (chunks, body) = streamed();
    let grid = state.grid.clone();
    let spool_dir = state.spool_dir.clone();
    let root = dir.clone();
    tokio::spawn(async move {
        if let Err(e) = stream_units(&grid, &spool_dir, &root, check, &chunks).await {
            // Tahoe's CLI stops at a line starting with ERROR:.
            let line = format!("ERROR: {}\n", e.message);
            let _ = chunks.send(Ok(line.into())).await;
        }
    });
    Ok(respond(StatusCode::OK, "text/html; charset=utf-8", body))
}

async fn stream_units(
    grid: &Grid,
    spool_dir: &Path,
    root: &Cap,
    check: Option<(bool, bool)>,
    chunks: &Chunks,
) -> Result<(), WebError> {
    let mut walk = Traversal::new(grid, root);
    while let Some(visited) = walk.next().await? {
        let mut unit = manifest_unit(&visited);
        if let Some((verify, repair)) = check {
            let results = check_json(grid, spool_dir, &visited.cap, verify, repair).await?;
            let results = match (&visited.cap, repair) {
                // Tahoe's LIT check-and-repair result.
                (Cap::Literal(_), true) => Json::object().with("storage-index", "").with("repair-attempted", false),
                _ => results,
            };
            unit.push(
                if repair {
                    "check-and-repair-results"
                } else {
                    "check-results"
                },
                results,
            );
        }
        if chunks.send(Ok((unit.compact() + "\n").into())).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    let stats = walk.stats().clone();
    let last = Json::object().with("type", "stats").with("stats", stats.json());
    let _ = chunks.send(Ok((last.compact() + "\n").into())).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn histogram_buckets_are_tahoes() {
        assert_eq!(bucket(0), (0, 0));
        assert_eq!(bucket(3), (1, 3));
        assert_eq!(bucket(5), (4, 10));
        assert_eq!(bucket(31), (11, 31));
        assert_eq!(bucket(100), (32, 100));
        assert_eq!(bucket(5000), (3163, 10000));
    }
}
