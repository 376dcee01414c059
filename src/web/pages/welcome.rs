//! `/`: the welcome page (the node, its grid and the health of each storage server, forms to
//! open, download, upload and create) and its JSON (`/?t=json`, as Tahoe's).

use std::fmt::Write;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::grid::base32;
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::{WebBody, full, html, respond};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::pages::{escape, layout};

/// How long the page waits for a server to say how much space it has.
const SERVER_TIMEOUT: Duration = Duration::from_secs(3);

/// One storage server as the page shows it.
struct Server {
    nickname: String,
    id: String,
    connected: bool,
    available_space: Option<u64>,
}

async fn servers(state: &WebState) -> Vec<Server> {
    let asks = state.grid.servers().iter().map(|server| async move {
        let id = server.id();
        let version = tokio::time::timeout(SERVER_TIMEOUT, server.version()).await;
        let available_space = match version {
            Ok(Ok(v)) => Some(v.available_space),
            _ => None,
        };
        Server {
            nickname: id.nickname.clone(),
            id: format!("v0-{}", base32::encode(&id.permutation_seed)),
            connected: available_space.is_some(),
            available_space,
        }
    });
    futures::future::join_all(asks).await
}

/// `GET /[?t=json]`.
pub async fn page(state: &WebState, _request: &Request<Incoming>, args: &Args) -> Result<Response<WebBody>, WebError> {
    let servers = servers(state).await;
    if args.t() == "json" {
        let listed = servers
            .iter()
            .map(|s| {
                let mut entry = Json::object().with("nodeid", s.id.as_str()).with(
                    "connection_status",
                    if s.connected { "connected" } else { "not connected" },
                );
                if let Some(space) = s.available_space {
                    entry.push("available_space", space);
                }
                entry
                    .with("nickname", s.nickname.as_str())
                    .with("version", concat!("lafs-gateway/", env!("CARGO_PKG_VERSION")))
            })
            .collect();
        let doc = Json::object()
            .with("introducers", Json::object().with("statuses", Json::List(Vec::new())))
            .with("servers", Json::List(listed));
        return Ok(respond(
            StatusCode::OK,
            "application/json; charset=utf-8",
            full(doc.pretty()),
        ));
    }
    let connected = servers.iter().filter(|s| s.connected).count();
    let params = state.grid.params();
    let mut rows = String::new();
    for s in &servers {
        let (class, status) = if s.connected {
            ("ok", "connected")
        } else {
            ("bad", "not connected")
        };
        let space = s.available_space.map_or("-".to_string(), |b| {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        });
        let _ = write!(
            rows,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{status}</td><td>{space}</td></tr>",
            escape(&s.nickname),
            escape(&s.id),
        );
    }
    let body = format!(
        "<h1>lafs-gateway node</h1>\
<p>Node directory <code>{dir}</code>, version {version}. Encoding {k}-of-{n}, happy {happy}.</p>\
<h2>Connected to <span id=\"connected\">{connected}</span> of {total} storage servers</h2>\
<table id=\"servers\"><tr><th>Nickname</th><th>Server ID</th><th>Connection</th><th>Available space</th></tr>{rows}</table>\
<p>Introducer: none (a static server list)</p>\
<fieldset><legend>Open Tahoe-URI</legend><form action=\"uri\" method=\"get\">\
<input type=\"text\" name=\"uri\" size=\"60\"> <input type=\"submit\" value=\"View!\"></form></fieldset>\
<fieldset><legend>Download Tahoe-URI</legend><form action=\"uri\" method=\"get\">\
URI: <input type=\"text\" name=\"uri\" size=\"40\"> Filename: <input type=\"text\" name=\"filename\">\
<input type=\"hidden\" name=\"save\" value=\"true\"> <input type=\"submit\" value=\"Download!\"></form></fieldset>\
<fieldset><legend>Upload File</legend><form action=\"uri\" method=\"post\" enctype=\"multipart/form-data\">\
<input type=\"hidden\" name=\"t\" value=\"upload\">\
<label><input type=\"radio\" name=\"format\" value=\"chk\" checked> Immutable</label> \
<label><input type=\"radio\" name=\"format\" value=\"sdmf\"> SDMF</label> \
<label><input type=\"radio\" name=\"format\" value=\"mdmf\"> MDMF (experimental)</label> \
<input type=\"file\" name=\"file\"> <input type=\"submit\" value=\"Upload!\"></form></fieldset>\
<fieldset><legend>Create Directory</legend><form action=\"uri\" method=\"post\" enctype=\"multipart/form-data\">\
<input type=\"hidden\" name=\"t\" value=\"mkdir\"><input type=\"hidden\" name=\"redirect_to_result\" value=\"true\">\
<label><input type=\"radio\" name=\"format\" value=\"sdmf\" checked> SDMF</label> \
<label><input type=\"radio\" name=\"format\" value=\"mdmf\"> MDMF (experimental)</label> \
<input type=\"submit\" id=\"create-directory\" value=\"Create a directory\"></form></fieldset>",
        dir = escape(&state.node_dir.display().to_string()),
        version = env!("CARGO_PKG_VERSION"),
        k = params.needed,
        n = params.total,
        happy = params.happy,
        total = servers.len(),
    );
    Ok(html(layout("Welcome", "", &body)))
}
