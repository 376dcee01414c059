//! One directory's publishing task: store the small files queued for it, apply every queued link in one directory write, retire them, repeat while more arrived.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::{Inner, MAX_RETRY_DELAY, PendingBody};
use crate::grid::directory::{child_cap, stamped_child};
use crate::grid::dirnode::Child;
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::uri::{Cap, StorageIndex};
use crate::grid::{Error, Grid};

/// Small files of one batch stored at once.
const CONCURRENT_UPLOADS: usize = 16;
/// How long a directory's task lets links gather before each write: a sequential client's next
/// closes join this write instead of each costing one (the wait is part of the publish delay).
pub(crate) const GATHER: Duration = Duration::from_millis(25);
/// Publishing waits while this node acknowledged a link less than this long ago...
pub(crate) const QUIET: Duration = Duration::from_millis(50);
/// ...but no longer than this after the oldest link it holds was acknowledged.
pub(crate) const HOLD: Duration = Duration::from_secs(2);
/// The first wait after a refused publish (it doubles up to [`MAX_RETRY_DELAY`]).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// A link as one publish attempt applies it.
pub(crate) struct Link {
    pub(crate) seq: u64,
    pub(crate) name: String,
    pub(crate) body: PendingBody,
    pub(crate) mtime: Option<f64>,
    pub(crate) overwrite: bool,
    /// More metadata keys for the entry.
    pub(crate) extra: Map<String, Value>,
}

/// Publishes the directory `si` until its queue is empty.
pub(crate) async fn run(inner: Arc<Inner>, si: StorageIndex) {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        inner.settle(si).await;
        let Some((dircap, mut batch)) = inner.take_batch(si) else {
            break;
        };
        match publish(&inner.grid, &dircap, &mut batch).await {
            Ok(()) => {
                delay = FIRST_RETRY_DELAY;
                let count = batch.len();
                inner.retire(si, batch.into_iter().map(|l| l.seq).collect()).await;
                tracing::debug!(
                    "published {count} links into one directory ({} pending on this node)",
                    inner.pending_count()
                );
            }
            Err(e) => {
                inner.keep_stored(si, &batch);
                tracing::warn!(
                    storage_index = ?si,
                    "publishing {} links failed, retrying in {delay:?} ({} pending on this node): {e}",
                    batch.len(),
                    inner.pending_count()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// Stores the contents in `batch` (turning them into caps) and links every entry in one write.
async fn publish(grid: &Grid, dircap: &Cap, batch: &mut [Link]) -> Result<(), Error> {
    let to_store: Vec<(usize, bytes::Bytes)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, link)| match &link.body {
            PendingBody::Contents(data) => Some((i, data.clone())),
            PendingBody::Stored(_) => None,
        })
        .collect();
    let uploads = to_store.into_iter().map(|(i, data)| async move {
        let permit = grid
            .memory_budget()
            .acquire(grid.one_segment_cost(data.len() as u64))
            .await;
        (
            i,
            grid.upload_in_memory(data.to_vec(), KeyChoice::Convergent, permit)
                .await,
        )
    });
    let mut stored = futures::stream::iter(uploads).buffer_unordered(CONCURRENT_UPLOADS);
    let mut failed = None;
    while let Some((i, result)) = stored.next().await {
        match result {
            Ok(cap) => batch[i].body = PendingBody::Stored(cap),
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let links: &[Link] = batch;
    grid.modify_directory(dircap, |children| {
        apply(children, links, crate::grid::directory::now());
        Ok(())
    })
    .await
}

/// Applies `links` in order. A name taken by a directory (or by a file, for a link that must not
/// replace one) gets the link under `NAME.conflict-SEQ` instead: neither side's entry is lost.
fn apply(children: &mut BTreeMap<String, Child>, links: &[Link], stamp: f64) {
    for link in links {
        let PendingBody::Stored(cap) = &link.body else {
            continue;
        };
        let mut name = link.name.clone();
        let blocked = |old: &Child| {
            let is_dir = child_cap(old).is_some_and(|c| matches!(c, Cap::Directory(_)));
            let same = old.read_cap.as_deref() == Some(cap.read_only().to_string().as_str());
            is_dir || (!link.overwrite && !same)
        };
        if children.get(&name).is_some_and(blocked) {
            name = format!("{}.conflict-{}", link.name, link.seq);
            tracing::warn!("a pending link's name was taken by another writer; linked under a conflict name");
        }
        let mut metadata = link.extra.clone();
        if let Some(mtime) = link.mtime {
            metadata.insert("mtime".into(), Value::from(mtime));
        }
        let child = stamped_child(children.get(&name), cap, metadata, stamp);
        children.insert(name, child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::directory::child_for;
    use crate::grid::uri::LiteralCap;

    fn file(text: &str) -> Cap {
        Cap::Literal(LiteralCap {
            data: text.as_bytes().to_vec(),
        })
    }

    fn link(seq: u64, name: &str, text: &str, overwrite: bool) -> Link {
        Link {
            seq,
            name: name.into(),
            body: PendingBody::Stored(file(text)),
            mtime: Some(seq as f64),
            overwrite,
            extra: Map::new(),
        }
    }

    fn linked(children: &BTreeMap<String, Child>, name: &str) -> Option<String> {
        match child_cap(children.get(name)?)? {
            Cap::Literal(lit) => Some(String::from_utf8(lit.data).unwrap()),
            _ => Some("directory".into()),
        }
    }

    #[test]
    fn later_links_to_a_name_win_and_directories_and_refused_replacements_get_conflict_names() {
        let mut children = BTreeMap::new();
        let dir =
            Cap::parse("URI:DIR2:ovjxpmjnubfszxnlapyc4unzpi:dqptnfzz4vqfnrwrmn3dpa6dt4mxxllafjeiy6x2uc2gtavg2igq")
                .unwrap();
        children.insert("taken".to_string(), child_for(&dir, Map::new()));
        children.insert("theirs".to_string(), child_for(&file("their file"), Map::new()));
        let links = [
            link(1, "a", "first", true),
            link(2, "a", "second", true),
            link(3, "taken", "mine", true),
            link(4, "theirs", "mine too", false),
            link(5, "theirs2", "new", false),
        ];
        apply(&mut children, &links, 1.0);
        assert_eq!(linked(&children, "a").as_deref(), Some("second"));
        assert_eq!(linked(&children, "taken").as_deref(), Some("directory"));
        assert_eq!(linked(&children, "taken.conflict-3").as_deref(), Some("mine"));
        assert_eq!(linked(&children, "theirs").as_deref(), Some("their file"));
        assert_eq!(linked(&children, "theirs.conflict-4").as_deref(), Some("mine too"));
        assert_eq!(linked(&children, "theirs2").as_deref(), Some("new"));
        assert_eq!(children["a"].metadata.get("mtime"), Some(&Value::from(2.0)));
    }
}
