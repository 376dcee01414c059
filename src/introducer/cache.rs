//! Tahoe's announcement cache, `private/introducer_<petname>_cache.yaml`: a YAML list of
//! `{ann: <dict>, key_s: v0-...}`, written after every change and read when the introducer
//! cannot be reached, so a node restarted while its introducer is down still finds its servers.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::registry::{Known, Registry};

/// Why a cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: String,
        /// the cause
        source: std::io::Error,
    },
    /// The file is not a list of `{ann, key_s}`.
    #[error("{path}: not an introducer cache ({why})")]
    Shape {
        /// the file
        path: String,
        /// what is wrong
        why: String,
    },
}

/// The cache file of the introducer named `petname` in node directory `dir`.
pub fn cache_path(dir: &Path, petname: &str) -> PathBuf {
    dir.join("private").join(format!("introducer_{petname}_cache.yaml"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    ann: Map<String, Json>,
    key_s: String,
}

/// The cache's text for `registry`.
pub fn encode(registry: &Registry) -> String {
    let entries: Vec<Entry> = registry
        .servers()
        .iter()
        .map(|(key, known)| Entry {
            ann: known.ann.clone(),
            key_s: key.clone(),
        })
        .collect();
    serde_yaml::to_string(&entries).unwrap_or_default()
}

/// Reads a cache's text into a registry (every entry stamped `now`).
pub fn decode(text: &str, now: u64) -> Result<Registry, String> {
    let entries: Vec<Entry> = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut registry = Registry::default();
    for entry in entries {
        registry.offer(&entry.key_s, entry.ann, now);
    }
    Ok(registry)
}

/// Reads the cache file at `path`; an absent file is an empty registry.
pub fn load(path: &Path, now: u64) -> Result<Registry, CacheError> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode(&text, now).map_err(|why| CacheError::Shape {
            path: path.display().to_string(),
            why,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(source) => Err(CacheError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the cache file through a temporary file and a rename (mode 0600: it holds fURLs).
pub fn save(path: &Path, registry: &Registry) -> Result<(), CacheError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CacheError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("yaml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(encode(registry).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The servers of a registry as `servers.yaml` entries (`ann` as YAML), for the grid.
pub fn as_yaml(known: &Known) -> serde_yaml::Value {
    serde_yaml::to_value(&known.ann).unwrap_or(serde_yaml::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Tahoe 1.20 client's cache (one entry, from the interop grid).
    const TAHOE_CACHE: &str = r#"- ann:
    anonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3
    anonymous-storage-NURLs:
    - pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3#v=1
    app-versions: []
    my-version: tahoe-lafs/1.20.0
    nickname: s1
    nonce: ekrbtiz3ehk3ikrpneonqnqdhp4ddz3ybtatocn7quno7yroocjq
    oldest-supported: 1.0.0
    permutation-seed-base32: ov4hi2tbofzxi5bwoy3diz3oov4gq5btoj3humrwnv5do5lznfrte5dqgjutgyljo54tgztcnnygo33oovqq
    seqnum: 1
    service-name: storage
    version: 0
  key_s: v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua
"#;

    #[test]
    fn tahoes_cache_reads_and_ours_reads_back() {
        let registry = decode(TAHOE_CACHE, 5).unwrap();
        let known = &registry.servers()["v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua"];
        assert_eq!(known.ann["seqnum"], 1);
        let parsed = crate::grid::announcement::parse_announcement(
            "v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua",
            &as_yaml(known),
        )
        .unwrap();
        assert_eq!(parsed.nickname, "s1");
        assert_eq!(decode(&encode(&registry), 5).unwrap(), registry);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        assert!(load(&path, 1).unwrap().is_empty());
        save(&path, &registry).unwrap();
        assert_eq!(load(&path, 5).unwrap(), registry);
        assert!(decode("storage: {}", 1).is_err());
    }
}
