//! The storage servers an introducer connection has told us about, under Tahoe's rules for
//! duplicates and replays (sections 5.5 and 5.6): one entry per announcing key, a newer seqnum
//! replaces, an older or equal one is ignored. Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

/// The most servers one registry keeps (a hostile introducer cannot grow it without bound).
pub const MAX_SERVERS: usize = 10_000;

/// One announcer's latest announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The announcement (already verified).
    pub ann: Map<String, Json>,
    /// Unix seconds of the last time it was announced (or loaded from the cache).
    pub announced_at: u64,
}

/// What [`Registry::offer`] did with an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A server not known before.
    Added,
    /// A newer announcement of a known server.
    Replaced,
    /// The same announcement again.
    Duplicate,
    /// An older or equal seqnum with different content: a replay, ignored.
    Stale,
    /// Not a `storage` announcement, or the registry is full.
    Ignored,
}

/// Announcements by announcer key (`v0-...`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    servers: BTreeMap<String, Known>,
}

impl Registry {
    /// Takes one verified announcement from `key_vs`, received at `now` (Unix seconds).
    pub fn offer(&mut self, key_vs: &str, ann: Map<String, Json>, now: u64) -> Outcome {
        if ann.get("service-name").and_then(Json::as_str) != Some("storage") {
            return Outcome::Ignored;
        }
        let Some(known) = self.servers.get_mut(key_vs) else {
            if self.servers.len() >= MAX_SERVERS {
                return Outcome::Ignored;
            }
            self.servers
                .insert(key_vs.to_string(), Known { ann, announced_at: now });
            return Outcome::Added;
        };
        if known.ann == ann {
            known.announced_at = now;
            return Outcome::Duplicate;
        }
        if let Some(old) = known.ann.get("seqnum") {
            let newer = match (old.as_i64(), ann.get("seqnum").and_then(Json::as_i64)) {
                (Some(old), Some(new)) => new > old,
                // A stored seqnum that is not an integer cannot be beaten; a new one must be one.
                _ => false,
            };
            if !newer {
                return Outcome::Stale;
            }
        }
        *known = Known { ann, announced_at: now };
        Outcome::Replaced
    }

    /// The servers, by key.
    pub fn servers(&self) -> &BTreeMap<String, Known> {
        &self.servers
    }

    /// How many servers are known.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(seqnum: i64, nickname: &str) -> Map<String, Json> {
        let Json::Object(map) = serde_json::json!({
            "service-name": "storage", "seqnum": seqnum, "nickname": nickname,
        }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn newer_replaces_older_or_equal_is_ignored_and_one_key_is_one_server() {
        let mut registry = Registry::default();
        assert_eq!(registry.offer("v0-a", ann(3, "a"), 10), Outcome::Added);
        assert_eq!(registry.offer("v0-a", ann(3, "a"), 11), Outcome::Duplicate);
        assert_eq!(registry.servers()["v0-a"].announced_at, 11);
        assert_eq!(
            registry.offer("v0-a", ann(3, "renamed"), 12),
            Outcome::Stale,
            "equal seqnum"
        );
        assert_eq!(registry.offer("v0-a", ann(2, "older"), 13), Outcome::Stale, "replay");
        assert_eq!(registry.offer("v0-a", ann(4, "newer"), 14), Outcome::Replaced);
        assert_eq!(registry.servers()["v0-a"].ann["nickname"], "newer");
        assert_eq!(registry.offer("v0-b", ann(1, "b"), 15), Outcome::Added);
        assert_eq!(registry.len(), 2);
        let mut other = ann(9, "x");
        other.insert("service-name".into(), "other".into());
        assert_eq!(registry.offer("v0-c", other, 16), Outcome::Ignored);
        let mut no_seqnum = ann(5, "n");
        no_seqnum.remove("seqnum");
        assert_eq!(registry.offer("v0-a", no_seqnum, 17), Outcome::Stale);
        assert_eq!(registry.len(), 2);
    }
}
