//! RSA-PSS signatures over SDMF and MDMF share headers.

use rsa::pkcs8::DecodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use crate::grid::hashutil::{Hash, tag, tagged_hash};
use crate::grid::mutable::FormatError;
use crate::grid::uri::MutableFormat;

/// Tahoe's RSA-PSS salt length (fixed for pycryptopp compatibility).
const PSS_SALT_LEN: usize = 32;

/// Signs a share header with RSA-PSS (SHA-256, MGF1-SHA-256, salt 32).
pub fn sign(signing_key: &RsaPrivateKey, signed: &[u8], format: MutableFormat) -> Result<Vec<u8>, FormatError> {
    let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(signing_key.clone(), PSS_SALT_LEN);
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    Ok(signer
        .try_sign_with_rng(&mut rng, signed)
        .map_err(|_| FormatError::Signing { format })?
        .to_vec())
}

/// Signatures already checked, by a hash of (key, signed bytes, signature). All N shares of one
/// version carry the same signed header, so a directory read verifies one RSA signature, not N.
static VERIFIED: LazyLock<Mutex<HashSet<Hash>>> = LazyLock::new(|| Mutex::new(HashSet::new()));
/// The memo is dropped when it grows past this many entries (32 bytes each).
const VERIFIED_LIMIT: usize = 100_000;

/// Checks that `verification_key` is the one the cap's fingerprint names and that it signed `signed`
/// (the header of a share of `format`, which errors name).
pub fn verify(
    verification_key: &[u8],
    fingerprint: &Hash,
    signed: &[u8],
    signature: &[u8],
    format: MutableFormat,
) -> Result<(), FormatError> {
    if tagged_hash(tag::MUTABLE_PUBKEY, verification_key) != *fingerprint {
        return Err(FormatError::WrongKey { format });
    }
    let mut memo_key = Sha256::new();
    for part in [verification_key, signed, signature] {
        memo_key.update((part.len() as u64).to_be_bytes());
        memo_key.update(part);
    }
    let memo_key: Hash = memo_key.finalize().into();
    if VERIFIED.lock().is_ok_and(|seen| seen.contains(&memo_key)) {
        return Ok(());
    }
    let public = RsaPublicKey::from_public_key_der(verification_key).map_err(|_| FormatError::WrongKey { format })?;
    let verifier = rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(public, PSS_SALT_LEN);
    let signature = rsa::pss::Signature::try_from(signature).map_err(|_| FormatError::BadSignature { format })?;
    verifier
        .verify(signed, &signature)
        .map_err(|_| FormatError::BadSignature { format })?;
    if let Ok(mut seen) = VERIFIED.lock() {
        if seen.len() >= VERIFIED_LIMIT {
            seen.clear();
        }
        seen.insert(memo_key);
    }
    Ok(())
}
