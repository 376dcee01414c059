//! Tub IDs: lowercase unpadded base32 of SHA-1 over a tub's whole DER certificate (section 1.2).

use sha1::{Digest, Sha1};

use crate::grid::base32;

/// The tub ID a DER certificate stands for.
pub fn tub_id_of_certificate(certificate_der: &[u8]) -> String {
    base32::encode(&Sha1::digest(certificate_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// storage1's `node.pem` certificate from the captured grid (section 8.1).
    pub const STORAGE1_CERT: &str = "MIICojCCAYoCAQEwDQYJKoZIhvcNAQELBQAwFzEVMBMGA1UEAwwMbmV3cGJfdGhp\
bmd5MB4XDTI2MTIwNjA4MDc1M1oXDTI3MTIwNjA4MDc1M1owFzEVMBMGA1UEAwwM\
bmV3cGJfdGhpbmd5MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAmEsQ\
1AlGMcKv60WZjmtWHEuRtLQyXdSP+UxntHwzKA7TQtldYi+UZNWF61Hdx7KrW8gd\
1mtS2JvDOf7tVhbSfMolDTpsmDHZ4MOdAUdHmJEqYpRiAMkCIHJ5gNIbaVFbmhC4\
QGEPb31zio8SkapM41XDfna0Z9TippQtq/S/HRy2xTXfFnSV+lrcjFzgCC79yfQ5\
198nXAPKOeGOLiKMCM1BfQZn2bqZ8cS6LNsIh/TD0x35Qm7YKz8P8Aq3wbdzxTAE\
S8VLpxgUsER6dZVLQzjaJjBzobyF+7PzCybXoA4p/MijKZ2ZJo1aaBTTBvHwJLv4\
iWKSnObJBWFlfWsiYQIDAQABMA0GCSqGSIb3DQEBCwUAA4IBAQB4lzIW1Fuykd7p\
TuBUfLB3MitAo20DH9u4YTcXIrReJRQGtkdometCLWwoGky8PEkKGTgdTqgwLd/L\
lJRzlL3YceLCdHThvJm5mzmPj2WNF/bTEf4QAmk3GUOm7Z/oMSHXIzVImHOPEdYh\
ZH142PBQiq97cHpJoTfIhIabz/zn7NUBQGzzAdvC0AuXp4bQ8dyl33W7E5M94dpN\
ByTqaD4rpK4XJrf6xHr/zbiPAos75n/UsN1pzDWfkDtiKs4jbmt8K/fYOmlHgJ+8\
TVB42EZowC0zyF9uf6cvR99Fu3JANHAM8PcI5L9rhfjIXb95NufZLuiYMT1n14zF\
dhrXfb0O";

    #[test]
    fn a_real_tahoe_certificate_gives_its_tub_id_and_nurl_pin() {
        let der = data_encoding::BASE64.decode(STORAGE1_CERT.as_bytes()).unwrap();
        assert_eq!(der.len(), 678);
        assert_eq!(tub_id_of_certificate(&der), "zr6vlctcopcfichvxlqhzbrtfccs7xkt");
        // The same X.509 v1 certificate gives the NURL pin of its HTTP storage server.
        assert_eq!(
            crate::grid::spki::certificate_spki_hash(&der).unwrap(),
            "1mdbjI66ed_DyfrHULcfUddS6iO3-aCDKlrbFXf-6hI"
        );
    }
}
