//! Tahoe's deep-stats: counts and sizes of a tree's nodes and a histogram of file sizes, in the
//! shape of Tahoe's JSON (`t=start-deep-stats`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::walk::{DeepNode, NodeKind};
use crate::grid::uri::Cap;

/// The accumulated figures. Feed every walked node to [`DeepStats::add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeepStats {
    /// CHK files.
    pub count_immutable_files: u64,
    /// SDMF and MDMF files.
    pub count_mutable_files: u64,
    /// LIT files.
    pub count_literal_files: u64,
    /// All files.
    pub count_files: u64,
    /// Directories (the root included).
    pub count_directories: u64,
    /// Caps of unknown kinds.
    pub count_unknown: u64,
    /// Bytes in CHK files.
    pub size_immutable_files: u64,
    /// Bytes in LIT files.
    pub size_literal_files: u64,
    /// Bytes of directory bodies.
    pub size_directories: u64,
    /// The largest directory body, in bytes.
    pub largest_directory: u64,
    /// The most entries one directory has.
    pub largest_directory_children: u64,
    /// The largest CHK file, in bytes.
    pub largest_immutable_file: u64,
    /// File counts per size bucket (`(min, max)`, both inclusive).
    histogram: BTreeMap<(u64, u64), u64>,
}

impl DeepStats {
    /// Empty figures.
    pub fn new() -> DeepStats {
        DeepStats::default()
    }

    /// Counts one node. (Mutable files' sizes are not counted: Tahoe 1.20 leaves
    /// `size-mutable-files` out, as finding them needs a read of each.)
    pub fn add(&mut self, node: &DeepNode) {
        match node.kind {
            NodeKind::Unknown => self.count_unknown += 1,
            NodeKind::Directory => {
                self.count_directories += 1;
                if let Some(info) = node.directory {
                    self.size_directories += info.size;
                    self.largest_directory = self.largest_directory.max(info.size);
                    self.largest_directory_children = self.largest_directory_children.max(info.children as u64);
                }
            }
            NodeKind::MutableFile => {
                self.count_files += 1;
                self.count_mutable_files += 1;
            }
            NodeKind::ImmutableFile | NodeKind::LiteralFile => {
                let size = match &node.cap {
                    Cap::Chk(chk) => chk.size,
                    Cap::ChkVerifier(v) => v.size,
                    Cap::Literal(lit) => lit.data.len() as u64,
                    _ => 0,
                };
                self.count_files += 1;
                *self.histogram.entry(bucket_of(size)).or_insert(0) += 1;
                if node.kind == NodeKind::LiteralFile {
                    self.count_literal_files += 1;
                    self.size_literal_files += size;
                } else {
                    self.count_immutable_files += 1;
                    self.size_immutable_files += size;
                    self.largest_immutable_file = self.largest_immutable_file.max(size);
                }
            }
        }
    }

    /// The histogram: `(min, max, count)` per non-empty bucket, smallest first.
    pub fn histogram(&self) -> Vec<(u64, u64, u64)> {
        self.histogram.iter().map(|(&(lo, hi), &n)| (lo, hi, n)).collect()
    }

    /// The figures as Tahoe's JSON object.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("api-version".into(), json!(1));
        for (key, value) in self.fields() {
            out.insert(key.into(), json!(value));
        }
        let histogram: Vec<Value> = self
            .histogram()
            .into_iter()
            .map(|(lo, hi, n)| json!([lo, hi, n]))
            .collect();
        out.insert("size-files-histogram".into(), Value::Array(histogram));
        Value::Object(out)
    }

    /// The counts and sizes by Tahoe's names, in Tahoe's order.
    pub fn fields(&self) -> [(&'static str, u64); 12] {
        [
            ("count-immutable-files", self.count_immutable_files),
            ("count-mutable-files", self.count_mutable_files),
            ("count-literal-files", self.count_literal_files),
            ("count-files", self.count_files),
            ("count-directories", self.count_directories),
            ("count-unknown", self.count_unknown),
            ("size-immutable-files", self.size_immutable_files),
            ("size-literal-files", self.size_literal_files),
            ("size-directories", self.size_directories),
            ("largest-directory", self.largest_directory),
            ("largest-directory-children", self.largest_directory_children),
            ("largest-immutable-file", self.largest_immutable_file),
        ]
    }
}

/// The histogram bucket of `size`: (0,0), (1,3), (4,10), (11,31), (32,100), (101,316), …, two
/// per decade, with Tahoe's floating-point bounds (`pyutil.mathutil.next_power_of_k` of √10).
pub fn bucket_of(size: u64) -> (u64, u64) {
    if size == 0 {
        return (0, 0);
    }
    let (mut lower, mut upper) = (1u64, 3u64);
    let root = 10f64.sqrt();
    while size > upper {
        lower = upper + 1;
        let mut p = 1f64;
        while p < lower as f64 {
            p *= root;
        }
        upper = p as u64;
    }
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_tahoes() {
        // Tahoe 1.20's DeepStats.which_bucket for these sizes.
        let cases = [
            (0, (0, 0)),
            (1, (1, 3)),
            (3, (1, 3)),
            (4, (4, 10)),
            (10, (4, 10)),
            (11, (11, 31)),
            (100, (32, 100)),
            (101, (101, 316)),
            (1000, (317, 1000)),
            (1001, (1001, 3162)),
            (3163, (3163, 10000)),
            (1_000_000, (316_228, 1_000_000)),
        ];
        for (size, bucket) in cases {
            assert_eq!(bucket_of(size), bucket, "{size}");
        }
    }
}
