//! `private/introducers.yaml`, Tahoe 1.20's list of introducers (`introducers: {<petname>:
//! {furl: ...}}`), so a Tahoe client's file can be copied over; `lafs init --introducer-furl`
//! writes one with the petname `default`.

use std::path::{Path, PathBuf};

use crate::foolscap::furl::Furl;

/// Where the list lives in a node directory.
pub fn introducers_path(dir: &Path) -> PathBuf {
    dir.join("private").join("introducers.yaml")
}

/// Why the list is unusable. Never quotes a fURL (it holds a swissnum).
#[derive(Debug, thiserror::Error)]
pub enum IntroducersError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: String,
        /// the cause
        source: std::io::Error,
    },
    /// Not the shape Tahoe writes, or a bad fURL.
    #[error("{path}: {why}")]
    Bad {
        /// the file
        path: String,
        /// what is wrong
        why: String,
    },
}

/// The introducers of a list's text, by petname.
pub fn parse(text: &str) -> Result<Vec<(String, Furl)>, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let Some(introducers) = doc.get("introducers") else {
        return Ok(Vec::new());
    };
    if introducers.is_null() {
        return Ok(Vec::new());
    }
    let introducers = introducers.as_mapping().ok_or("`introducers` is not a mapping")?;
    let mut out = Vec::new();
    for (petname, entry) in introducers {
        let petname = petname.as_str().ok_or("a petname is not text")?;
        // The petname names the cache file: keep it to a safe file-name part.
        if petname.is_empty()
            || !petname.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || petname.starts_with('.')
        {
            return Err(format!("petname {petname:?}: use letters, digits, '-', '_' and '.'"));
        }
        let furl = entry
            .get("furl")
            .and_then(serde_yaml::Value::as_str)
            .ok_or_else(|| format!("introducer {petname}: no `furl`"))?;
        let furl: Furl = furl.parse().map_err(|e| format!("introducer {petname}: {e}"))?;
        out.push((petname.to_string(), furl));
    }
    Ok(out)
}

/// The introducers of node directory `dir` (none when it has no list).
pub fn load(dir: &Path) -> Result<Vec<(String, Furl)>, IntroducersError> {
    let path = introducers_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|why| IntroducersError::Bad {
            path: path.display().to_string(),
            why,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(IntroducersError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes a list with one introducer, `default` (mode 0600).
pub fn write_default(dir: &Path, furl: &Furl) -> Result<(), IntroducersError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = introducers_path(dir);
    let io = |source| IntroducersError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = format!("introducers:\n  default:\n    furl: \"{furl}\"\n");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tahoes_file_parses_and_ours_reads_back() {
        let tahoe = "introducers:\n  default:\n    furl: pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@tcp:127.0.0.1:46190/totd6bskfvtnfrth543huiain67qedfo\n";
        let list = parse(tahoe).unwrap();
        assert_eq!(list[0].0, "default");
        assert_eq!(list[0].1.tub_id, "uhxmid7zmy77aeae3awcodkiw3uiz5lp");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("private")).unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        write_default(dir.path(), &list[0].1).unwrap();
        assert_eq!(load(dir.path()).unwrap(), list);
        assert!(parse("introducers: {}\n").unwrap().is_empty());
        let bad = parse("introducers:\n  x:\n    furl: pb://short@h:1/secret\n").unwrap_err();
        assert!(bad.contains("tub ID") && !bad.contains("secret"), "{bad}");
        assert!(parse("introducers:\n  ../x:\n    furl: a\n").is_err());
    }
}
