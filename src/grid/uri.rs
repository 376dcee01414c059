//! Capabilities: parse and print every Tahoe cap kind; derive the weaker caps from the stronger.
//!
//! `Debug` on caps prints only the kind and the storage index, never key material,
//! so a cap that lands in a log line or an error message gives nothing away.

use std::fmt;
use std::str::FromStr;

use crate::grid::base32;
use crate::grid::hashutil::{Hash, storage_index_hash, tag, tagged_hash16};

/// A 16-byte storage index: public, names where shares live.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageIndex(pub [u8; 16]);

impl fmt::Display for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.0))
    }
}

impl fmt::Debug for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageIndex({self})")
    }
}

impl FromStr for StorageIndex {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        base32::decode_array(s)
            .map(StorageIndex)
            .ok_or(ParseError::BadField("storage index"))
    }
}

/// Why a cap string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The string does not start with `URI:`.
    #[error("not a capability (it should start with URI:)")]
    NotACap,
    /// A known kind with a field of the wrong length or alphabet.
    #[error("malformed capability: bad {0}")]
    BadField(&'static str),
    /// A known kind with the wrong number of fields.
    #[error("malformed capability: wrong number of fields")]
    FieldCount,
}

/// A `URI:LIT:` cap: the file's bytes themselves.
#[derive(Clone, PartialEq, Eq)]
pub struct LiteralCap {
    /// The whole file (at most 55 bytes when made by an uploader).
    pub data: Vec<u8>,
}

/// A `URI:CHK:` read cap.
#[derive(Clone, PartialEq, Eq)]
pub struct ChkCap {
    /// AES-128 key.
    pub key: [u8; 16],
    /// Hash of the URI extension block.
    pub ueb_hash: Hash,
    /// k.
    pub needed: u16,
    /// N.
    pub total: u16,
    /// File size.
    pub size: u64,
}

impl ChkCap {
    /// The storage index derived from the key.
    pub fn storage_index(&self) -> StorageIndex {
        StorageIndex(storage_index_hash(&self.key))
    }

    /// The verify cap: enough to check shares, not to read them.
    pub fn verifier(&self) -> ChkVerifierCap {
        ChkVerifierCap {
            storage_index: self.storage_index(),
            ueb_hash: self.ueb_hash,
            needed: self.needed,
            total: self.total,
            size: self.size,
        }
    }
}

/// A `URI:CHK-Verifier:` cap.
#[derive(Clone, PartialEq, Eq)]
pub struct ChkVerifierCap {
    /// Where the shares live.
    pub storage_index: StorageIndex,
    /// Hash of the URI extension block.
    pub ueb_hash: Hash,
    /// k.
    pub needed: u16,
    /// N.
    pub total: u16,
    /// File size.
    pub size: u64,
}

/// SDMF (`URI:SSK…`) or MDMF (`URI:MDMF…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutableFormat {
    /// Single-segment mutable file.
    Sdmf,
    /// Multi-segment mutable file.
    Mdmf,
}

/// Tahoe's names for the formats, as messages show them.
impl fmt::Display for MutableFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MutableFormat::Sdmf => "SDMF",
            MutableFormat::Mdmf => "MDMF",
        })
    }
}

/// What a mutable cap lets its holder do, with the key that grants it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MutableAccess {
    /// Write cap: the writekey.
    Write([u8; 16]),
    /// Read cap: the readkey.
    Read([u8; 16]),
    /// Verify cap: the storage index.
    Verify(StorageIndex),
}

/// A mutable file cap (write, read or verify) of either format.
#[derive(Clone, PartialEq, Eq)]
pub struct MutableCap {
    /// SDMF or MDMF.
    pub format: MutableFormat,
    /// The access level and its key.
    pub access: MutableAccess,
    /// Hash of the verification key.
    pub fingerprint: Hash,
    /// MDMF extension fields after the fingerprint (`:k:segsize` hints), kept to round-trip.
    pub extension: String,
}

/// readkey = H(writekey)[:16].
pub fn readkey_from_writekey(writekey: &[u8; 16]) -> [u8; 16] {
    tagged_hash16(tag::MUTABLE_READKEY, writekey)
}

/// SI = H(readkey)[:16].
pub fn mutable_storage_index(readkey: &[u8; 16]) -> StorageIndex {
    StorageIndex(tagged_hash16(tag::MUTABLE_STORAGE_INDEX, readkey))
}

impl MutableCap {
    /// The storage index, derived from whichever key the cap holds.
    pub fn storage_index(&self) -> StorageIndex {
        match self.access {
            MutableAccess::Write(wk) => mutable_storage_index(&readkey_from_writekey(&wk)),
            MutableAccess::Read(rk) => mutable_storage_index(&rk),
            MutableAccess::Verify(si) => si,
        }
    }

    /// The read-only cap (itself if already read-only or weaker).
    pub fn read_only(&self) -> MutableCap {
        let access = match self.access {
            MutableAccess::Write(wk) => MutableAccess::Read(readkey_from_writekey(&wk)),
            other => other,
        };
        MutableCap { access, ..self.clone() }
    }

    /// The verify cap.
    pub fn verifier(&self) -> MutableCap {
        MutableCap {
            access: MutableAccess::Verify(self.storage_index()),
            ..self.clone()
        }
    }

    fn prefix(&self) -> &'static str {
        match (self.format, &self.access) {
            (MutableFormat::Sdmf, MutableAccess::Write(_)) => "URI:SSK:",
            (MutableFormat::Sdmf, MutableAccess::Read(_)) => "URI:SSK-RO:",
            (MutableFormat::Sdmf, MutableAccess::Verify(_)) => "URI:SSK-Verifier:",
            (MutableFormat::Mdmf, MutableAccess::Write(_)) => "URI:MDMF:",
            (MutableFormat::Mdmf, MutableAccess::Read(_)) => "URI:MDMF-RO:",
            (MutableFormat::Mdmf, MutableAccess::Verify(_)) => "URI:MDMF-Verifier:",
        }
    }
}

/// Any capability Tahoe knows, plus unknown ones kept verbatim.
#[derive(Clone, PartialEq, Eq)]
pub enum Cap {
    /// `URI:LIT:`
    Literal(LiteralCap),
    /// `URI:CHK:`
    Chk(ChkCap),
    /// `URI:CHK-Verifier:`
    ChkVerifier(ChkVerifierCap),
    /// `URI:SSK*` and `URI:MDMF*`
    Mutable(MutableCap),
    /// `URI:DIR2*`: a directory stored in the wrapped file cap.
    Directory(Box<Cap>),
    /// A cap of a kind this version does not know; printed back unchanged.
    Unknown(String),
}

/// Directory prefixes and the file-cap prefix each one stands in for.
const DIRECTORY_PREFIXES: [(&str, &str); 9] = [
    ("URI:DIR2:", "URI:SSK:"),
    ("URI:DIR2-RO:", "URI:SSK-RO:"),
    ("URI:DIR2-Verifier:", "URI:SSK-Verifier:"),
    ("URI:DIR2-MDMF:", "URI:MDMF:"),
    ("URI:DIR2-MDMF-RO:", "URI:MDMF-RO:"),
    ("URI:DIR2-MDMF-Verifier:", "URI:MDMF-Verifier:"),
    ("URI:DIR2-CHK:", "URI:CHK:"),
    ("URI:DIR2-CHK-Verifier:", "URI:CHK-Verifier:"),
    ("URI:DIR2-LIT:", "URI:LIT:"),
];

impl Cap {
    /// Parses a cap. Unknown `URI:` kinds become [`Cap::Unknown`]; malformed known kinds are errors.
    ///
    /// Tahoe's alleged-status prefixes are honoured: `ro.` and `imm.` are stripped,
    /// and a cap stronger than its prefix allows (a write cap behind `ro.`, anything
    /// mutable behind `imm.`) becomes [`Cap::Unknown`] holding the original text.
    pub fn parse(text: &str) -> Result<Cap, ParseError> {
        let text = text.trim();
        for (prefix, allows) in [
            ("imm.", Cap::is_immutable as fn(&Cap) -> bool),
            ("ro.", Cap::is_read_only),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let cap = Cap::parse_unprefixed(rest)?;
                return Ok(if allows(&cap) {
                    cap
                } else {
                    Cap::Unknown(text.to_string())
                });
            }
        }
        Cap::parse_unprefixed(text)
    }

    fn parse_unprefixed(text: &str) -> Result<Cap, ParseError> {
        if !text.starts_with("URI:") {
            return Err(ParseError::NotACap);
        }
        for (dir, file) in DIRECTORY_PREFIXES {
            if let Some(body) = text.strip_prefix(dir) {
                let inner = Cap::parse_unprefixed(&format!("{file}{body}"))?;
                return Ok(Cap::Directory(Box::new(inner)));
            }
        }
        if let Some(body) = text.strip_prefix("URI:LIT:") {
            let data = base32::decode(body).ok_or(ParseError::BadField("literal data"))?;
            return Ok(Cap::Literal(LiteralCap { data }));
        }
        if let Some(body) = text.strip_prefix("URI:CHK:") {
            let (key, ueb_hash, needed, total, size) = parse_chk_fields(body, false)?;
            let key = base32::decode_array(key).ok_or(ParseError::BadField("key"))?;
            return Ok(Cap::Chk(ChkCap {
                key,
                ueb_hash,
                needed,
                total,
                size,
            }));
        }
        if let Some(body) = text.strip_prefix("URI:CHK-Verifier:") {
            let (si, ueb_hash, needed, total, size) = parse_chk_fields(body, true)?;
            let storage_index = si.parse()?;
            return Ok(Cap::ChkVerifier(ChkVerifierCap {
                storage_index,
                ueb_hash,
                needed,
                total,
                size,
            }));
        }
        let mutable_kinds = [
            ("URI:SSK:", MutableFormat::Sdmf, 0),
            ("URI:SSK-RO:", MutableFormat::Sdmf, 1),
            ("URI:SSK-Verifier:", MutableFormat::Sdmf, 2),
            ("URI:MDMF:", MutableFormat::Mdmf, 0),
            ("URI:MDMF-RO:", MutableFormat::Mdmf, 1),
            ("URI:MDMF-Verifier:", MutableFormat::Mdmf, 2),
        ];
        for (prefix, format, level) in mutable_kinds {
            if let Some(body) = text.strip_prefix(prefix) {
                return parse_mutable(body, format, level).map(Cap::Mutable);
            }
        }
        Ok(Cap::Unknown(text.to_string()))
    }

    /// The read-only form of this cap (itself when it is already read-only).
    pub fn read_only(&self) -> Cap {
        match self {
            Cap::Mutable(m) => Cap::Mutable(m.read_only()),
            Cap::Directory(inner) => Cap::Directory(Box::new(inner.read_only())),
            other => other.clone(),
        }
    }

    /// Whether the cap grants no write access (unknown caps count as read-only: they cannot be used to write).
    pub fn is_read_only(&self) -> bool {
        match self {
            Cap::Mutable(m) => !matches!(m.access, MutableAccess::Write(_)),
            Cap::Directory(inner) => inner.is_read_only(),
            _ => true,
        }
    }

    /// Whether the cap names something that can never change.
    pub fn is_immutable(&self) -> bool {
        match self {
            Cap::Literal(_) | Cap::Chk(_) | Cap::ChkVerifier(_) => true,
            Cap::Mutable(_) | Cap::Unknown(_) => false,
            Cap::Directory(inner) => inner.is_immutable(),
        }
    }

    /// The storage index, for caps that have one.
    pub fn storage_index(&self) -> Option<StorageIndex> {
        match self {
            Cap::Literal(_) | Cap::Unknown(_) => None,
            Cap::Chk(c) => Some(c.storage_index()),
            Cap::ChkVerifier(c) => Some(c.storage_index),
            Cap::Mutable(c) => Some(c.storage_index()),
            Cap::Directory(inner) => inner.storage_index(),
        }
    }

    /// A short name of the kind, safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Cap::Literal(_) => "LIT",
            Cap::Chk(_) => "CHK",
            Cap::ChkVerifier(_) => "CHK-Verifier",
            Cap::Mutable(m) => m.prefix().trim_start_matches("URI:").trim_end_matches(':'),
            Cap::Directory(inner) => match **inner {
                Cap::Literal(_) => "DIR2-LIT",
                Cap::Chk(_) => "DIR2-CHK",
                Cap::ChkVerifier(_) => "DIR2-CHK-Verifier",
                Cap::Mutable(ref m) => match (m.format, m.access) {
                    (MutableFormat::Sdmf, MutableAccess::Write(_)) => "DIR2",
                    (MutableFormat::Sdmf, MutableAccess::Read(_)) => "DIR2-RO",
                    (MutableFormat::Sdmf, MutableAccess::Verify(_)) => "DIR2-Verifier",
                    (MutableFormat::Mdmf, MutableAccess::Write(_)) => "DIR2-MDMF",
                    (MutableFormat::Mdmf, MutableAccess::Read(_)) => "DIR2-MDMF-RO",
                    (MutableFormat::Mdmf, MutableAccess::Verify(_)) => "DIR2-MDMF-Verifier",
                },
                _ => "DIR2-unknown",
            },
            Cap::Unknown(_) => "unknown",
        }
    }
}

fn parse_chk_fields(body: &str, verifier: bool) -> Result<(&str, Hash, u16, u16, u64), ParseError> {
    let fields: Vec<&str> = body.split(':').collect();
    // Tahoe's CHK-Verifier regex is unanchored: trailing fields are tolerated.
    if fields.len() < 5 || (!verifier && fields.len() != 5) {
        return Err(ParseError::FieldCount);
    }
    let ueb_hash = base32::decode_array(fields[1]).ok_or(ParseError::BadField("UEB hash"))?;
    let number = |s: &str, what| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadField(what));
        }
        s.parse::<u64>().map_err(|_| ParseError::BadField(what))
    };
    let needed = number(fields[2], "k")?;
    let total = number(fields[3], "N")?;
    if needed == 0 || needed > total || total > 256 {
        return Err(ParseError::BadField("k/N"));
    }
    let size = number(fields[4], "size")?;
    Ok((fields[0], ueb_hash, needed as u16, total as u16, size))
}

fn parse_mutable(body: &str, format: MutableFormat, level: u8) -> Result<MutableCap, ParseError> {
    let mut fields = body.splitn(3, ':');
    let key = fields.next().ok_or(ParseError::FieldCount)?;
    let fingerprint = fields.next().ok_or(ParseError::FieldCount)?;
    let extension = fields.next().map(str::to_string).unwrap_or_default();
    if format == MutableFormat::Sdmf && !extension.is_empty() {
        return Err(ParseError::FieldCount);
    }
    let key: [u8; 16] = base32::decode_array(key).ok_or(ParseError::BadField("key"))?;
    let fingerprint = base32::decode_array(fingerprint).ok_or(ParseError::BadField("fingerprint"))?;
    let access = match level {
        0 => MutableAccess::Write(key),
        1 => MutableAccess::Read(key),
        _ => MutableAccess::Verify(StorageIndex(key)),
    };
    Ok(MutableCap {
        format,
        access,
        fingerprint,
        extension,
    })
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Literal(c) => write!(f, "URI:LIT:{}", base32::encode(&c.data)),
            Cap::Chk(c) => write!(
                f,
                "URI:CHK:{}:{}:{}:{}:{}",
                base32::encode(&c.key),
                base32::encode(&c.ueb_hash),
                c.needed,
                c.total,
                c.size
            ),
            Cap::ChkVerifier(c) => write!(
                f,
                "URI:CHK-Verifier:{}:{}:{}:{}:{}",
                c.storage_index,
                base32::encode(&c.ueb_hash),
                c.needed,
                c.total,
                c.size
            ),
            Cap::Mutable(c) => {
                let key = match c.access {
                    MutableAccess::Write(k) | MutableAccess::Read(k) => base32::encode(&k),
                    MutableAccess::Verify(si) => si.to_string(),
                };
                write!(f, "{}{}:{}", c.prefix(), key, base32::encode(&c.fingerprint))?;
                if !c.extension.is_empty() {
                    write!(f, ":{}", c.extension)?;
                }
                Ok(())
            }
            Cap::Directory(inner) => {
                let inner_text = inner.to_string();
                for (dir, file) in DIRECTORY_PREFIXES {
                    if let Some(body) = inner_text.strip_prefix(file) {
                        return write!(f, "{dir}{body}");
                    }
                }
                f.write_str(&inner_text)
            }
            Cap::Unknown(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.storage_index() {
            Some(si) => write!(f, "Cap({}, si={si})", self.kind()),
            None => write!(f, "Cap({})", self.kind()),
        }
    }
}

impl fmt::Debug for LiteralCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiteralCap({} bytes)", self.data.len())
    }
}

impl fmt::Debug for ChkCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChkCap(si={}, {}-of-{}, {} bytes)",
            self.storage_index(),
            self.needed,
            self.total,
            self.size
        )
    }
}

impl fmt::Debug for ChkVerifierCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChkVerifierCap(si={}, {}-of-{}, {} bytes)",
            self.storage_index, self.needed, self.total, self.size
        )
    }
}

impl fmt::Debug for MutableCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MutableCap({}, si={})",
            self.prefix().trim_end_matches(':'),
            self.storage_index()
        )
    }
}

impl FromStr for Cap {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Cap::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHK: &str = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56";
    const SSK: &str = "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq";

    #[test]
    fn every_kind_round_trips() {
        let body_chk = CHK.trim_start_matches("URI:CHK:");
        let body_ssk = SSK.trim_start_matches("URI:SSK:");
        let samples = [
            CHK.to_string(),
            "URI:LIT:".to_string(),
            "URI:LIT:mfrgg".to_string(),
            format!("URI:SSK:{body_ssk}"),
            format!("URI:SSK-RO:{body_ssk}"),
            format!("URI:SSK-Verifier:{body_ssk}"),
            format!("URI:MDMF:{body_ssk}"),
            format!("URI:MDMF-RO:{body_ssk}"),
            format!("URI:MDMF-Verifier:{body_ssk}"),
            format!("URI:MDMF:{body_ssk}:3:131073"),
            format!("URI:DIR2:{body_ssk}"),
            format!("URI:DIR2-RO:{body_ssk}"),
            format!("URI:DIR2-Verifier:{body_ssk}"),
            format!("URI:DIR2-MDMF:{body_ssk}"),
            format!("URI:DIR2-MDMF-RO:{body_ssk}"),
            format!("URI:DIR2-MDMF-Verifier:{body_ssk}"),
            format!("URI:DIR2-CHK:{body_chk}"),
            "URI:DIR2-LIT:".to_string(),
            "URI:DIR2-LIT:mfrgg".to_string(),
            "URI:NEWKIND:whatever:1:2".to_string(),
        ];
        for text in samples {
            let cap = Cap::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cap.to_string(), text);
        }
    }

    #[test]
    fn verifier_caps_round_trip_and_derive() {
        let Cap::Chk(chk) = Cap::parse(CHK).unwrap() else {
            panic!("not CHK")
        };
        let verifier = Cap::ChkVerifier(chk.verifier()).to_string();
        assert!(verifier.starts_with("URI:CHK-Verifier:"));
        assert_eq!(Cap::parse(&verifier).unwrap().to_string(), verifier);
        let dir_verifier = verifier.replace("URI:CHK-Verifier:", "URI:DIR2-CHK-Verifier:");
        assert_eq!(Cap::parse(&dir_verifier).unwrap().to_string(), dir_verifier);
    }

    #[test]
    fn mutable_derivations_match_tahoe() {
        // ssk_readkey_hash(b"") / ssk_storage_index_hash(b"") from test_hashutil.py.
        assert_eq!(
            base32::encode(&tagged_hash16(tag::MUTABLE_READKEY, b"")),
            "vugid4as6qbqgeq2xczvvcedai"
        );
        assert_eq!(
            base32::encode(&tagged_hash16(tag::MUTABLE_STORAGE_INDEX, b"")),
            "j7icz6kigb6hxrej3tv4z7ayym"
        );
        let Cap::Mutable(write) = Cap::parse(SSK).unwrap() else {
            panic!("not SSK")
        };
        let read = write.read_only();
        assert_eq!(read.storage_index(), write.storage_index());
        assert_eq!(read.verifier().storage_index(), write.storage_index());
        assert!(Cap::Mutable(read).to_string().starts_with("URI:SSK-RO:"));
    }

    #[test]
    fn malformed_caps_are_errors_not_panics() {
        for bad in [
            "hello",
            "URI:CHK:short:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56",
            "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1",
            "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:2:1:56",
            "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:-5",
            "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56:9",
            "URI:LIT:MFRGG",
            "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm",
            "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncp:extra",
            "URI:DIR2:nonsense",
        ] {
            assert!(Cap::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn alleged_prefixes_are_stripped_or_the_cap_becomes_unknown() {
        let body_ssk = SSK.trim_start_matches("URI:SSK:");
        assert_eq!(Cap::parse(&format!("ro.{CHK}")).unwrap().to_string(), CHK);
        assert_eq!(Cap::parse(&format!("imm.{CHK}")).unwrap().to_string(), CHK);
        let ro = format!("URI:SSK-RO:{body_ssk}");
        assert_eq!(Cap::parse(&format!("ro.{ro}")).unwrap().to_string(), ro);
        for odd in [
            format!("ro.{SSK}"),
            format!("imm.{ro}"),
            format!("ro.URI:DIR2:{body_ssk}"),
        ] {
            assert_eq!(Cap::parse(&odd).unwrap(), Cap::Unknown(odd.clone()), "{odd}");
        }
        assert_eq!(
            Cap::parse(&format!("ro.URI:DIR2-RO:{body_ssk}")).unwrap().kind(),
            "DIR2-RO"
        );
        assert!(Cap::parse("ro.nonsense").is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let cap = Cap::parse(CHK).unwrap();
        let debug = format!("{cap:?}");
        assert!(!debug.contains("yzxcoagbetwet65ltjpbqyli3m"), "{debug}");
        assert!(debug.contains("CHK"));
        let ssk = format!("{:?}", Cap::parse(SSK).unwrap());
        assert!(!ssk.contains("fs6ul2fju2fvb2cfx7gt6ngycm"), "{ssk}");
        let lit = format!("{:?}", Cap::parse("URI:LIT:mfrgg").unwrap());
        assert!(!lit.contains("mfrgg"), "{lit}");
        let Cap::Chk(chk) = cap else { panic!("not CHK") };
        let inner = format!("{chk:?}");
        assert!(
            !inner.contains("yzxcoagbetwet65ltjpbqyli3m") && inner.contains("si="),
            "{inner}"
        );
    }
}
