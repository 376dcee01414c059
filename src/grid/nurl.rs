//! NURLs, `pb://<spki-hash>@<host>:<port>/<swissnum>#v=1`: where a storage server listens, the
//! pin of its TLS key and the secret (swissnum) that authorizes requests to it.

use std::fmt;
use std::str::FromStr;

/// A parsed HTTP-storage NURL. `Debug` and errors never show the swissnum.
#[derive(Clone, PartialEq, Eq)]
pub struct Nurl {
    /// Unpadded URL-safe base64 SHA-256 of the server certificate's SubjectPublicKeyInfo.
    pub spki_hash: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The storage secret, sent in every request's `Authorization` header.
    pub swissnum: String,
    /// Reached over Tor (`pb+tor://`).
    pub tor: bool,
}

/// Why text is not an HTTP-storage NURL. Never repeats the text (it holds a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NurlError {
    /// Not `pb://` or `pb+tor://`.
    #[error("a NURL starts with pb:// or pb+tor://")]
    Scheme,
    /// A Foolscap fURL or another version.
    #[error("not an HTTP storage NURL (it must end in #v=1)")]
    Version,
    /// The pin is not 43 characters of URL-safe base64.
    #[error("the TLS pin must be 43 characters of URL-safe base64")]
    Pin,
    /// No `host:port`, or a bad port.
    #[error("a NURL needs host:port")]
    Address,
    /// No swissnum, or more path than one swissnum.
    #[error("a NURL ends in /<swissnum>#v=1")]
    Swissnum,
}

impl FromStr for Nurl {
    type Err = NurlError;

    fn from_str(text: &str) -> Result<Nurl, NurlError> {
        let (tor, rest) = if let Some(rest) = text.strip_prefix("pb://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("pb+tor://") {
            (true, rest)
        } else {
            return Err(NurlError::Scheme);
        };
        let rest = rest.strip_suffix("#v=1").ok_or(NurlError::Version)?;
        let (authority, swissnum) = rest.split_once('/').ok_or(NurlError::Swissnum)?;
        if swissnum.is_empty() || swissnum.contains(['/', '#', '?']) {
            return Err(NurlError::Swissnum);
        }
        let (spki_hash, address) = authority.split_once('@').ok_or(NurlError::Pin)?;
        let pin_ok = spki_hash.len() == 43
            && spki_hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !pin_ok {
            return Err(NurlError::Pin);
        }
        let (host, port) = address.rsplit_once(':').ok_or(NurlError::Address)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or(NurlError::Address)?,
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| NurlError::Address)?;
        if host.is_empty() || port == 0 {
            return Err(NurlError::Address);
        }
        Ok(Nurl {
            spki_hash: spki_hash.to_string(),
            host: host.to_string(),
            port,
            swissnum: swissnum.to_string(),
            tor,
        })
    }
}

impl fmt::Display for Nurl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tor { "pb+tor" } else { "pb" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{scheme}://{}@{host}:{}/{}#v=1",
            self.spki_hash, self.port, self.swissnum
        )
    }
}

impl fmt::Debug for Nurl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Nurl({}@{}:{}, swissnum hidden)",
            self.spki_hash, self.host, self.port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "JIj6ezHkdSBlHhrnezAgIC_mrVQHy4KAFyL-8ZNPGPM";

    #[test]
    fn nurls_round_trip_with_ipv4_ipv6_names_and_tor() {
        for text in [
            format!("pb://{PIN}@127.0.0.1:8098/abcdefghijklmnop#v=1"),
            format!("pb://{PIN}@[::1]:8098/abcdefghijklmnop#v=1"),
            format!("pb://{PIN}@storage.example:443/s#v=1"),
            format!("pb+tor://{PIN}@xyz.onion:1234/s#v=1"),
        ] {
            let nurl: Nurl = text.parse().unwrap();
            assert_eq!(nurl.to_string(), text);
        }
        let nurl: Nurl = format!("pb://{PIN}@[::1]:8098/secret#v=1").parse().unwrap();
        assert_eq!((nurl.host.as_str(), nurl.port, nurl.tor), ("::1", 8098, false));
        assert_eq!(nurl.spki_hash, PIN);
        assert!(!format!("{nurl:?}").contains("secret"));
    }

    #[test]
    fn bad_nurls_are_refused_without_repeating_them() {
        let cases = [
            (format!("http://{PIN}@h:1/secret#v=1"), NurlError::Scheme),
            ("pb://tubid@h:1/secret".to_string(), NurlError::Version),
            (format!("pb://{PIN}@h:1/secret#v=2"), NurlError::Version),
            ("pb://short@h:1/secret#v=1".to_string(), NurlError::Pin),
            (format!("pb://{PIN}@h/secret#v=1"), NurlError::Address),
            (format!("pb://{PIN}@h:0/secret#v=1"), NurlError::Address),
            (format!("pb://{PIN}@h:99999/secret#v=1"), NurlError::Address),
            (format!("pb://{PIN}@h:1/#v=1"), NurlError::Swissnum),
            (format!("pb://{PIN}@h:1/a/secret#v=1"), NurlError::Swissnum),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Nurl>().unwrap_err();
            assert_eq!(err, expected, "{text}");
            assert!(!err.to_string().contains("secret"));
        }
    }
}
