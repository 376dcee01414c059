//! Storage announcements in Tahoe's shape: reading a static `servers.yaml` (the `ann` dicts a
//! Tahoe client caches from its introducer) and writing the one a storage node publishes.
//! Only servers with HTTP storage NURLs are usable here (there is no Foolscap client).

use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::grid::base32;
use crate::grid::nurl::Nurl;
use crate::grid::storage::ServerId;

/// What a client needs from one storage announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAnnouncement {
    /// The server id (`v0-<base32 ed25519 key>`), the key of its `servers.yaml` entry.
    pub server_id: String,
    /// Its nickname (the server id's start when it gives none).
    pub nickname: String,
    /// The Foolscap tubid from `anonymous-storage-FURL`: lease and write-enabler secrets use it.
    pub tubid: [u8; 20],
    /// Where it serves the HTTP storage protocol.
    pub nurls: Vec<Nurl>,
    /// Its place on the permuted ring.
    pub permutation_seed: Vec<u8>,
}

impl StorageAnnouncement {
    /// The identity the grid places shares and derives secrets by.
    pub fn server_id(&self) -> ServerId {
        ServerId {
            nickname: self.nickname.clone(),
            node_id: self.tubid,
            permutation_seed: self.permutation_seed.clone(),
        }
    }
}

/// Why an announcement or a `servers.yaml` is unusable. Never quotes a fURL or NURL (they hold swissnums).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    /// Not YAML, or not `storage: {<id>: {ann: {...}}}`.
    #[error("{0}")]
    Shape(String),
    /// One server's announcement lacks something.
    #[error("server {server}: {why}")]
    Server {
        /// which entry
        server: String,
        /// what is wrong
        why: String,
    },
}

fn text<'a>(ann: &'a Mapping, key: &str) -> Option<&'a str> {
    ann.get(key).and_then(Value::as_str)
}

/// The tubid of a Foolscap fURL, `pb://<tubid>@...`, read case-blind as Tahoe reads it (the
/// lease and write-enabler secrets hang on these bytes, so a differently cased fURL must give
/// the same ones).
pub fn furl_tubid(furl: &str) -> Option<[u8; 20]> {
    let tubid = furl.strip_prefix("pb://")?.split_once('@')?.0;
    base32::decode_array(&tubid.to_ascii_lowercase())
}

/// Reads one `ann` dict of server `server_id`.
pub fn parse_announcement(server_id: &str, ann: &Value) -> Result<StorageAnnouncement, AnnouncementError> {
    let fail = |why: &str| AnnouncementError::Server {
        server: server_id.to_string(),
        why: why.to_string(),
    };
    let ann = ann.as_mapping().ok_or_else(|| fail("ann is not a mapping"))?;
    if text(ann, "service-name").is_some_and(|s| s != "storage") {
        return Err(fail("not a storage announcement"));
    }
    let furl = text(ann, "anonymous-storage-FURL").ok_or_else(|| fail("no anonymous-storage-FURL"))?;
    let tubid = furl_tubid(furl).ok_or_else(|| fail("anonymous-storage-FURL has no base32 tubid"))?;
    let nurls = ann
        .get("anonymous-storage-NURLs")
        .and_then(Value::as_sequence)
        .map(|list| list.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut parsed = Vec::new();
    for nurl in nurls {
        match nurl.parse::<Nurl>() {
            Ok(nurl) if !nurl.tor => parsed.push(nurl),
            Ok(_) => {}
            Err(e) => return Err(fail(&format!("bad NURL: {e}"))),
        }
    }
    if parsed.is_empty() {
        return Err(fail(
            "no TCP anonymous-storage-NURLs (Foolscap-only servers are not supported)",
        ));
    }
    let permutation_seed = match text(ann, "permutation-seed-base32") {
        Some(seed) => base32::decode(seed).ok_or_else(|| fail("permutation-seed-base32 is not base32"))?,
        None => match server_id.strip_prefix("v0-").and_then(base32::decode) {
            Some(key) => key,
            None => Sha256::digest(server_id.as_bytes()).to_vec(),
        },
    };
    let nickname = match text(ann, "nickname") {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => server_id.chars().take(11).collect(),
    };
    Ok(StorageAnnouncement {
        server_id: server_id.to_string(),
        nickname,
        tubid,
        nurls: parsed,
        permutation_seed,
    })
}

/// The servers of a `servers.yaml`: those this client can use, and why the others were left out.
#[derive(Debug, Clone, Default)]
pub struct ServersYaml {
    /// Usable servers, in the file's order.
    pub usable: Vec<StorageAnnouncement>,
    /// Entries skipped: Foolscap-only or Tor-only servers, and announcements that lack
    /// something or hold malformed values.
    pub skipped: Vec<AnnouncementError>,
}

/// Reads a Tahoe `servers.yaml`: `storage: {<server id>: {ann: {...}}}`. A server entry this
/// client cannot use is skipped, and the reason kept, as Tahoe's client skips a static server
/// it fails to make; only a file that is not this shape at all is an error.
pub fn parse_servers_yaml(text: &str) -> Result<ServersYaml, AnnouncementError> {
    let mut servers = ServersYaml::default();
    for entry in parse_servers_yaml_entries(text)? {
        match entry {
            Ok(announcement) => servers.usable.push(announcement),
            Err(e) => servers.skipped.push(e),
        }
    }
    Ok(servers)
}

fn parse_servers_yaml_entries(
    text: &str,
) -> Result<Vec<Result<StorageAnnouncement, AnnouncementError>>, AnnouncementError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| AnnouncementError::Shape(format!("not YAML: {e}")))?;
    let storage = doc
        .get("storage")
        .and_then(Value::as_mapping)
        .ok_or_else(|| AnnouncementError::Shape("no `storage:` mapping".into()))?;
    storage
        .iter()
        .map(|(id, entry)| {
            let Some(id) = id.as_str() else {
                return Err(AnnouncementError::Shape("a server id is not text".into()));
            };
            Ok(match entry.get("ann") {
                Some(ann) => parse_announcement(id, ann),
                None => Err(AnnouncementError::Server {
                    server: id.to_string(),
                    why: "no `ann`".into(),
                }),
            })
        })
        .collect()
}

/// What a storage node announces about itself. `Debug` leaves out the fURL and NURL (their swissnums are secrets).
#[derive(Clone)]
pub struct OwnAnnouncement<'a> {
    /// `v0-<base32 ed25519 public key>`.
    pub server_id: &'a str,
    /// Nickname.
    pub nickname: &'a str,
    /// The Foolscap-style fURL (its tubid seeds clients' secrets).
    pub furl: &'a str,
    /// The HTTP storage NURL.
    pub nurl: &'a str,
    /// `private/permutation-seed`'s text.
    pub permutation_seed_base32: &'a str,
    /// Increases with every new announcement.
    pub seqnum: u64,
    /// Random, base32.
    pub nonce: &'a str,
}

impl std::fmt::Debug for OwnAnnouncement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnAnnouncement")
            .field("server_id", &self.server_id)
            .field("nickname", &self.nickname)
            .field("seqnum", &self.seqnum)
            .finish_non_exhaustive()
    }
}

/// A `servers.yaml` document holding this node's announcement, in the keys Tahoe 1.20 publishes.
pub fn servers_yaml_entry(own: &OwnAnnouncement<'_>) -> String {
    let mut ann = Mapping::new();
    let mut put = |k: &str, v: Value| {
        ann.insert(Value::from(k), v);
    };
    put("anonymous-storage-FURL", Value::from(own.furl));
    put("anonymous-storage-NURLs", Value::Sequence(vec![Value::from(own.nurl)]));
    put("app-versions", Value::Sequence(vec![]));
    put(
        "my-version",
        Value::from(format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION"))),
    );
    put("nickname", Value::from(own.nickname));
    put("nonce", Value::from(own.nonce));
    put("oldest-supported", Value::from("1.0.0"));
    put("permutation-seed-base32", Value::from(own.permutation_seed_base32));
    put("seqnum", Value::from(own.seqnum));
    put("service-name", Value::from("storage"));
    put("version", Value::from(0));
    let mut entry = Mapping::new();
    entry.insert(Value::from("ann"), Value::Mapping(ann));
    let mut servers = Mapping::new();
    servers.insert(Value::from(own.server_id), Value::Mapping(entry));
    let mut doc = Mapping::new();
    doc.insert(Value::from("storage"), Value::Mapping(servers));
    serde_yaml::to_string(&Value::Mapping(doc)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Tahoe 1.20 storage node's announcement, from a client's introducer cache.
    const REAL: &str = r#"
storage:
  v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua:
    ann:
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
"#;

    #[test]
    fn reads_a_real_tahoe_announcement() {
        let servers = parse_servers_yaml(REAL).unwrap().usable;
        assert_eq!(servers.len(), 1);
        let s = &servers[0];
        assert_eq!(s.nickname, "s1");
        assert_eq!(base32::encode(&s.tubid), "qbam4kytkiby34f4n3m5shydxznaivnf");
        // An upper-cased fURL names the same tub, so the same secrets.
        let upper = REAL.replace(
            "pb://qbam4kytkiby34f4n3m5shydxznaivnf@",
            "pb://QBAM4KYTKIBY34F4N3M5SHYDXZNAIVNF@",
        );
        assert_eq!(parse_servers_yaml(&upper).unwrap().usable[0].tubid, s.tubid);
        assert_eq!(s.nurls[0].port, 50153);
        assert_eq!(s.nurls[0].spki_hash, "qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A");
        // The seed is the ASCII text of the server's key.
        assert_eq!(
            s.permutation_seed,
            b"uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua"
        );
    }

    #[test]
    fn our_announcement_reads_back_and_bad_ones_say_why() {
        let nurl = "pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:7/abc#v=1";
        let furl = "pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:7/abc";
        let own = OwnAnnouncement {
            server_id: "v0-aaaa",
            nickname: "n1",
            furl,
            nurl,
            permutation_seed_base32: "mfrgg",
            seqnum: 9,
            nonce: "x",
        };
        let yaml = servers_yaml_entry(&own);
        let shown = format!("{own:?}");
        assert!(
            shown.contains("v0-aaaa") && !shown.contains("/abc"),
            "a swissnum leaked: {shown}"
        );
        let parsed = parse_servers_yaml(&yaml).unwrap().usable;
        assert_eq!(parsed[0].server_id, "v0-aaaa");
        assert_eq!(parsed[0].permutation_seed, b"abc");
        let no_nurl = REAL.replace("anonymous-storage-NURLs", "other-key");
        let skipped = parse_servers_yaml(&no_nurl).unwrap();
        assert!(skipped.usable.is_empty(), "a Foolscap-only server is skipped");
        assert_eq!(skipped.skipped.len(), 1);
        let storage = serde_yaml::from_str::<Value>(&no_nurl).unwrap();
        let (id, entry) = storage["storage"].as_mapping().unwrap().iter().next().unwrap();
        let e = parse_announcement(id.as_str().unwrap(), &entry["ann"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no TCP anonymous-storage-NURLs"), "{e}");
        assert!(!e.contains("mfqqv6agaglcfn4tlbjpwd5cn43givi3"), "swissnum leaked: {e}");
        // A broken entry is skipped with its reason; the good ones beside it are kept.
        let no_furl = REAL.replace("anonymous-storage-FURL", "other-key");
        let both = format!("{}{}", no_furl, yaml.replace("storage:\n", ""));
        let parsed = parse_servers_yaml(&both).unwrap();
        assert_eq!(parsed.usable.len(), 1, "{both}");
        assert_eq!(parsed.usable[0].server_id, "v0-aaaa");
        let why = parsed.skipped[0].to_string();
        assert!(why.contains("v0-uxtjaqstt") && why.contains("FURL"), "{why}");
        let bad_nurl = REAL.replace("pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@", "pb://short@");
        let why = parse_servers_yaml(&bad_nurl).unwrap().skipped[0].to_string();
        assert!(
            why.contains("bad NURL") && !why.contains("mfqqv6agaglcfn4tlbjpwd5cn43givi3"),
            "{why}"
        );
        assert!(parse_servers_yaml("storage: 3").is_err());
        assert!(parse_servers_yaml(": :").is_err());
    }
}
