//! Mutable-file key derivation: writekey, readkey, storage index, fingerprint and write enablers from an RSA key.

use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;

use crate::grid::hashutil::{Hash, tag, tagged_hash, tagged_hash16, tagged_pair_hash};
use crate::grid::uri::{
    MutableAccess, MutableCap, MutableFormat, StorageIndex, mutable_storage_index, readkey_from_writekey,
};

/// Why a signing key could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM/DER RSA private key.
    #[error("not an RSA private key")]
    Malformed,
    /// Tahoe accepts only 2048-bit keys.
    #[error("RSA key is {0} bits; Tahoe mutable files use 2048-bit keys")]
    WrongSize(usize),
}

/// Everything derived from a mutable file's signing key.
#[derive(Clone)]
pub struct MutableKeys {
    /// H(PKCS#8 DER of the private key)[:16]: the write capability's key.
    pub writekey: [u8; 16],
    /// H(writekey)[:16].
    pub readkey: [u8; 16],
    /// H(readkey)[:16].
    pub storage_index: StorageIndex,
    /// H(SubjectPublicKeyInfo DER of the public key).
    pub fingerprint: Hash,
    /// The PKCS#8 DER of the private key, as stored (encrypted) in every share.
    pub private_key_der: Vec<u8>,
    /// The SubjectPublicKeyInfo DER of the public key, as stored in every share.
    pub public_key_der: Vec<u8>,
}

impl std::fmt::Debug for MutableKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MutableKeys(si={})", self.storage_index)
    }
}

impl MutableKeys {
    /// Derives the keys from a signing key.
    pub fn from_signing_key(key: &RsaPrivateKey) -> Result<Self, KeyError> {
        let bits = key.size() * 8;
        if bits != 2048 {
            return Err(KeyError::WrongSize(bits));
        }
        // Tahoe hashes the PKCS#8 encoding (not PKCS#1), whatever form the key came in.
        let private_key_der = key.to_pkcs8_der().map_err(|_| KeyError::Malformed)?.as_bytes().to_vec();
        let public_key_der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| KeyError::Malformed)?
            .as_bytes()
            .to_vec();
        let writekey = tagged_hash16(tag::MUTABLE_WRITEKEY, &private_key_der);
        let readkey = readkey_from_writekey(&writekey);
        Ok(MutableKeys {
            writekey,
            readkey,
            storage_index: mutable_storage_index(&readkey),
            fingerprint: tagged_hash(tag::MUTABLE_PUBKEY, &public_key_der),
            private_key_der,
            public_key_der,
        })
    }

    /// Derives the keys from a PKCS#1 PEM private key (the form Tahoe's test vectors use).
    pub fn from_pkcs1_pem(pem: &str) -> Result<Self, KeyError> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem).map_err(|_| KeyError::Malformed)?;
        Self::from_signing_key(&key)
    }

    /// The private key encrypted under the writekey, as every share stores it.
    pub fn encrypted_private_key(&self) -> Vec<u8> {
        let mut out = self.private_key_der.clone();
        crate::grid::crypto::aes_ctr_at(&self.writekey, 0, &mut out);
        out
    }

    /// The write cap of this file in `format`.
    pub fn write_cap(&self, format: MutableFormat) -> MutableCap {
        MutableCap {
            format,
            access: MutableAccess::Write(self.writekey),
            fingerprint: self.fingerprint,
            extension: String::new(),
        }
    }

    /// The secret a server checks before letting anyone change this file's share.
    ///
    /// `server_node_id` is the server's 20-byte (Foolscap tubid) node id.
    pub fn write_enabler(&self, server_node_id: &[u8]) -> Hash {
        write_enabler(&self.writekey, server_node_id)
    }
}

/// A writekey's write enabler for one server (Tahoe's `ssk_write_enabler_hash`).
pub fn write_enabler(writekey: &[u8], server_node_id: &[u8]) -> Hash {
    let master = tagged_hash(tag::MUTABLE_WRITE_ENABLER_MASTER, writekey);
    tagged_pair_hash(tag::MUTABLE_WRITE_ENABLER, &master, server_node_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::base32;

    #[test]
    fn write_enabler_matches_tahoe_hashutil() {
        // ssk_write_enabler_hash(b"wk", b"\0"*20) from test_hashutil.py.
        assert_eq!(
            base32::encode(&write_enabler(b"wk", &[0u8; 20])),
            "fuu2dvx7g6gqu5x22vfhtyed7p4pd47y5hgxbqzgrlyvxoev62tq"
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert_eq!(
            MutableKeys::from_pkcs1_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
                .unwrap_err(),
            KeyError::Malformed
        );
    }
}
