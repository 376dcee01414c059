//! `/uri/<cap>/...` paths: any cap a user holds opens under `/uri/`, as in Tahoe's SFTP frontend.
//!
//! A path whose first name is `uri` and whose second parses as a known cap starts at that cap
//! instead of the view's root; what it allows (read-only or writable) is the cap's own. A first
//! name `uri` followed by anything else is an ordinary path (a directory called `uri` in the root
//! stays reachable). The cap itself is a secret: [`loggable`] hides it before a path is logged.

use super::{Kind, Stat};
use crate::grid::uri::Cap;

/// The first name of a cap path.
const PREFIX: &str = "uri";

/// The cap a path's names start at and the names left after it, when they start with `uri/<cap>`.
pub fn cap_start(names: &[String]) -> Option<(Cap, &[String])> {
    match names {
        [first, cap, rest @ ..] if first == PREFIX => match Cap::parse(cap) {
            Ok(Cap::Unknown(_)) | Err(_) => None,
            Ok(cap) => Some((cap, rest)),
        },
        _ => None,
    }
}

/// Whether `names` are `uri` alone: where clients that change directory one name at a time
/// (curl's FTP) pass on their way to `/uri/<cap>`. Without an entry `uri` in the root it is an
/// empty read-only directory.
pub fn is_cap_parent(names: &[String]) -> bool {
    matches!(names, [only] if only == PREFIX)
}

/// The stat of `/uri` when the root has no entry of that name.
pub fn cap_parent_stat() -> Stat {
    Stat {
        kind: Kind::Directory,
        size: 0,
        mtime: None,
        read_only: true,
        mode: None,
    }
}

/// Whether `names` name a cap itself (`uri/<cap>`), which has no parent directory to change.
pub fn is_bare_cap(names: &[String]) -> bool {
    cap_start(names).is_some_and(|(_, rest)| rest.is_empty())
}

/// `path` with every name that holds a cap (`URI:...`) replaced by `<cap>`, for logs and error texts.
pub fn loggable(path: &str) -> String {
    path.split('/')
        .map(|part| if part.contains("URI:") { "<cap>" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

/// `text` with every cap in it (`URI:` and the characters a cap is made of after it) replaced by
/// `<cap>`, for log lines that quote paths in their own way (libunftp's).
pub fn redact_caps(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("URI:") {
        out.push_str(&rest[..at]);
        out.push_str("<cap>");
        let cap = &rest[at..];
        let end = cap
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.')))
            .unwrap_or(cap.len());
        rest = &cap[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str) -> Vec<String> {
        path.split('/').filter(|n| !n.is_empty()).map(String::from).collect()
    }

    #[test]
    fn cap_paths_start_at_the_cap_and_other_uri_paths_stay_ordinary() {
        let lit = "URI:LIT:nbswy3dp";
        let path = names(&format!("uri/{lit}/x"));
        let (cap, rest) = cap_start(&path).expect("a cap path");
        assert!(matches!(cap, Cap::Literal(_)));
        assert_eq!(rest, ["x".to_string()]);
        assert!(is_bare_cap(&names(&format!("uri/{lit}"))));
        assert!(cap_start(&names("uri/notes.txt")).is_none());
        assert!(cap_start(&names("uri/URI:NEWKIND:abc")).is_none());
        assert!(cap_start(&names(&format!("docs/uri/{lit}"))).is_none());
    }

    #[test]
    fn logged_paths_hide_the_cap() {
        assert_eq!(loggable("/uri/URI:LIT:nbswy3dp/a"), "/uri/<cap>/a");
        assert_eq!(loggable("uri/URI:DIR2:aaa:bbb"), "uri/<cap>");
        assert_eq!(loggable("/docs/uri/x"), "/docs/uri/x");
        assert_eq!(loggable("/a/b"), "/a/b");
        assert_eq!(
            redact_caps("Successful STOR \"/uri/URI:DIR2:ab2c:de3f/x\"; path: URI:SSK-RO:a:b, n"),
            "Successful STOR \"/uri/<cap>/x\"; path: <cap>, n"
        );
        assert_eq!(redact_caps("no caps here"), "no caps here");
    }
}
