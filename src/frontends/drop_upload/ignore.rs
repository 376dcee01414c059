//! Which files of a watched folder stay local: glob patterns matched against every path component.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Dotfiles (and everything in dot directories), editor and download leftovers.
pub const DEFAULT_IGNORE: [&str; 5] = [".*", "*.tmp", "*~", "*.part", "*.swp"];

/// Compiled ignore patterns.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    set: GlobSet,
}

impl IgnoreRules {
    /// Patterns such as `*.tmp` match any file or directory name; a pattern with a `/` matches
    /// the whole path under the folder (`raw/*.cr2`).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<IgnoreRules, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            builder.add(Glob::new(pattern.as_ref())?);
        }
        Ok(IgnoreRules { set: builder.build()? })
    }

    /// Whether `relative` (a path under the folder) or any directory it is in is ignored.
    pub fn is_ignored(&self, relative: &Path) -> bool {
        self.set.is_match(relative) || relative.components().any(|c| self.set.is_match(c.as_os_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_skip_dotfiles_temporaries_and_their_directories() {
        let rules = IgnoreRules::new(&DEFAULT_IGNORE).unwrap();
        for ignored in [
            ".hidden",
            "a/.git/config",
            "x.tmp",
            "notes.txt~",
            "big.iso.part",
            "d/.f.swp",
        ] {
            assert!(rules.is_ignored(Path::new(ignored)), "{ignored}");
        }
        for kept in ["photo.jpg", "a/b/c.txt", "tmp", "part/x.txt", "Grüße.txt"] {
            assert!(!rules.is_ignored(Path::new(kept)), "{kept}");
        }
        let custom = IgnoreRules::new(&["raw/*.cr2"]).unwrap();
        assert!(custom.is_ignored(Path::new("raw/a.cr2")));
        assert!(!custom.is_ignored(Path::new("a.cr2")));
    }
}
