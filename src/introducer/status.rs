//! What `lafs status` says about introducers: `lafs run` writes each introducer client's state
//! to `private/introducer_<petname>_status.json`; the report joins it with this command's own
//! look at the introducer and at each announced storage server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::ClientState;

/// How long the report waits for one storage server's version answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The status file of introducer `petname` in the node's `private/` directory.
pub fn status_path(private: &Path, petname: &str) -> PathBuf {
    private.join(format!("introducer_{petname}_status.json"))
}

/// A long-running client's state, as written for `lafs status` (no swissnums).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatusFile {
    /// The introducer's tub ID.
    pub introducer: String,
    /// Whether `lafs run` had a session up when it wrote this.
    pub connected: bool,
    /// Unix seconds of this state.
    pub since: u64,
    /// Why the last session ended or failed.
    pub last_error: Option<String>,
    /// Unix seconds of each server's last announcement, by server ID.
    pub announced: std::collections::BTreeMap<String, u64>,
}

impl StatusFile {
    /// The file's contents for `state`.
    pub fn of(introducer: &str, state: &ClientState, now: u64) -> StatusFile {
        StatusFile {
            introducer: introducer.to_string(),
            connected: state.connected,
            since: now,
            last_error: state.last_error.clone(),
            announced: state
                .registry
                .servers()
                .iter()
                .map(|(key, known)| (key.clone(), known.announced_at))
                .collect(),
        }
    }

    /// Writes it through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, path)
    }

    fn load(path: &Path) -> Option<StatusFile> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

fn when(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// The introducer lines of `lafs status` for node `dir`: each introducer (as `lafs run` last
/// saw it), and each server it announced with the time of that announcement and whether the
/// server answers now.
pub async fn report(dir: &Path) -> Result<Vec<String>, String> {
    let introducers = super::furls::load(dir).map_err(|e| e.to_string())?;
    if introducers.is_empty() {
        return Ok(vec!["introducers: none (private/introducers.yaml)".into()]);
    }
    let mut lines = Vec::new();
    for (petname, furl) in introducers {
        let hints: Vec<String> = furl.hints.iter().map(|h| format!("{}:{}", h.host, h.port)).collect();
        let status = StatusFile::load(&status_path(&dir.join("private"), &petname));
        let connection = match &status {
            Some(s) if s.connected => format!("lafs run connected (as of {})", when(s.since)),
            Some(s) => format!(
                "lafs run not connected (as of {}{})",
                when(s.since),
                s.last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
            None => "no lafs run status".into(),
        };
        lines.push(format!(
            "introducer {petname} ({} at {}): {connection}",
            furl.tub_id,
            hints.join(",")
        ));
        let registry = super::cache::load(&super::cache::cache_path(dir, &petname), 0).map_err(|e| e.to_string())?;
        for (key, known) in registry.servers() {
            let announced = status.as_ref().and_then(|s| s.announced.get(key)).map_or_else(
                || "announced before the last lafs run".to_string(),
                |t| format!("announced {}", when(*t)),
            );
            let reachable = match crate::grid::announcement::parse_announcement(key, &super::cache::as_yaml(known)) {
                Ok(server) => probe(&server).await,
                Err(e) => format!("unusable: {e}"),
            };
            let nickname = known
                .ann
                .get("nickname")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            lines.push(format!("  {nickname} {key}: {announced}; {reachable}"));
        }
    }
    Ok(lines)
}

async fn probe(server: &crate::grid::announcement::StorageAnnouncement) -> String {
    use crate::grid::storage::StorageServer;
    let Some(nurl) = server.nurls.first() else {
        return "no NURL".into();
    };
    let client = match crate::grid::storage::http::client::HttpStorageClient::new(server.server_id(), nurl) {
        Ok(client) => client,
        Err(e) => return format!("not connected: {e}"),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.version()).await {
        Ok(Ok(_)) => "connected".into(),
        Ok(Err(e)) => format!("not connected: {e}"),
        Err(_) => format!("not connected: no answer in {PROBE_TIMEOUT:?}"),
    }
}
