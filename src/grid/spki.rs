//! The TLS pin in Tahoe's NURLs: unpadded URL-safe base64 of SHA-256 over a certificate's DER
//! SubjectPublicKeyInfo. Clients accept a storage server's certificate when its pin matches,
//! whatever its names, issuer or dates (as Tahoe does).

use sha2::{Digest, Sha256};

/// A certificate that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("bad TLS certificate: {0}")]
pub struct SpkiError(String);

/// The DER SubjectPublicKeyInfo of a DER certificate.
pub fn certificate_spki(certificate_der: &[u8]) -> Result<Vec<u8>, SpkiError> {
    // x509-parser, not webpki: Tahoe's own test certificates are X.509 v1, which webpki refuses.
    let (_, certificate) =
        x509_parser::parse_x509_certificate(certificate_der).map_err(|e| SpkiError(e.to_string()))?;
    Ok(certificate.tbs_certificate.subject_pki.raw.to_vec())
}

/// The pin of a DER SubjectPublicKeyInfo.
pub fn spki_hash(spki_der: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&Sha256::digest(spki_der))
}

/// The pin of a DER certificate.
pub fn certificate_spki_hash(certificate_der: &[u8]) -> Result<String, SpkiError> {
    Ok(spki_hash(&certificate_spki(certificate_der)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_pin() {
        assert!(certificate_spki_hash(b"not a certificate").is_err());
        assert_eq!(spki_hash(b"").len(), 43);
    }
}
