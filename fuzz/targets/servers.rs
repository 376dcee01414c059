//! Fuzz targets for how the gateway learns its servers: servers.yaml and announcements.

use lafs_gateway::grid::announcement::{furl_tubid, parse_announcement, parse_servers_yaml};
use lafs_gateway::grid::nurl::Nurl;

use super::outcome::{class_of, utf8};
use crate::engine::Target;

// servers.yaml, and one announcement's `ann` mapping with the NURLs and fURLs in it.

const REAL_SERVERS_YAML: &str = r#"
storage:
  v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua:
    ann:
      anonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3
      anonymous-storage-NURLs:
      - pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3#v=1
      app-versions: []
      my-version: tahoe-lafs/1.20.0
      nickname: s1
      nonce: ekrbtiz3ehk3ikrpneonqnqdhp4ddz3ybtatocn7quno7yroocjq
      oldest-supported: 1.0.0
      permutation-seed-base32: ov4hi2tbofzxi5bwoy3diz3oov4gq5btoj3humrwnv5do5lznfrte5dqgjutgyljo54tgztcnnygo33oovqq
      seqnum: 1
      service-name: storage
      version: 0
  v0-second:
    ann:
      anonymous-storage-FURL: pb://QBAM4KYTKIBY34F4N3M5SHYDXZNAIVNF@tor:abc.onion:1/x
      anonymous-storage-NURLs: [ "pb+tor://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@[::1]:1/s#v=1" ]
"#;

fn servers_yaml_seeds() -> Vec<Vec<u8>> {
    vec![
        REAL_SERVERS_YAML.as_bytes().to_vec(),
        b"storage: {}\n".to_vec(),
        b"storage:\n  a: &x {ann: {nickname: *x}}\n".to_vec(),
    ]
}

fn servers_yaml_run(input: &[u8]) -> String {
    match parse_servers_yaml(&utf8(input)) {
        Ok(servers) => {
            for server in &servers.usable {
                assert!(!server.nurls.is_empty(), "a usable server without a NURL");
                let _ = server.server_id();
            }
            let skipped: Vec<String> = servers
                .skipped
                .iter()
                .map(|e| class_of(&e.to_string()))
                .take(3)
                .collect();
            format!("{} usable, skipped {skipped:?}", servers.usable.len())
        }
        Err(e) => format!("error {}", class_of(&e.to_string())),
    }
}

fn announcement_seeds() -> Vec<Vec<u8>> {
    // `server id` line, then the ann mapping as YAML.
    let ann = REAL_SERVERS_YAML
        .split("    ann:\n")
        .nth(1)
        .and_then(|s| s.split("  v0-second").next())
        .unwrap_or_default();
    let unindented: String = ann.lines().map(|l| format!("{}\n", l.trim_start())).collect();
    vec![
        format!("v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua\n{unindented}").into_bytes(),
        b"v0-x\nanonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@h:1/s\nanonymous-storage-NURLs: [\"pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@[::1]:65535/s#v=1\"]\n".to_vec(),
    ]
}

fn announcement_run(input: &[u8]) -> String {
    let text = utf8(input);
    let (server_id, yaml) = text.split_once('\n').unwrap_or((&text, ""));
    let mut classes = Vec::new();
    // Every line on its own as a NURL and as a fURL.
    for line in yaml.lines().take(8) {
        let value = line.trim_start_matches(['-', ' ', '"']).trim_end_matches('"');
        let value = value.split_once(": ").map_or(value, |(_, v)| v);
        if let Ok(nurl) = value.parse::<Nurl>() {
            let again: Result<Nurl, _> = nurl.to_string().parse();
            assert_eq!(again.as_ref().ok(), Some(&nurl), "NURL {value:?} does not round-trip");
            classes.push("nurl".to_string());
        }
        if furl_tubid(value).is_some() {
            classes.push("furl".to_string());
        }
    }
    match serde_yaml::from_str::<serde_yaml::Value>(yaml) {
        Ok(ann) => match parse_announcement(server_id, &ann) {
            Ok(parsed) => classes.push(format!("ok {}", parsed.nurls.len())),
            Err(e) => classes.push(class_of(&e.to_string())),
        },
        Err(_) => classes.push("no yaml".to_string()),
    }
    classes.join(",")
}

fn servers_yaml_and_announcement_seeds() -> Vec<Vec<u8>> {
    servers_yaml_seeds().into_iter().chain(announcement_seeds()).collect()
}

/// The whole file, and the same bytes as `server id` line + one `ann` mapping.
fn servers_yaml_and_announcement_run(input: &[u8]) -> String {
    format!("{} / {}", servers_yaml_run(input), announcement_run(input))
}

pub const SERVERS_YAML: Target = Target {
    name: "servers_yaml",
    seeds: servers_yaml_and_announcement_seeds,
    dictionary: &[
        b"storage:",
        b"ann:",
        b"anonymous-storage-FURL: ",
        b"anonymous-storage-NURLs:",
        b"- ",
        b"pb://",
        b"pb+tor://",
        b"#v=1",
        b"@",
        b"[::1]",
        b":0",
        b":65536",
        b"service-name: storage",
        b"permutation-seed-base32: ",
        b"nickname: ",
        b"v0-",
        b"/",
        b"?",
        b"#",
        b"\n",
        b"\n  ",
        b"\n    ",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"---\n",
        b"? ",
        b"<<: ",
    ],
    max_len: 8192,
    run: servers_yaml_and_announcement_run,
};
