//! TLS for the HTTP storage protocol: the server's self-signed certificate, and a client
//! verifier that trusts a certificate exactly when its SPKI hash matches the NURL's pin
//! (names, issuer and dates are ignored, as Tahoe does; the handshake signature is still checked).

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use subtle::ConstantTimeEq;

use crate::grid::spki;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key file is unusable.
    #[error("bad TLS identity: {0}")]
    Identity(String),
    /// rustls refused the configuration.
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A fresh self-signed certificate and its key, as one PEM text (certificate first, then the
/// PKCS#8 key, like Tahoe's `node.pem`).
pub fn generate_identity_pem() -> Result<String, TlsError> {
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Identity(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| TlsError::Identity(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "newpb_thingy");
    // Clients ignore the dates; a long validity keeps ordinary TLS tools quiet.
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let certificate = params
        .self_signed(&key)
        .map_err(|e| TlsError::Identity(e.to_string()))?;
    Ok(certificate.pem() + &key.serialize_pem())
}

/// The certificate and key in a PEM identity.
pub fn parse_identity_pem(pem: &str) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    use rustls_pki_types::pem::PemObject;
    let certificate = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::Identity(format!("no certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::Identity(format!("no private key: {e}")))?;
    Ok((certificate, key))
}

/// The server side: no client certificates (the swissnum authorizes), HTTP/1.1.
pub fn server_config(
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client side for one server: trusts the certificate whose SPKI hash is `pin`.
pub fn client_config(pin: &str) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = PinVerifier {
        pin: pin.to_string(),
        algorithms: provider.signature_verification_algorithms,
    };
    // TLS 1.3 only: its handshake signature is checked against the bare key (below); a TLS 1.2
    // one would go through webpki, which refuses the X.509 v1 certificates of real Tahoe nodes.
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // Tahoe's client sends no SNI; a NURL names an address, not a certificate name.
    config.enable_sni = false;
    Ok(config)
}

#[derive(Debug)]
struct PinVerifier {
    pin: String,
    algorithms: WebPkiSupportedAlgorithms,
}

fn spki_of(certificate: &CertificateDer<'_>) -> Result<Vec<u8>, rustls::Error> {
    spki::certificate_spki(certificate)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = spki::spki_hash(&spki_of(end_entity)?);
        if bool::from(pin.as_bytes().ct_eq(self.pin.as_bytes())) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Verified against the bare public key: webpki refuses the X.509 v1 certificates
        // that real Tahoe nodes (Foolscap) make.
        let spki = spki_of(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed identity valid only between the two years.
    fn identity(from_year: i32, to_year: i32) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(from_year, 1, 1);
        params.not_after = rcgen::date_time_ymd(to_year, 1, 1);
        let certificate = params.self_signed(&key).unwrap();
        parse_identity_pem(&(certificate.pem() + &key.serialize_pem())).unwrap()
    }

    /// Runs a TLS handshake between the two configurations in memory.
    fn handshake(client: rustls::ClientConfig, server: rustls::ServerConfig) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("storage.invalid").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client), name)?;
        let mut server = rustls::ServerConnection::new(Arc::new(server))?;
        for _ in 0..16 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            let mut input = flight.as_slice();
            while !input.is_empty() {
                server.read_tls(&mut input).unwrap();
                server.process_new_packets()?;
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            let mut input = flight.as_slice();
            while !input.is_empty() {
                client.read_tls(&mut input).unwrap();
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake made no progress".into()))
    }

    #[test]
    fn the_pinned_certificate_is_trusted_whatever_its_dates() {
        for (from, to) in [(2000, 9999), (2001, 2002), (2200, 2300)] {
            let (certificate, key) = identity(from, to);
            let pin = spki::certificate_spki_hash(&certificate).unwrap();
            let server = server_config(certificate, key).unwrap();
            handshake(client_config(&pin).unwrap(), server).unwrap_or_else(|e| panic!("{from}-{to}: {e}"));
        }
    }

    #[test]
    fn another_certificate_is_refused() {
        let (certificate, key) = identity(2000, 9999);
        let (other, _) = identity(2000, 9999);
        let wrong_pin = spki::certificate_spki_hash(&other).unwrap();
        let server = server_config(certificate, key).unwrap();
        let refused = handshake(client_config(&wrong_pin).unwrap(), server).unwrap_err();
        assert!(
            matches!(
                refused,
                rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
            ),
            "{refused:?}"
        );
    }
}
