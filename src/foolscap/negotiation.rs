//! Connection negotiation (section 2): the plaintext `GET /id/<tubid>` request and its `101`
//! answer, then, inside TLS, the Hello blocks both sides send and the Decision the master sends.
//! Blocks are `\r\n`-separated lines ending in an empty line; pure, no I/O.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use super::banana::VOCAB_TABLE_1;

/// Foolscap refuses a negotiation buffer longer than this (`Header too long`).
pub const MAX_BLOCK: usize = 4096;
/// The Banana protocol version (3: the PING/PONG era) both sides must speak.
pub const BANANA_VERSION: u32 = 3;
/// The vocab tables this side knows (0: empty, 1: the 25 words of section 3.5).
pub const VOCAB_RANGE: (u32, u32) = (0, 1);
/// The server's answer that switches the connection to TLS.
pub const SWITCHING_PROTOCOLS: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, PB/1.0\r\nConnection: Upgrade\r\n\r\n";

/// Why a negotiation failed. The texts never hold secrets (negotiation carries none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// More than [`MAX_BLOCK`] bytes without the end of a block.
    #[error("negotiation block longer than {MAX_BLOCK} bytes")]
    TooLong,
    /// The first bytes are not `GET /id/` (not a Foolscap connection).
    #[error("not a Foolscap request")]
    NotFoolscap,
    /// The request line is not `GET /id/<tubid> HTTP/1.1`.
    #[error("bad request line")]
    BadRequest,
    /// The request names no tub.
    #[error("secure Tubs require encryption")]
    NoTubId,
    /// The server did not switch to TLS; its first line (trimmed) says why.
    #[error("the peer refused the connection: {0}")]
    Refused(String),
    /// A line without `:`, or text that is not UTF-8.
    #[error("malformed negotiation line")]
    BadLine,
    /// A required key is missing or its value malformed.
    #[error("bad or missing `{0}`")]
    BadKey(&'static str),
    /// No Banana version or vocab table both sides know.
    #[error("no common {0} version")]
    NoCommonVersion(&'static str),
    /// The vocab table hash differs from ours.
    #[error("vocab table hash mismatch")]
    VocabHash,
    /// The peer sent an error block.
    #[error("the peer refused the connection: {0}")]
    PeerError(String),
    /// The certificate's tub ID is not the one the peer claims or the one dialled.
    #[error("tub ID mismatch")]
    TubIdMismatch,
}

/// The length of the first complete block in `buffer` (through its `\r\n\r\n`), `None` while it
/// is incomplete. Only the first [`MAX_BLOCK`] bytes are searched, so memory stays bounded.
pub fn block_end(buffer: &[u8]) -> Result<Option<usize>, NegotiationError> {
    let window = &buffer[..buffer.len().min(MAX_BLOCK)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => Ok(Some(at + 4)),
        None if buffer.len() > MAX_BLOCK => Err(NegotiationError::TooLong),
        None => Ok(None),
    }
}

/// The plaintext request for the tub `tub_id` reached at `host` (section 2.1).
pub fn request(tub_id: &str, host: &str) -> Vec<u8> {
    format!("GET /id/{tub_id} HTTP/1.1\r\nHost: {host}\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n").into_bytes()
}

/// Whether the first bytes of a connection can be a Foolscap request (`None`: too few yet).
pub fn is_foolscap_start(first: &[u8]) -> Option<bool> {
    const START: &[u8] = b"GET /id/";
    if first.len() < START.len() {
        return if START.starts_with(first) { None } else { Some(false) };
    }
    Some(first.starts_with(START))
}

/// The tub ID a request block asks for.
pub fn parse_request(block: &[u8]) -> Result<String, NegotiationError> {
    if !block.starts_with(b"GET /id/") {
        return Err(NegotiationError::NotFoolscap);
    }
    let text = std::str::from_utf8(block).map_err(|_| NegotiationError::BadRequest)?;
    let first = text.split("\r\n").next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    let [_, path, _] = words.as_slice() else {
        return Err(NegotiationError::BadRequest);
    };
    let tub_id = path.strip_prefix("/id/").ok_or(NegotiationError::BadRequest)?;
    if tub_id.is_empty() {
        return Err(NegotiationError::NoTubId);
    }
    Ok(tub_id.to_string())
}

/// Checks the server's answer to the request: `101` with `Upgrade: TLS/1.0`.
pub fn parse_response(block: &[u8]) -> Result<(), NegotiationError> {
    let text = String::from_utf8_lossy(block);
    let first = text.split("\r\n").next().unwrap_or_default();
    if first.split_whitespace().nth(1) == Some("101") && text.contains("Upgrade: TLS/1.0") {
        Ok(())
    } else {
        let shown: String = first.chars().filter(|c| !c.is_control()).take(200).collect();
        Err(NegotiationError::Refused(shown))
    }
}

/// A plaintext refusal, sent before closing (section 2.1).
pub fn error_response(message: &str) -> Vec<u8> {
    format!("HTTP/1.1 500 Internal Server Error: {}\r\n\r\n", one_line(message)).into_bytes()
}

fn one_line(message: &str) -> String {
    message.replace(['\r', '\n'], " ")
}

/// The `key: value` lines of a block (keys lowercased, values with leading blanks stripped).
pub fn parse_block(block: &[u8]) -> Result<BTreeMap<String, String>, NegotiationError> {
    let text = std::str::from_utf8(block).map_err(|_| NegotiationError::BadLine)?;
    let mut keys = BTreeMap::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        let (key, value) = line.split_once(':').ok_or(NegotiationError::BadLine)?;
        keys.insert(key.to_ascii_lowercase(), value.trim_start().to_string());
    }
    Ok(keys)
}

fn encode_block(keys: &BTreeMap<&str, String>) -> Vec<u8> {
    let mut out = String::new();
    for (key, value) in keys {
        out.push_str(&format!("{key}: {}\r\n", one_line(value)));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn range(keys: &BTreeMap<String, String>, key: &'static str) -> Result<Option<(u32, u32)>, NegotiationError> {
    let Some(value) = keys.get(key) else { return Ok(None) };
    let mut parts = value.split_whitespace().map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high)), None) if low <= high => Ok(Some((low, high))),
        _ => Err(NegotiationError::BadKey(key)),
    }
}

fn connection(value: &str, key: &'static str) -> Result<(String, u64), NegotiationError> {
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u64>), parts.next()) {
        (Some(incarnation), Some(Ok(seqnum)), None) => Ok((incarnation.to_string(), seqnum)),
        _ => Err(NegotiationError::BadKey(key)),
    }
}

/// The best version in both ranges (Foolscap's `min(max)` rule).
pub fn common_version(mine: (u32, u32), theirs: (u32, u32)) -> Option<u32> {
    let best = mine.1.min(theirs.1);
    (best >= mine.0 && best >= theirs.0).then_some(best)
}

/// The side with the greater tub ID decides (section 2.3).
pub fn is_master(my_tub_id: &str, their_tub_id: &str) -> bool {
    my_tub_id > their_tub_id
}

/// The first 4 hex digits of SHA-1 over a vocab table's words joined by NUL.
pub fn vocab_hash(index: u32) -> String {
    let words: &[&str] = if index == 1 { &VOCAB_TABLE_1 } else { &[] };
    let digest = Sha1::digest(words.join("\0").as_bytes());
    data_encoding::HEXLOWER.encode(&digest[..2])
}

/// One side's Hello block (section 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's tub ID.
    pub tub_id: String,
    /// 16 hex digits, fresh per process start.
    pub incarnation: Option<String>,
    /// Client only: the Decision last received from this peer (`none 0` if none).
    pub last_connection: Option<(String, u64)>,
    /// Banana versions.
    pub banana_range: (u32, u32),
    /// Vocab tables (a missing key counts as `0 0`).
    pub vocab_range: (u32, u32),
}

impl Hello {
    /// Our Hello.
    pub fn ours(tub_id: &str, incarnation: &str, last_connection: Option<(String, u64)>) -> Hello {
        Hello {
            tub_id: tub_id.to_string(),
            incarnation: Some(incarnation.to_string()),
            last_connection,
            banana_range: (BANANA_VERSION, BANANA_VERSION),
            vocab_range: VOCAB_RANGE,
        }
    }

    /// The block's bytes, keys sorted as Foolscap writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut keys = BTreeMap::new();
        let (low, high) = self.banana_range;
        keys.insert("banana-negotiation-range", format!("{low} {high}"));
        let (low, high) = self.vocab_range;
        keys.insert("initial-vocab-table-range", format!("{low} {high}"));
        if let Some((incarnation, seqnum)) = &self.last_connection {
            keys.insert("last-connection", format!("{incarnation} {seqnum}"));
        }
        if let Some(incarnation) = &self.incarnation {
            keys.insert("my-incarnation", incarnation.clone());
        }
        keys.insert("my-tub-id", self.tub_id.clone());
        encode_block(&keys)
    }

    /// Parses a peer's Hello; an `error` key is the peer's refusal.
    pub fn parse(block: &[u8]) -> Result<Hello, NegotiationError> {
        let keys = parse_block(block)?;
        if let Some(error) = keys.get("error") {
            return Err(NegotiationError::PeerError(error.chars().take(200).collect()));
        }
        let banana_range =
            range(&keys, "banana-negotiation-range")?.ok_or(NegotiationError::BadKey("banana-negotiation-range"))?;
        let vocab_range = range(&keys, "initial-vocab-table-range")?.unwrap_or((0, 0));
        let tub_id = keys
            .get("my-tub-id")
            .ok_or(NegotiationError::BadKey("my-tub-id"))?
            .clone();
        let last_connection = keys
            .get("last-connection")
            .map(|value| connection(value, "last-connection"))
            .transpose()?;
        Ok(Hello {
            tub_id,
            incarnation: keys.get("my-incarnation").cloned(),
            last_connection,
            banana_range,
            vocab_range,
        })
    }
}

/// The master's Decision block (section 2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The master's incarnation and its connection counter for this peer.
    pub current_connection: (String, u64),
    /// The vocab table both sides start with.
    pub vocab_index: u32,
}

impl Decision {
    /// The block's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut keys = BTreeMap::new();
        keys.insert("banana-decision-version", BANANA_VERSION.to_string());
        let (incarnation, seqnum) = &self.current_connection;
        keys.insert("current-connection", format!("{incarnation} {seqnum}"));
        keys.insert(
            "initial-vocab-table-index",
            format!("{} {}", self.vocab_index, vocab_hash(self.vocab_index)),
        );
        encode_block(&keys)
    }

    /// Parses the master's Decision; an `error` key is its refusal.
    pub fn parse(block: &[u8]) -> Result<Decision, NegotiationError> {
        let keys = parse_block(block)?;
        if let Some(error) = keys.get("error") {
            return Err(NegotiationError::PeerError(error.chars().take(200).collect()));
        }
        if keys.get("banana-decision-version").map(String::as_str) != Some("3") {
            return Err(NegotiationError::BadKey("banana-decision-version"));
        }
        let current_connection = connection(
            keys.get("current-connection")
                .ok_or(NegotiationError::BadKey("current-connection"))?,
            "current-connection",
        )?;
        let vocab_index = match keys.get("initial-vocab-table-index") {
            None => 0,
            Some(value) => {
                let mut parts = value.split_whitespace();
                let index: u32 = parts
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or(NegotiationError::BadKey("initial-vocab-table-index"))?;
                if index > VOCAB_RANGE.1 {
                    return Err(NegotiationError::NoCommonVersion("vocab table"));
                }
                if index > 0 && parts.next() != Some(vocab_hash(index).as_str()) {
                    return Err(NegotiationError::VocabHash);
                }
                index
            }
        };
        Ok(Decision {
            current_connection,
            vocab_index,
        })
    }
}

/// The error block a side sends instead of (or where it would send) a Decision.
pub fn error_block(message: &str) -> Vec<u8> {
    let mut keys = BTreeMap::new();
    keys.insert("banana-decision-version", "1".to_string());
    keys.insert("error", message.to_string());
    encode_block(&keys)
}

/// What a master does with a new connection from a tub it already has one with (section 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    /// Take the new connection and drop the existing one.
    ReplaceExisting,
    /// Refuse the new one (`error: Duplicate connection`).
    Reject,
}

/// Section 2.5's table: `existing` is the peer incarnation and seqnum the live connection was
/// set up with, `offer` the new Hello, `my_incarnation` this process's incarnation.
pub fn resolve_duplicate(existing: &(String, u64), offer: &Hello, my_incarnation: &str) -> Duplicate {
    let (Some(incarnation), Some((last_incarnation, last_seqnum))) = (&offer.incarnation, &offer.last_connection)
    else {
        return Duplicate::Reject;
    };
    if *incarnation != existing.0 {
        return Duplicate::ReplaceExisting;
    }
    if last_incarnation == "none" {
        return Duplicate::Reject;
    }
    if last_incarnation != my_incarnation || *last_seqnum == existing.1 {
        return Duplicate::ReplaceExisting;
    }
    Duplicate::Reject
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    // Section 8.2: storage1 dials the introducer and is master.
    const GET: &str = "474554202f69642f7568786d6964377a6d79373761656165336177636f646b69773375697a356c7020485454502f312e310d0a486f73743a203132372e302e302e310d0a557067726164653a20544c532f312e300d0a436f6e6e656374696f6e3a20557067726164650d0a0d0a";
    const SWITCH: &str = "485454502f312e312031303120537769746368696e672050726f746f636f6c730d0a557067726164653a20544c532f312e302c2050422f312e300d0a436f6e6e656374696f6e3a20557067726164650d0a0d0a";
    const CLIENT_HELLO: &str = "62616e616e612d6e65676f74696174696f6e2d72616e67653a203320330d0a696e697469616c2d766f6361622d7461626c652d72616e67653a203020310d0a6c6173742d636f6e6e656374696f6e3a206e6f6e6520300d0a6d792d696e6361726e6174696f6e3a20323832643161356632326534633863390d0a6d792d7475622d69643a207a7236766c6374636f70636669636876786c71687a6272746663637337786b740d0a0d0a";
    const SERVER_HELLO: &str = "62616e616e612d6e65676f74696174696f6e2d72616e67653a203320330d0a696e697469616c2d766f6361622d7461626c652d72616e67653a203020310d0a6d792d696e6361726e6174696f6e3a20656666313036326664343832326534620d0a6d792d7475622d69643a207568786d6964377a6d79373761656165336177636f646b69773375697a356c700d0a0d0a";
    const DECISION: &str = "62616e616e612d6465636973696f6e2d76657273696f6e3a20330d0a63757272656e742d636f6e6e656374696f6e3a203238326431613566323265346338633920310d0a696e697469616c2d766f6361622d7461626c652d696e6465783a203120626233330d0a0d0a";
    // Section 8.3: storage2 reconnects, remembering the introducer's previous Decision.
    const RECONNECT_HELLO: &str = "62616e616e612d6e65676f74696174696f6e2d72616e67653a203320330d0a696e697469616c2d766f6361622d7461626c652d72616e67653a203020310d0a6c6173742d636f6e6e656374696f6e3a206566663130363266643438323265346220310d0a6d792d696e6361726e6174696f6e3a20653238666265333831386436626332330d0a6d792d7475622d69643a20707135786474793372337170366e6b656e747672786e786767356d6e6c3272690d0a0d0a";
    const INTRODUCER: &str = "uhxmid7zmy77aeae3awcodkiw3uiz5lp";
    const STORAGE1: &str = "zr6vlctcopcfichvxlqhzbrtfccs7xkt";

    #[test]
    fn the_captured_negotiation_is_reproduced_byte_for_byte() {
        assert_eq!(request(INTRODUCER, "127.0.0.1"), hex(GET));
        assert_eq!(parse_request(&hex(GET)).unwrap(), INTRODUCER);
        assert_eq!(SWITCHING_PROTOCOLS, hex(SWITCH));
        parse_response(&hex(SWITCH)).unwrap();
        let client = Hello::parse(&hex(CLIENT_HELLO)).unwrap();
        assert_eq!(client.tub_id, STORAGE1);
        assert_eq!(client.last_connection, Some(("none".into(), 0)));
        let ours = Hello::ours(STORAGE1, "282d1a5f22e4c8c9", Some(("none".into(), 0)));
        assert_eq!(ours, client);
        assert_eq!(ours.encode(), hex(CLIENT_HELLO));
        let server = Hello::parse(&hex(SERVER_HELLO)).unwrap();
        assert_eq!(
            Hello::ours(INTRODUCER, "eff1062fd4822e4b", None).encode(),
            hex(SERVER_HELLO)
        );
        assert!(is_master(STORAGE1, &server.tub_id) && !is_master(INTRODUCER, STORAGE1));
        assert_eq!(common_version(client.vocab_range, server.vocab_range), Some(1));
        let decision = Decision {
            current_connection: ("282d1a5f22e4c8c9".into(), 1),
            vocab_index: 1,
        };
        assert_eq!(decision.encode(), hex(DECISION));
        assert_eq!(Decision::parse(&hex(DECISION)).unwrap(), decision);
        let reconnect = Hello::parse(&hex(RECONNECT_HELLO)).unwrap();
        assert_eq!(reconnect.last_connection, Some(("eff1062fd4822e4b".into(), 1)));
        assert_eq!(vocab_hash(0), "da39");
    }

    #[test]
    fn blocks_are_found_bounded_and_refusals_are_read() {
        let mut buffer = hex(DECISION);
        buffer.extend_from_slice(&[0x00, 0x88, 0x0b, 0x87]);
        assert_eq!(block_end(&buffer).unwrap(), Some(hex(DECISION).len()));
        assert_eq!(block_end(b"GET /id/x HTTP/1.1\r\n").unwrap(), None);
        assert_eq!(block_end(&vec![b'a'; MAX_BLOCK + 1]), Err(NegotiationError::TooLong));
        let refusal = b"HTTP/1.1 500 Internal Server Error: unknown TubID aaaa\r\n\r\n";
        assert!(
            matches!(parse_response(refusal), Err(NegotiationError::Refused(why)) if why.contains("unknown TubID"))
        );
        assert_eq!(
            Decision::parse(b"banana-decision-version: 1\r\nerror: Duplicate connection\r\n\r\n"),
            Err(NegotiationError::PeerError("Duplicate connection".into()))
        );
        assert_eq!(
            error_block("Duplicate connection"),
            b"banana-decision-version: 1\r\nerror: Duplicate connection\r\n\r\n"
        );
        assert_eq!(
            parse_request(b"GET /id/ HTTP/1.1\r\n\r\n"),
            Err(NegotiationError::NoTubId)
        );
        assert_eq!(
            parse_request(b"GET /id/x HTTP/1.1 extra\r\n\r\n"),
            Err(NegotiationError::BadRequest)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Err(NegotiationError::NotFoolscap)
        );
        assert_eq!(Hello::parse(b"no colon\r\n\r\n"), Err(NegotiationError::BadLine));
        assert_eq!(
            Hello::parse(b"my-tub-id: x\r\n\r\n"),
            Err(NegotiationError::BadKey("banana-negotiation-range"))
        );
        assert_eq!(common_version((3, 3), (4, 5)), None);
        let wrong_hash =
            b"banana-decision-version: 3\r\ncurrent-connection: a 1\r\ninitial-vocab-table-index: 1 ffff\r\n\r\n";
        assert_eq!(Decision::parse(wrong_hash), Err(NegotiationError::VocabHash));
        assert_eq!(is_foolscap_start(b"GET /i"), None);
        assert_eq!(is_foolscap_start(b"POST"), Some(false));
        assert_eq!(is_foolscap_start(b"GET /id/abc"), Some(true));
    }

    #[test]
    fn duplicate_connections_follow_foolscaps_table() {
        let existing = ("peer1".to_string(), 4);
        let offer = |incarnation: &str, last: (&str, u64)| Hello {
            incarnation: Some(incarnation.into()),
            last_connection: Some((last.0.into(), last.1)),
            ..Hello::ours("t", "x", None)
        };
        assert_eq!(
            resolve_duplicate(&existing, &offer("peer2", ("none", 0)), "me"),
            Duplicate::ReplaceExisting
        );
        assert_eq!(
            resolve_duplicate(&existing, &offer("peer1", ("none", 0)), "me"),
            Duplicate::Reject
        );
        assert_eq!(
            resolve_duplicate(&existing, &offer("peer1", ("old-me", 9)), "me"),
            Duplicate::ReplaceExisting
        );
        assert_eq!(
            resolve_duplicate(&existing, &offer("peer1", ("me", 4)), "me"),
            Duplicate::ReplaceExisting
        );
        assert_eq!(
            resolve_duplicate(&existing, &offer("peer1", ("me", 3)), "me"),
            Duplicate::Reject
        );
        assert_eq!(
            resolve_duplicate(&existing, &Hello::ours("t", "x", None), "me"),
            Duplicate::Reject
        );
    }
}
