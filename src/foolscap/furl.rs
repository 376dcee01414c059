//! fURLs, `pb://<tubid>@<hints>/<swissnum>`: which tub to reach, where, and the secret name of
//! the object there (section 1.1).

use std::fmt;
use std::str::FromStr;

/// One connection hint of a fURL that this client can dial (plain TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A parsed Foolscap fURL. `Debug` and errors never show the swissnum.
#[derive(Clone, PartialEq, Eq)]
pub struct Furl {
    /// The 32-character lowercase base32 tub ID.
    pub tub_id: String,
    /// The TCP hints, in the fURL's order (Tor, I2P and unknown hint types are left out).
    pub hints: Vec<TcpHint>,
    /// The number of hints the fURL had, including those left out.
    pub all_hints: usize,
    /// The object's secret name.
    pub swissnum: String,
}

/// Why text is not a usable fURL. Never repeats the text (it holds a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FurlError {
    /// Not `pb://<tubid>@<hints>/<name>`.
    #[error("a fURL has the form pb://<tubid>@<hints>/<name>")]
    Shape,
    /// The tub ID is not 32 characters of base32.
    #[error("a fURL's tub ID must be 32 characters of base32")]
    TubId,
    /// A hint is empty or a TCP hint has a bad port.
    #[error("a fURL hint is empty or has a bad port")]
    Hint,
}

impl FromStr for Furl {
    type Err = FurlError;

    fn from_str(text: &str) -> Result<Furl, FurlError> {
        // Foolscap searches `pb://([^@]+)@([^/]*)/(.+)$`.
        let rest = text.trim().strip_prefix("pb://").ok_or(FurlError::Shape)?;
        let (tub_field, rest) = rest.split_once('@').ok_or(FurlError::Shape)?;
        let (hints_field, swissnum) = rest.split_once('/').ok_or(FurlError::Shape)?;
        if tub_field.is_empty() || swissnum.is_empty() {
            return Err(FurlError::Shape);
        }
        let tub_id: String = tub_field.chars().take(32).collect::<String>().to_ascii_lowercase();
        let base32 = tub_id.len() == 32 && tub_id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
        if !base32 {
            return Err(FurlError::TubId);
        }
        let mut hints = Vec::new();
        let mut all_hints = 0;
        if !hints_field.is_empty() {
            for hint in hints_field.split(',') {
                all_hints += 1;
                if let Some(tcp) = parse_hint(hint)? {
                    hints.push(tcp);
                }
            }
        }
        Ok(Furl {
            tub_id,
            hints,
            all_hints,
            swissnum: swissnum.to_string(),
        })
    }
}

/// A TCP hint (`tcp:HOST:PORT` or the legacy `HOST:PORT`), `None` for other hint types.
fn parse_hint(hint: &str) -> Result<Option<TcpHint>, FurlError> {
    if hint.is_empty() {
        return Err(FurlError::Hint);
    }
    let address = match hint.strip_prefix("tcp:") {
        Some(address) => address,
        // The legacy implicit-TCP form, `HOST:PORT` (a DNS name or IPv4 address).
        None => match hint.split_once(':') {
            Some((_, port)) if looks_like_port(port) => hint,
            _ => return Ok(None),
        },
    };
    let (host, port) = address.rsplit_once(':').ok_or(FurlError::Hint)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or(FurlError::Hint)?,
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| FurlError::Hint)?;
    if host.is_empty() || port == 0 {
        return Err(FurlError::Hint);
    }
    Ok(Some(TcpHint {
        host: host.to_string(),
        port,
    }))
}

fn looks_like_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Furl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hints: Vec<String> = self
            .hints
            .iter()
            .map(|h| {
                if h.host.contains(':') {
                    format!("tcp:[{}]:{}", h.host, h.port)
                } else {
                    format!("tcp:{}:{}", h.host, h.port)
                }
            })
            .collect();
        write!(f, "pb://{}@{}/{}", self.tub_id, hints.join(","), self.swissnum)
    }
}

impl fmt::Debug for Furl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Furl({} {:?}, swissnum hidden)", self.tub_id, self.hints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@tcp:127.0.0.1:46190/totd6bskfvtnfrth543huiain67qedfo";

    #[test]
    fn a_real_introducer_furl_parses_and_prints_back() {
        let furl: Furl = REAL.parse().unwrap();
        assert_eq!(furl.tub_id, "uhxmid7zmy77aeae3awcodkiw3uiz5lp");
        assert_eq!(
            furl.hints,
            [TcpHint {
                host: "127.0.0.1".into(),
                port: 46190
            }]
        );
        assert_eq!(furl.swissnum, "totd6bskfvtnfrth543huiain67qedfo");
        assert_eq!(furl.to_string(), REAL);
        assert!(!format!("{furl:?}").contains("totd6"));
    }

    #[test]
    fn hint_forms_and_bad_furls() {
        let furl: Furl =
            "pb://UHXMID7ZMY77AEAE3AWCODKIW3UIZ5LPextra@tor:abc.onion:80,example.org:99,tcp:[::1]:7,i2p:x/s"
                .parse()
                .unwrap();
        assert_eq!(furl.tub_id, "uhxmid7zmy77aeae3awcodkiw3uiz5lp");
        assert_eq!(furl.all_hints, 4);
        let hosts: Vec<_> = furl.hints.iter().map(|h| (h.host.as_str(), h.port)).collect();
        assert_eq!(hosts, [("example.org", 99), ("::1", 7)]);
        let no_hints: Furl = "pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@/s".parse().unwrap();
        assert!(no_hints.hints.is_empty() && no_hints.all_hints == 0);
        for (text, err) in [
            ("http://x@y/z", FurlError::Shape),
            ("pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@tcp:h:1/", FurlError::Shape),
            ("pb://short@tcp:h:1/secret", FurlError::TubId),
            ("pb://uhxmid7zmy77aeae3awcodkiw3uiz5l1@tcp:h:1/secret", FurlError::TubId),
            (
                "pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@tcp:h:1,,tcp:h:2/secret",
                FurlError::Hint,
            ),
            (
                "pb://uhxmid7zmy77aeae3awcodkiw3uiz5lp@tcp:h:99999/secret",
                FurlError::Hint,
            ),
        ] {
            assert_eq!(text.parse::<Furl>().unwrap_err(), err, "{text}");
        }
    }
}
