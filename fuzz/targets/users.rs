//! Fuzz targets for what users write and paste: accounts lines, public keys and caps.

use lafs_gateway::frontends::accounts::{Accounts, check_public_key_line};
use lafs_gateway::grid::uri::Cap;

use super::outcome::{class_of, detail_of, utf8};
use crate::engine::Target;

// Accounts lines (private/accounts) and the public key lines `lafs account add --key` takes.

const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example";
const DIRCAP: &str = "URI:DIR2:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq";
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$Xx3r7mDQjyjNv1Qa+XK5r1OxzbE7dmjaJvULaWVfMZo";

fn accounts_seeds() -> Vec<Vec<u8>> {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/accounts.example")).unwrap_or_default();
    vec![
        example,
        format!("alice {ED25519_KEY} {DIRCAP}\n"),
        format!("bob {PASSWORD_HASH} {DIRCAP}\n# comment\n\nbob {ED25519_KEY} {DIRCAP}\n"),
        format!("carol {PASSWORD_HASH} URI:DIR2-RO:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq\n"),
        ED25519_KEY.to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn accounts_run(input: &[u8]) -> String {
    let text = utf8(input);
    let (accounts, errors) = Accounts::parse(&text);
    for line in text.lines() {
        if let Some(user) = line.split_whitespace().next()
            && let Some(account) = accounts.get(user)
        {
            assert_eq!(account.user, user, "an account filed under another user's name");
            let _ = account.has_password();
        }
    }
    let key = check_public_key_line(&text).map_err(|e| class_of(&e));
    if let Ok(line) = &key {
        // What we write back must read again as the same key.
        assert_eq!(
            check_public_key_line(line).as_ref(),
            Ok(line),
            "a key line does not round-trip"
        );
    }
    let classes: Vec<String> = errors.iter().map(|e| class_of(&e.message)).take(4).collect();
    format!("{} {classes:?} {:?}", accounts.len(), key.map(|_| ()))
}

pub const ACCOUNTS: Target = Target {
    name: "accounts",
    seeds: accounts_seeds,
    dictionary: &[
        b" ",
        b"\n",
        b"#",
        b"$argon2id$",
        b"$argon2i$",
        b"$argon2d$",
        b"v=19$",
        b"m=",
        b",t=",
        b",p=",
        b"ssh-ed25519 ",
        b"ssh-rsa ",
        b"ecdsa-sha2-nistp256 ",
        b"sk-ssh-ed25519@openssh.com ",
        b"AAAA",
        b"URI:DIR2:",
        b"URI:DIR2-RO:",
        b"URI:DIR2-MDMF:",
        b"URI:CHK:",
        b"=",
    ],
    max_len: 4096,
    run: accounts_run,
};

// ---------------------------------------------------------------------------------------------
// Caps: what users paste and what directories hold.

fn caps_seeds() -> Vec<Vec<u8>> {
    let chk = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56";
    let ssk = "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq";
    let mdmf = "URI:MDMF:tn2ekpkmearz7k3bivm3ikuz3i:wcqgst36kymoirczlkok5pqdekt5lgsyfw3oh7ecoro3rj5aiyya";
    let mut seeds = vec![
        chk.to_string(),
        ssk.to_string(),
        mdmf.to_string(),
        "URI:LIT:nbswy3dpeb3w64tmmq".to_string(),
        "URI:LIT:".to_string(),
        "URI:UNKNOWN:abc".to_string(),
    ];
    for cap in [chk, ssk, mdmf] {
        if let Ok(parsed) = Cap::parse(cap) {
            seeds.push(parsed.read_only().to_string());
        }
    }
    for (dir, file) in [
        ("URI:DIR2:", "URI:SSK:"),
        ("URI:DIR2-MDMF:", "URI:MDMF:"),
        ("URI:DIR2-CHK:", "URI:CHK:"),
    ] {
        let base = [chk, ssk, mdmf]
            .into_iter()
            .find(|c| c.starts_with(file))
            .unwrap_or(chk);
        seeds.push(base.replacen(file, dir, 1));
    }
    seeds.into_iter().map(String::into_bytes).collect()
}

fn caps_run(input: &[u8]) -> String {
    let text = utf8(input);
    match Cap::parse(&text) {
        Ok(cap) => {
            let printed = cap.to_string();
            let again = Cap::parse(&printed);
            assert!(
                again.as_ref().is_ok_and(|c| c.to_string() == printed),
                "cap {printed:?} does not parse back to itself: {again:?}"
            );
            let read_only = cap.read_only();
            assert!(
                read_only.is_read_only() || matches!(read_only, Cap::Unknown(..)),
                "read_only of {printed:?}"
            );
            let si = cap.storage_index().is_some();
            format!("{} {si} {}", cap.kind(), cap.is_immutable())
        }
        // The number of fields tells apart errors that read the same.
        Err(e) => format!(
            "error {} {}",
            detail_of(&e.to_string()),
            text.split(':').count().min(12)
        ),
    }
}

pub const CAPS: Target = Target {
    name: "caps",
    seeds: caps_seeds,
    dictionary: &[
        b"URI:",
        b"LIT:",
        b"CHK:",
        b"CHK-Verifier:",
        b"SSK:",
        b"SSK-RO:",
        b"SSK-Verifier:",
        b"MDMF:",
        b"MDMF-RO:",
        b"MDMF-Verifier:",
        b"DIR2:",
        b"DIR2-RO:",
        b"DIR2-CHK:",
        b"DIR2-LIT:",
        b"DIR2-MDMF:",
        b"DIR2-MDMF-RO:",
        b":",
        b"ro.",
        b"imm.",
        b"a",
        b"7",
        b"=",
    ],
    max_len: 1024,
    run: caps_run,
};
