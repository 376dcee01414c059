//! Creating a node directory and its private files: the convergence and lease secrets (Tahoe's
//! format), the SSH host key and the self-signed FTPS certificate.

use std::fs;
use std::path::Path;

use super::config::{CONFIG_FILE, DEFAULT_CONFIG, FTPS_CERTIFICATE, FTPS_KEY, NodeConfig, load_config};
use super::error::{Error, io};
use crate::grid::base32;
use crate::grid::crypto::random_bytes;

/// Creates a node directory with the default config and fresh secrets; existing files are kept.
pub fn init(dir: &Path) -> Result<(), Error> {
    let private = dir.join("private");
    fs::create_dir_all(&private).map_err(io(format!("create {}", private.display())))?;
    restrict_permissions(&private, 0o700)?;
    let config = dir.join(CONFIG_FILE);
    if !config.exists() {
        fs::write(&config, DEFAULT_CONFIG).map_err(io(format!("write {}", config.display())))?;
    }
    for name in ["convergence", "secret"] {
        let path = private.join(name);
        if !path.exists() {
            // Tahoe's format: base32 of 32 random bytes, so a Tahoe node's file can be copied in.
            fs::write(&path, base32::encode(&random_bytes::<32>()) + "\n")
                .map_err(io(format!("write {}", path.display())))?;
            restrict_permissions(&path, 0o600)?;
        }
    }
    let config = load_config(dir)?;
    if !config.ssh_host_key.exists() {
        write_host_key(&config.ssh_host_key)?;
    }
    ensure_ftps_identity(&config)?;
    Ok(())
}

/// Writes a self-signed FTPS certificate and key at the default paths when the config uses them
/// and neither file exists (a certificate configured elsewhere is never replaced).
pub fn ensure_ftps_identity(config: &NodeConfig) -> Result<(), Error> {
    let Some((certificate, key)) = &config.ftps else {
        return Ok(());
    };
    let defaults = *certificate == config.dir.join(FTPS_CERTIFICATE) && *key == config.dir.join(FTPS_KEY);
    if defaults && !certificate.exists() && !key.exists() {
        write_ftps_identity(certificate, key)?;
    }
    Ok(())
}

/// Writes a fresh self-signed certificate for `localhost` and 127.0.0.1 and its key (mode 0600),
/// both PEM.
pub fn write_ftps_identity(certificate: &Path, key: &Path) -> Result<(), Error> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(|e| {
            Error::BadSecret {
                file: certificate.display().to_string(),
                message: format!("cannot make a self-signed certificate: {e}"),
            }
        })?;
    for path in [certificate, key] {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
    }
    fs::write(key, made.signing_key.serialize_pem()).map_err(io(format!("write {}", key.display())))?;
    restrict_permissions(key, 0o600)?;
    fs::write(certificate, made.cert.pem()).map_err(io(format!("write {}", certificate.display())))?;
    Ok(())
}

/// Writes a fresh ed25519 SSH host key (OpenSSH format, mode 0600) and its `.pub`.
pub fn write_host_key(path: &Path) -> Result<(), Error> {
    use russh::keys::ssh_key::{LineEnding, PrivateKey, private::Ed25519Keypair};
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&random_bytes::<32>()));
    let text = key.to_openssh(LineEnding::LF).map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("cannot encode the host key: {e}"),
    })?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    }
    fs::write(path, text.as_bytes()).map_err(io(format!("write {}", path.display())))?;
    restrict_permissions(path, 0o600)?;
    let public = key.public_key().to_openssh().map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("cannot encode the host public key: {e}"),
    })?;
    let pub_path = path.with_extension("pub");
    fs::write(&pub_path, public + "\n").map_err(io(format!("write {}", pub_path.display())))?;
    Ok(())
}

/// Reads the SSH host key.
pub fn read_host_key(path: &Path) -> Result<russh::keys::PrivateKey, Error> {
    russh::keys::PrivateKey::read_openssh_file(path).map_err(|e| Error::BadSecret {
        file: path.display().to_string(),
        message: format!("not a readable unencrypted OpenSSH private key ({e})"),
    })
}

pub(crate) fn restrict_permissions(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(format!("chmod {}", path.display())))
}

/// Reads a base32 secret file from `private/`.
pub fn read_secret(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join("private").join(name);
    let file = path.display().to_string();
    let text = fs::read_to_string(&path).map_err(|e| Error::BadSecret {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let secret = base32::decode(text.trim()).ok_or_else(|| Error::BadSecret {
        file: file.clone(),
        message: "not lowercase base32 (Tahoe's format)".into(),
    })?;
    if secret.is_empty() {
        return Err(Error::BadSecret {
            file,
            message: "empty".into(),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::parse_config;

    #[test]
    fn ftps_certificate_is_made_only_at_the_default_paths_and_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let config = load_config(dir.path()).unwrap();
        let (certificate, key) = config.ftps.clone().expect("FTPS on by default");
        let pem = fs::read_to_string(&certificate).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        // Kept as they are on the next init.
        init(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&certificate).unwrap(), pem);
        // A certificate configured elsewhere is never made up.
        let elsewhere = "[frontends]\nftps_certificate = \"mine.pem\"\nftps_key = \"mine.key\"\n";
        let config = parse_config(dir.path(), "lafs.toml", elsewhere).unwrap();
        ensure_ftps_identity(&config).unwrap();
        assert!(!dir.path().join("mine.pem").exists() && !dir.path().join("mine.key").exists());
        let off = "[frontends]\nftps_certificate = \"\"\nftps_key = \"\"\n";
        assert!(parse_config(dir.path(), "lafs.toml", off).unwrap().ftps.is_none());
    }

    #[test]
    fn init_writes_tahoe_format_secrets_and_keeps_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let secret = read_secret(dir.path(), "convergence").unwrap();
        assert_eq!(secret.len(), 32);
        let text = fs::read_to_string(dir.path().join("private/convergence")).unwrap();
        assert_eq!(text.trim().len(), 52);
        init(dir.path()).unwrap();
        assert_eq!(read_secret(dir.path(), "convergence").unwrap(), secret);
        fs::write(dir.path().join("private/secret"), "NOT BASE32").unwrap();
        let err = read_secret(dir.path(), "secret").unwrap_err().to_string();
        assert!(!err.contains("NOT BASE32"), "secret text leaked: {err}");
    }
}
