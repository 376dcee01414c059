//! Aliases: names for directory caps in `private/aliases` (Tahoe's format), for `alias:path` arguments.

use std::fs;
use std::path::Path;

use super::error::{Error, io};
use super::secrets::restrict_permissions;

/// The alias used when a path names none (as Tahoe's `tahoe:`).
pub const DEFAULT_ALIAS: &str = "tahoe";

/// Reads `private/aliases` (Tahoe's format: `name: cap` per line); a missing file is no aliases.
pub fn read_aliases(dir: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let path = dir.join("private").join("aliases");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(name, cap)| (name.trim().to_string(), cap.trim().to_string()))
        })
        .collect())
}

/// Adds (or replaces) an alias in `private/aliases`; the file stays private to its owner.
pub fn add_alias(dir: &Path, name: &str, cap: &str) -> Result<(), Error> {
    let bad = |message: &str| Error::BadConfig {
        file: "alias".into(),
        message: message.into(),
    };
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(bad("an alias name must be non-empty, without ':' or spaces"));
    }
    let mut aliases = read_aliases(dir)?;
    aliases.insert(name.to_string(), cap.to_string());
    let text: String = aliases.iter().map(|(n, c)| format!("{n}: {c}\n")).collect();
    let path = dir.join("private").join("aliases");
    let tmp = dir.join("private").join("aliases.tmp");
    fs::write(&tmp, text).map_err(io(format!("write {}", tmp.display())))?;
    restrict_permissions(&tmp, 0o600)?;
    fs::rename(&tmp, &path).map_err(io(format!("write {}", path.display())))
}
