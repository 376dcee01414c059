//! The accounts file SFTP and FTP share: who may log in, with which keys or password hashes, to which root dircap.
//!
//! Tahoe's format, one credential per line: `USER KEYTYPE BASE64KEY [COMMENT...] ROOTCAP`
//! for SSH keys and `USER $argon2id$... ROOTCAP` for passwords. A user may have
//! several lines (several keys, a key and a password); they must all name the
//! same root. Unlike Tahoe, a broken line is reported with its number and
//! skipped instead of stopping the node, ecdsa and sk- keys work, plaintext
//! passwords are refused, and the file is re-read when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use russh::keys::PublicKey;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::grid::uri::Cap;

/// SSH key types an accounts line may name (OpenSSH's names).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A password hash verified against when the user has none, so a miss costs what a hit costs.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let unguessable = crate::grid::base32::encode(&crate::grid::crypto::random_bytes::<16>());
    hash_password(&unguessable).unwrap_or_default()
});

/// Password checks running at once, node-wide, at most one per core: each argon2 verification
/// fills 19 MiB, so a crowd of logins queues for the cores (which it would wait for anyway)
/// instead of holding 19 MiB each (100 FTP logins at once took 1 GiB before this). They queue as
/// tasks: waiting on a blocking thread, each would have held a thread and its allocator cache.
static PASSWORD_CHECKS: std::sync::LazyLock<Semaphore> =
    std::sync::LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// One way to prove who you are.
#[derive(Clone)]
enum Credential {
    Key(PublicKey),
    /// An argon2 PHC string.
    Password(String),
}

/// A user who may log in: their root directory and how they prove it is them.
#[derive(Clone)]
pub struct Account {
    /// The login name.
    pub user: String,
    /// The root directory cap (a read-only one makes a read-only account).
    pub root: Cap,
    credentials: Vec<Credential>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The root cap is a secret: show only whether it is writable.
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("read_only", &self.root.is_read_only())
            .field("credentials", &self.credentials.len())
            .finish()
    }
}

impl Account {
    /// Whether this account may log in with a password at all (FTP needs one).
    pub fn has_password(&self) -> bool {
        self.credentials.iter().any(|c| matches!(c, Credential::Password(_)))
    }
}

/// A line of the file that was skipped, and why (never with the line's secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every account in one version of the file.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    by_user: HashMap<String, Account>,
}

impl Accounts {
    /// Parses the file's text; broken lines are returned as errors and left out.
    pub fn parse(text: &str) -> (Accounts, Vec<LineError>) {
        let mut accounts = Accounts::default();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| LineError {
                line: index + 1,
                message,
            };
            match parse_line(line) {
                Ok((user, credential, root)) => match accounts.by_user.get_mut(&user) {
                    Some(existing) if existing.root != root => errors.push(error(format!(
                        "user {user:?} already has a different root directory on an earlier line"
                    ))),
                    Some(existing) => existing.credentials.push(credential),
                    None => {
                        accounts.by_user.insert(
                            user.clone(),
                            Account {
                                user,
                                root,
                                credentials: vec![credential],
                            },
                        );
                    }
                },
                Err(message) => errors.push(error(message)),
            }
        }
        (accounts, errors)
    }

    /// The account called `user`, if any.
    pub fn get(&self, user: &str) -> Option<&Account> {
        self.by_user.get(user)
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// [`Accounts::check_password`] off the async workers, in turn with the node's other password
    /// checks (at most one per core at once).
    pub async fn check_password_in_turn(self: Arc<Self>, user: String, password: String) -> Option<Account> {
        let turn = PASSWORD_CHECKS.acquire().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            self.check_password(&user, &password)
        })
        .await
        .unwrap_or(None)
    }

    /// The account if `password` is right for `user`. Slow on purpose (argon2), and as slow for an unknown user.
    fn check_password(&self, user: &str, password: &str) -> Option<Account> {
        let account = self.by_user.get(user);
        let hashes: Vec<&str> = account
            .map(|a| {
                a.credentials
                    .iter()
                    .filter_map(|c| match c {
                        Credential::Password(phc) => Some(phc.as_str()),
                        Credential::Key(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let verifier = argon2::Argon2::default();
        if hashes.is_empty() {
            let _ = verifier.verify_password(password.as_bytes(), DECOY_HASH.as_str());
            return None;
        }
        let mut matched = false;
        for phc in hashes {
            // argon2 compares the derived hashes in constant time.
            matched |= verifier.verify_password(password.as_bytes(), phc).is_ok();
        }
        if matched { account.cloned() } else { None }
    }

    /// Whether `key` is one of `user`'s keys (asked before the client proves it holds the key).
    pub fn accepts_key(&self, user: &str, key: &PublicKey) -> bool {
        self.check_key(user, key).is_some()
    }

    /// The account if `key` (whose possession the SSH layer has verified) belongs to `user`.
    pub fn check_key(&self, user: &str, key: &PublicKey) -> Option<Account> {
        let account = self.by_user.get(user)?;
        let offered = key.to_bytes().ok()?;
        let mut matched = false;
        for credential in &account.credentials {
            if let Credential::Key(known) = credential
                && let Ok(known) = known.to_bytes()
            {
                matched |= bool::from(known.as_slice().ct_eq(offered.as_slice()));
            }
        }
        matched.then(|| account.clone())
    }
}

fn parse_line(line: &str) -> Result<(String, Credential, Cap), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 3 {
        return Err("expected `USER KEYTYPE KEY [COMMENT] ROOTCAP` or `USER $argon2id$... ROOTCAP`".into());
    }
    let user = fields[0];
    if user.contains(':') || user.chars().any(char::is_control) {
        return Err("the user name may not contain ':' or control characters".into());
    }
    let root_text = fields[fields.len() - 1];
    // The cap is checked but never echoed: it is the account's secret.
    let root = Cap::parse(root_text).map_err(|_| "the last field is not a valid cap".to_string())?;
    if !matches!(root, Cap::Directory(_)) {
        return Err("the root cap must be a directory cap (URI:DIR2...)".into());
    }
    let second = fields[1];
    let credential = if KEY_TYPES.contains(&second) {
        if fields.len() < 4 {
            return Err(format!("{second} needs a base64 key before the root cap"));
        }
        let key = PublicKey::from_openssh(&format!("{second} {}", fields[2]))
            .map_err(|e| format!("cannot parse the {second} key: {e}"))?;
        Credential::Key(key)
    } else if second.starts_with("$argon2") {
        if fields.len() != 3 {
            return Err("a password line is `USER $argon2id$... ROOTCAP`".into());
        }
        argon2::password_hash::phc::PasswordHash::new(second)
            .map_err(|e| format!("the password hash is not a valid argon2 PHC string: {e}"))?;
        Credential::Password(second.to_string())
    } else if second.starts_with("ssh-") || second.starts_with("ecdsa-") || second.starts_with("sk-") {
        return Err(format!("unsupported key type {second:?}"));
    } else {
        return Err(
            "plaintext passwords are not accepted: store an argon2 hash (`lafs account add USER --password`)".into(),
        );
    };
    Ok((user.to_string(), credential, root))
}

/// Hashes `password` for an accounts line (argon2id, random salt, default cost).
pub fn hash_password(password: &str) -> Result<String, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Checks that `text` is one OpenSSH public key line; returns it as `TYPE BASE64 [COMMENT]`.
pub fn check_public_key_line(text: &str) -> Result<String, String> {
    let key = PublicKey::from_openssh(text.trim()).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
    let algorithm = key.algorithm();
    if !KEY_TYPES.contains(&algorithm.as_str()) {
        return Err(format!("unsupported key type {}", algorithm.as_str()));
    }
    key.to_openssh().map_err(|e| format!("cannot encode the key: {e}"))
}

/// The accounts file on disk, re-read whenever it changes.
#[derive(Debug)]
pub struct AccountsFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64, u64)>,
    accounts: Arc<Accounts>,
}

impl AccountsFile {
    /// Watches `path` (it may not exist yet: then nobody can log in).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let file = AccountsFile {
            path: path.into(),
            state: Mutex::new(Loaded::default()),
        };
        file.current();
        file
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The accounts as the file says now: re-read if its mtime, size or inode changed since last time.
    pub fn current(&self) -> Arc<Accounts> {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino())
        });
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.stamp == stamp && stamp.is_some() {
            return state.accounts.clone();
        }
        let accounts = match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let (accounts, errors) = Accounts::parse(&text);
                for error in &errors {
                    tracing::warn!(file = %self.path.display(), "accounts file {error}; line skipped");
                }
                tracing::info!(file = %self.path.display(), accounts = accounts.len(), "accounts loaded");
                accounts
            }
            Err(e) => {
                if stamp.is_some() || state.stamp.is_some() {
                    tracing::warn!(file = %self.path.display(), "cannot read the accounts file: {e}; nobody can log in");
                }
                Accounts::default()
            }
        };
        state.stamp = stamp;
        state.accounts = Arc::new(accounts);
        state.accounts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "URI:DIR2:ovjy4yhylqlfoqg2vcze36dhde:4d4f47qko2xm5g7osgo2yyidi5m4muyo2vjjy53q4vjju2u55mfa";
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJx9sAMqmEKvbM+gsqGSNcwoH2ZdWkL/vHjPaP/kmKT";

    #[test]
    fn parses_keys_passwords_and_skips_broken_lines_with_their_numbers() {
        let hash = hash_password("secret").unwrap();
        let text = format!(
            "# comment\n\nalice {KEY} alice@laptop {ROOT}\nalice {hash} {ROOT}\nbob plaintext {ROOT}\n\
             carol ssh-ed25519 AAAAnotbase64 {ROOT}\ndave {hash} URI:CHK:nope\neve {hash}\n"
        );
        let (accounts, errors) = Accounts::parse(&text);
        assert_eq!(accounts.len(), 1);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 8]);
        assert!(errors[0].message.contains("plaintext"), "{}", errors[0]);
        for error in &errors {
            assert!(!error.message.contains("ovjy4y"), "cap leaked: {error}");
            assert!(!error.message.contains("plaintext ") || !error.message.contains("secret"));
        }
        let key = PublicKey::from_openssh(KEY).unwrap();
        assert!(accounts.check_key("alice", &key).is_some());
        assert!(accounts.check_key("bob", &key).is_none());
        assert!(accounts.check_password("alice", "secret").is_some());
        assert!(accounts.check_password("alice", "Secret").is_none());
        assert!(accounts.check_password("nobody", "secret").is_none());
    }

    #[test]
    fn a_user_cannot_have_two_roots_and_debug_hides_the_root() {
        let other = "URI:DIR2:aaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbba";
        let text = format!("alice {KEY} {ROOT}\nalice {KEY} {other}\n");
        let (accounts, errors) = Accounts::parse(&text);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        let shown = format!("{:?}", accounts.get("alice").unwrap());
        assert!(!shown.contains("ovjy4y"), "{shown}");
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts");
        let file = AccountsFile::new(&path);
        assert!(file.current().is_empty());
        std::fs::write(&path, format!("alice {KEY} {ROOT}\n")).unwrap();
        assert!(file.current().get("alice").is_some());
        std::fs::write(&path, format!("bob {KEY} {ROOT}\n# longer than before\n")).unwrap();
        let now = file.current();
        assert!(now.get("alice").is_none() && now.get("bob").is_some());
    }

    #[test]
    fn the_documented_example_file_parses_cleanly() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/accounts.example")).unwrap();
        let (accounts, errors) = Accounts::parse(&text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(accounts.len(), 2);
        assert!(accounts.get("guest").unwrap().root.is_read_only());
        assert!(!accounts.get("alice").unwrap().root.is_read_only());
    }

    #[test]
    fn public_key_lines_are_checked() {
        assert!(check_public_key_line(&format!("{KEY} me@host")).is_ok());
        assert!(check_public_key_line("ssh-ed25519 garbage").is_err());
    }
}
