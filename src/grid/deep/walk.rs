//! The tree walk: every node below a root, depth first as Tahoe walks (a directory, then its
//! files by name, then its subdirectories by name), each node once.
//!
//! Memory stays bounded by the tree's depth times its widest directory: only the directories on
//! the way down are held, never the nodes already yielded. The set of storage indexes seen (so a
//! node linked twice, or a directory that contains itself, is visited once, as Tahoe does) is
//! the one thing that grows with the tree: 16 bytes and a hash-set slot per node.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::grid::directory::child_cap;
use crate::grid::dirnode::Child;
use crate::grid::uri::{Cap, StorageIndex};
use crate::grid::{Error, Grid};

/// What a node is, in deep-stats' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory (mutable or immutable).
    Directory,
    /// A CHK file.
    ImmutableFile,
    /// A LIT file (its data is in the cap).
    LiteralFile,
    /// An SDMF or MDMF file.
    MutableFile,
    /// A cap this version does not know.
    Unknown,
}

impl NodeKind {
    /// The kind of `cap`.
    pub fn of(cap: &Cap) -> NodeKind {
        match cap {
            Cap::Directory(_) => NodeKind::Directory,
            Cap::Chk(_) | Cap::ChkVerifier(_) => NodeKind::ImmutableFile,
            Cap::Literal(_) => NodeKind::LiteralFile,
            Cap::Mutable(_) => NodeKind::MutableFile,
            Cap::Unknown(_) => NodeKind::Unknown,
        }
    }

    /// Tahoe's manifest `type`: `directory`, `file` or `unknown`.
    pub fn manifest_type(self) -> &'static str {
        match self {
            NodeKind::Directory => "directory",
            NodeKind::Unknown => "unknown",
            _ => "file",
        }
    }
}

/// What the walk learnt reading a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryInfo {
    /// Its number of entries.
    pub children: usize,
    /// The size of its stored body, in bytes.
    pub size: u64,
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct DeepNode {
    /// The names from the root to it (empty for the root).
    pub path: Vec<String>,
    /// Its cap (the strongest the walk could read).
    pub cap: Cap,
    /// What it is.
    pub kind: NodeKind,
    /// For a directory: its entry count and body size.
    pub directory: Option<DirectoryInfo>,
    /// Its entry's metadata in its parent (empty for the root).
    pub metadata: Map<String, Value>,
}

/// A directory that could not be read: the walk goes on without what is below it.
#[derive(Debug)]
pub struct WalkError {
    /// Where.
    pub path: Vec<String>,
    /// Why (grid errors name no caps).
    pub error: Error,
}

/// A directory whose entries are still to be yielded.
struct Frame {
    path: Vec<String>,
    files: std::vec::IntoIter<(String, Cap, Map<String, Value>)>,
    directories: std::vec::IntoIter<(String, Cap, Map<String, Value>)>,
}

/// The walk: call [`DeepWalk::next`] until it returns `None`.
pub struct DeepWalk {
    grid: Grid,
    root: Option<(Cap, Map<String, Value>)>,
    stack: Vec<Frame>,
    seen: HashSet<StorageIndex>,
    visited: u64,
}

impl DeepWalk {
    /// A walk of everything below `root` (itself included; a file cap yields just itself).
    pub fn new(grid: Grid, root: Cap) -> DeepWalk {
        DeepWalk {
            grid,
            root: Some((root, Map::new())),
            stack: Vec::new(),
            seen: HashSet::new(),
            visited: 0,
        }
    }

    /// How many nodes were yielded so far (for progress reports).
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// The next node, a directory that could not be read, or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<DeepNode, WalkError>> {
        if let Some((cap, metadata)) = self.root.take() {
            if let Some(si) = cap.storage_index() {
                self.seen.insert(si);
            }
            return Some(self.visit(Vec::new(), cap, metadata).await);
        }
        loop {
            let frame = self.stack.last_mut()?;
            if let Some((name, cap, metadata)) = frame.files.next() {
                let path = child_path(&frame.path, &name);
                self.visited += 1;
                return Some(Ok(DeepNode {
                    path,
                    kind: NodeKind::of(&cap),
                    cap,
                    directory: None,
                    metadata,
                }));
            }
            if let Some((name, cap, metadata)) = frame.directories.next() {
                let path = child_path(&frame.path, &name);
                return Some(self.visit(path, cap, metadata).await);
            }
            self.stack.pop();
        }
    }

    /// Yields `cap` at `path`; a directory is read, and its entries queued, first.
    async fn visit(
        &mut self,
        path: Vec<String>,
        cap: Cap,
        metadata: Map<String, Value>,
    ) -> Result<DeepNode, WalkError> {
        let kind = NodeKind::of(&cap);
        self.visited += 1;
        if kind != NodeKind::Directory {
            return Ok(DeepNode {
                path,
                cap,
                kind,
                directory: None,
                metadata,
            });
        }
        let (children, size) = match self.grid.read_directory_sized(&cap).await {
            Ok(read) => read,
            Err(error) => return Err(WalkError { path, error }),
        };
        let info = DirectoryInfo {
            children: children.len(),
            size,
        };
        let (files, directories) = self.split_new(children);
        self.stack.push(Frame {
            path: path.clone(),
            files: files.into_iter(),
            directories: directories.into_iter(),
        });
        Ok(DeepNode {
            path,
            cap,
            kind,
            directory: Some(info),
            metadata,
        })
    }

    /// Splits a directory's entries into files and subdirectories (each sorted by name), leaving
    /// out what the walk has seen already.
    #[allow(clippy::type_complexity)]
    fn split_new(
        &mut self,
        children: BTreeMap<String, Child>,
    ) -> (
        Vec<(String, Cap, Map<String, Value>)>,
        Vec<(String, Cap, Map<String, Value>)>,
    ) {
        let mut files = Vec::new();
        let mut directories = Vec::new();
        for (name, child) in children {
            let cap = child_cap(&child).unwrap_or_else(|| Cap::Unknown(String::new()));
            // LIT files have no storage index: each link counts, as in Tahoe.
            if let Some(si) = cap.storage_index()
                && !self.seen.insert(si)
            {
                continue;
            }
            if matches!(cap, Cap::Directory(_)) {
                directories.push((name, cap, child.metadata));
            } else {
                files.push((name, cap, child.metadata));
            }
        }
        (files, directories)
    }
}

fn child_path(parent: &[String], name: &str) -> Vec<String> {
    let mut path = Vec::with_capacity(parent.len() + 1);
    path.extend_from_slice(parent);
    path.push(name.to_string());
    path
}
