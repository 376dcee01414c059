//! A node as Tahoe's manifest lists it: path, cap, verify cap, repair cap, storage index.

use serde_json::{Value, json};

use super::walk::{DeepNode, NodeKind};
use crate::grid::uri::Cap;

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The names from the root (empty for the root).
    pub path: Vec<String>,
    /// `directory`, `file` or `unknown`.
    pub kind: NodeKind,
    /// The node's cap as linked.
    pub cap: String,
    /// Its verify cap (none for LIT files and unknown caps).
    pub verify_cap: Option<String>,
    /// The cap a repair needs: the verify cap of an immutable node, the write cap of a mutable one
    /// (none when only a read cap is known: Tahoe cannot repair through one either).
    pub repair_cap: Option<String>,
    /// Its storage index in base32 (none for LIT files).
    pub storage_index: Option<String>,
}

impl ManifestEntry {
    /// The entry for a walked node.
    pub fn of(node: &DeepNode) -> ManifestEntry {
        let verify = verify_cap(&node.cap);
        let repair = if node.cap.is_immutable() {
            verify.clone()
        } else if node.cap.is_read_only() {
            None
        } else {
            Some(node.cap.clone())
        };
        ManifestEntry {
            path: node.path.clone(),
            kind: node.kind,
            cap: node.cap.to_string(),
            verify_cap: verify.map(|c| c.to_string()),
            repair_cap: repair.map(|c| c.to_string()),
            storage_index: node.cap.storage_index().map(|si| si.to_string()),
        }
    }

    /// The line of Tahoe's `t=stream-manifest` (`""` where a field has no value).
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind.manifest_type(),
            "path": self.path,
            "cap": self.cap,
            "verifycap": self.verify_cap.as_deref().unwrap_or(""),
            "repaircap": self.repair_cap.as_deref().unwrap_or(""),
            "storage-index": self.storage_index.as_deref().unwrap_or(""),
        })
    }
}

/// The verify cap of `cap`: enough to check and repair it, not to read it.
pub fn verify_cap(cap: &Cap) -> Option<Cap> {
    match cap {
        Cap::Chk(chk) => Some(Cap::ChkVerifier(chk.verifier())),
        Cap::ChkVerifier(_) => Some(cap.clone()),
        Cap::Mutable(m) => Some(Cap::Mutable(m.verifier())),
        Cap::Directory(inner) => verify_cap(inner).map(|v| Cap::Directory(Box::new(v))),
        Cap::Literal(_) | Cap::Unknown(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_caps_of_each_kind() {
        let chk = Cap::parse(
            "URI:CHK:ptxsy4vdiydqbsftdbvbx2pgve:ba4sfg6lc6zicwbyvw3l34elfcvsh5u5zq4gbyjdu5wdfwj7owja:3:10:2000",
        )
        .unwrap();
        let verify = verify_cap(&chk).unwrap().to_string();
        assert!(verify.starts_with("URI:CHK-Verifier:"), "{verify}");
        assert!(verify.ends_with(":3:10:2000"), "{verify}");
        let lit = Cap::parse("URI:LIT:mfrgg").unwrap();
        assert!(verify_cap(&lit).is_none());
    }
}
