//! Signed announcements (`ann_t`, section 5.2): a tuple of the JSON message, its ed25519
//! signature and the signer's key, both `v0-<base32>`. Verified over the exact bytes before the
//! JSON is read. Pure.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value as Json};

use crate::foolscap::banana::Value;
use crate::grid::base32;

/// Why an announcement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a tuple of three byte strings.
    #[error("an announcement is a tuple of three byte strings")]
    Shape,
    /// The signature or key lacks `v0-` or is not canonical base32 of the right length.
    #[error("malformed signature or key")]
    Encoding,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The signed message is not a JSON object.
    #[error("the announcement is not a JSON object")]
    NotJson,
}

/// One signed announcement, as it travels. `Debug` leaves out the message (its fURLs hold
/// swissnums).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedAnnouncement {
    /// The UTF-8 JSON text that was signed.
    pub msg: Vec<u8>,
    /// `v0-<base32 64-byte signature>`.
    pub sig_vs: String,
    /// `v0-<base32 32-byte public key>`: the announcer's server ID.
    pub key_vs: String,
}

impl std::fmt::Debug for SignedAnnouncement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedAnnouncement({}, {} bytes)", self.key_vs, self.msg.len())
    }
}

impl SignedAnnouncement {
    /// Signs the JSON object `ann` with the ed25519 key whose seed is `seed`.
    pub fn sign(ann: &Map<String, Json>, seed: &[u8; 32]) -> SignedAnnouncement {
        let key = SigningKey::from_bytes(seed);
        // Receivers verify these exact bytes, then parse them: any JSON layout will do.
        let msg = serde_json::to_vec(ann).unwrap_or_default();
        let signature = key.sign(&msg);
        SignedAnnouncement {
            msg,
            sig_vs: format!("v0-{}", base32::encode(&signature.to_bytes())),
            key_vs: format!("v0-{}", base32::encode(key.verifying_key().as_bytes())),
        }
    }

    /// The Banana tuple.
    pub fn to_value(&self) -> Value {
        Value::Tuple(vec![
            Value::Bytes(self.msg.clone()),
            Value::bytes(&self.sig_vs),
            Value::bytes(&self.key_vs),
        ])
    }

    /// Reads a Banana tuple of three byte strings.
    pub fn from_value(value: &Value) -> Result<SignedAnnouncement, SignatureError> {
        let Value::Tuple(items) = value else {
            return Err(SignatureError::Shape);
        };
        let [Value::Bytes(msg), Value::Bytes(sig), Value::Bytes(key)] = items.as_slice() else {
            return Err(SignatureError::Shape);
        };
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SignatureError::Encoding);
        Ok(SignedAnnouncement {
            msg: msg.clone(),
            sig_vs: text(sig)?,
            key_vs: text(key)?,
        })
    }

    /// Checks the signature, then reads the message as a JSON object.
    pub fn verify(&self) -> Result<Map<String, Json>, SignatureError> {
        let decode = |vs: &str| vs.strip_prefix("v0-").and_then(base32::decode);
        let key: [u8; 32] = decode(&self.key_vs)
            .and_then(|k| k.try_into().ok())
            .ok_or(SignatureError::Encoding)?;
        let signature: [u8; 64] = decode(&self.sig_vs)
            .and_then(|s| s.try_into().ok())
            .ok_or(SignatureError::Encoding)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| SignatureError::BadSignature)?;
        key.verify(&self.msg, &Signature::from_bytes(&signature))
            .map_err(|_| SignatureError::BadSignature)?;
        match serde_json::from_slice(&self.msg) {
            Ok(Json::Object(ann)) => Ok(ann),
            _ => Err(SignatureError::NotJson),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// storage1's real announcement (section 8.7).
    pub(crate) const MSG: &str = r#"{"version": 0, "nickname": "storage1", "app-versions": [], "my-version": "tahoe-lafs/1.20.0", "oldest-supported": "1.0.0", "service-name": "storage", "permutation-seed-base32": "nbxwsmtiob2dim3jmvytm2zxnn5hsntmgjsgm6lggvrhcnlwgz5hozlcnzvgo2ldofxdkntsmvzw43tcgvqq", "anonymous-storage-NURLs": ["pb://1mdbjI66ed_DyfrHULcfUddS6iO3-aCDKlrbFXf-6hI@127.0.0.1:46191/utouuwbv7azazhkb33vcimy2ubgmqeue#v=1"], "anonymous-storage-FURL": "pb://zr6vlctcopcfichvxlqhzbrtfccs7xkt@tcp:127.0.0.1:46191/utouuwbv7azazhkb33vcimy2ubgmqeue", "seqnum": 3, "nonce": "ztadon45c6gyr7iivk2h637u2igggort2hpxjcnwedysshd76pxa"}"#;
    pub(crate) const SIG: &str =
        "v0-oeyxqfwqrirmom7tpo4vusrcax5mktukxbx4xwsv4byhi4smtj5paz7v7cfajbaoqpypzafynp2aa7x4lf2nmj5cpyntf4c2jffqqaa";
    pub(crate) const KEY: &str = "v0-hoi2hpt43ieq6k7kzy6l2dfyf5bq5v6zwebnjgicqn56resnnb5a";

    pub(crate) fn real() -> SignedAnnouncement {
        SignedAnnouncement {
            msg: MSG.as_bytes().to_vec(),
            sig_vs: SIG.into(),
            key_vs: KEY.into(),
        }
    }

    #[test]
    fn a_real_announcement_verifies_and_any_flipped_bit_fails() {
        assert_eq!(MSG.len(), 596);
        let ann = real().verify().unwrap();
        assert_eq!(ann["nickname"], "storage1");
        assert_eq!(ann["seqnum"], 3);
        for at in [0, 100, 595] {
            let mut bad = real();
            bad.msg[at] ^= 1;
            assert_eq!(bad.verify(), Err(SignatureError::BadSignature), "bit at {at}");
        }
        let mut wrong_key = real();
        wrong_key.key_vs = SignedAnnouncement::sign(&Map::new(), &[7; 32]).key_vs;
        assert_eq!(wrong_key.verify(), Err(SignatureError::BadSignature));
        let mut no_prefix = real();
        no_prefix.sig_vs = SIG.trim_start_matches("v0-").into();
        assert_eq!(no_prefix.verify(), Err(SignatureError::Encoding));
        // Non-canonical base32 (dirty trailing bits) is refused, as Tahoe refuses it.
        let mut dirty = real();
        dirty.key_vs = format!("{}b", &KEY[..KEY.len() - 1]);
        assert_eq!(dirty.verify(), Err(SignatureError::Encoding));
        assert_eq!(SignedAnnouncement::from_value(&real().to_value()).unwrap(), real());
        assert_eq!(
            SignedAnnouncement::from_value(&Value::List(vec![])),
            Err(SignatureError::Shape)
        );
    }

    #[test]
    fn signing_reproduces_tahoes_signature_for_the_same_bytes() {
        // storage1's node.privkey seed signs the real bytes into the real signature.
        let seed: [u8; 32] = data_encoding::HEXLOWER
            .decode(b"fae628407ca18f402ff1df0665243d9252a53cac6acadf48de1a389172e6b837")
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let signature = key.sign(MSG.as_bytes());
        assert_eq!(format!("v0-{}", base32::encode(&signature.to_bytes())), SIG);
        let ours = SignedAnnouncement::sign(&real().verify().unwrap(), &seed);
        assert_eq!(ours.key_vs, KEY);
        assert_eq!(ours.verify().unwrap(), real().verify().unwrap());
    }
}
