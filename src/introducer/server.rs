//! Serving as an introducer (section 6.3): Tahoe nodes (and ours) connect to our fURL,
//! `publish_v2` their signed storage announcements and `subscribe_v2` to hear every
//! announcement, now and later. Announcements are kept (never removed, as Tahoe's introducer
//! keeps them); a subscription ends with its connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::client::{PUBLISHER_INTERFACE, V2_PROTOCOL};
use super::registry::{Outcome, Registry};
use super::signed::{SignatureError, SignedAnnouncement};
use crate::foolscap::banana::Value;
use crate::foolscap::call::{Failure, Reference};
use crate::foolscap::connection::{IncomingCall, Peer, Tub};
use crate::foolscap::furl::Furl;
use crate::grid::base32;
use crate::grid::crypto::random_bytes;

/// `[introducer]` in `lafs.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntroducerServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The host written into the fURL (default: the listen address's IP).
    pub location: Option<String>,
}

/// The file holding the introducer's fURL (Tahoe's place for it).
pub const FURL_FILE: &str = "private/introducer.furl";
/// Our service object's clid.
const SERVICE_CLID: i64 = 1;
/// The most subscriptions kept at once.
const MAX_SUBSCRIBERS: usize = 10_000;
/// How long a subscriber may take to answer an `announce_v2` before its subscribe is answered.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(60);

/// Why the introducer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file could not be read or written, or the identity is unusable.
    #[error("introducer: {0}")]
    Setup(String),
}

struct Subscriber {
    connection: u64,
    peer: Peer,
    clid: i64,
}

/// The introducer's state: what was published, and who listens.
struct Service {
    swissnum: String,
    registry: Mutex<Registry>,
    signed: Mutex<BTreeMap<String, SignedAnnouncement>>,
    subscribers: Mutex<Vec<Subscriber>>,
    next_connection: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes (or keeps) the introducer's fURL for `listener`'s address and returns it with the
/// future that serves until `shutdown`.
pub fn start(
    dir: &Path,
    config: &IntroducerServerConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(Furl, impl std::future::Future<Output = ()> + Send + 'static), ServerError> {
    let setup = |e: &dyn std::fmt::Display| ServerError::Setup(e.to_string());
    let tub = Arc::new(super::load_or_create_tub(dir).map_err(|e| setup(&e))?);
    let address = listener.local_addr().map_err(|e| setup(&e))?;
    let path = dir.join(FURL_FILE);
    // The swissnum lasts: nodes keep the fURL in their introducers.yaml.
    let swissnum = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<Furl>().map_err(|e| setup(&e))?.swissnum,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => base32::encode(&random_bytes::<20>()),
        Err(e) => return Err(setup(&e)),
    };
    let host = config.location.clone().unwrap_or_else(|| address.ip().to_string());
    let furl: Furl = format!("pb://{}@tcp:{host}:{}/{swissnum}", tub.tub_id, address.port())
        .parse()
        .map_err(|e: crate::foolscap::furl::FurlError| setup(&e))?;
    write_private(&path, &format!("{furl}\n")).map_err(|e| setup(&e))?;
    let service = Arc::new(Service {
        swissnum,
        registry: Mutex::new(Registry::default()),
        signed: Mutex::new(BTreeMap::new()),
        subscribers: Mutex::new(Vec::new()),
        next_connection: AtomicU64::new(0),
    });
    let serving = async move {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => return,
            };
            match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(service.clone().connection(tub.clone(), tcp));
                }
                Err(e) => {
                    tracing::warn!("introducer: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    Ok((furl, serving))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

impl Service {
    async fn connection(self: Arc<Self>, tub: Arc<Tub>, tcp: tokio::net::TcpStream) {
        let from = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let (peer, mut calls) = match tub.accept(tcp).await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!("introducer: connection from {from} refused: {e}");
                return;
            }
        };
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        while let Some(call) = calls.recv().await {
            self.dispatch(connection, &peer, call).await;
        }
        lock(&self.subscribers).retain(|s| s.connection != connection);
    }

    async fn dispatch(&self, connection: u64, peer: &Peer, call: IncomingCall) {
        let violation = |why: &str| Failure::new("foolscap.tokens.Violation", why);
        match (call.call.target, call.call.method.as_str()) {
            (0, "getReferenceByName") => {
                let name = call
                    .call
                    .argument(0, "name")
                    .and_then(Value::as_bytes)
                    .unwrap_or_default();
                if bool::from(name.ct_eq(self.swissnum.as_bytes())) {
                    let service = Reference {
                        clid: SERVICE_CLID,
                        interface: Some(PUBLISHER_INTERFACE.into()),
                        furl: None,
                    };
                    call.answer(service.to_value()).await;
                } else {
                    call.fail(Failure::new("builtins.KeyError", "unable to find reference"))
                        .await;
                }
            }
            (SERVICE_CLID, "get_version") => {
                let version = Value::Dict(vec![
                    (
                        Value::bytes("application-version"),
                        Value::bytes(&format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION"))),
                    ),
                    (Value::bytes(V2_PROTOCOL), Value::Dict(vec![])),
                ]);
                call.answer(version).await;
            }
            (SERVICE_CLID, "publish_v2") => match self.publish(call.call.argument(0, "announcement")) {
                Ok(()) => call.answer(Value::None).await,
                Err(failure) => {
                    tracing::info!("introducer: refused a publish: {}: {}", failure.kind, failure.value);
                    call.fail(failure).await;
                }
            },
            (SERVICE_CLID, "subscribe_v2") => {
                let subscriber = call.call.argument(0, "subscriber").and_then(Reference::from_value);
                let service = call.call.argument(1, "service_name").and_then(Value::as_bytes);
                let info_ok = matches!(call.call.argument(2, "subscriber_info"), Some(Value::Dict(d)) if !d.is_empty());
                let (Some(subscriber), Some(service), true) = (subscriber, service, info_ok) else {
                    call.fail(violation("subscribe_v2(subscriber, service_name, subscriber_info)"))
                        .await;
                    return;
                };
                if service == b"storage" {
                    self.subscribe(connection, peer, subscriber.clid).await;
                }
                call.answer(Value::None).await;
            }
            (target, method) => {
                let why = format!("no method {method} on object {target}");
                call.fail(violation(&why)).await;
            }
        }
    }

    /// Section 5.5's publish rules; new or newer announcements go to every subscriber.
    fn publish(&self, announcement: Option<&Value>) -> Result<(), Failure> {
        let value_error = |why: &str| Failure::new("builtins.ValueError", why);
        let signed = SignedAnnouncement::from_value(announcement.ok_or_else(|| value_error("no announcement"))?)
            .map_err(|e| value_error(&e.to_string()))?;
        let ann = signed.verify().map_err(|e| match e {
            SignatureError::BadSignature => Failure::new("allmydata.crypto.error.BadSignature", ""),
            other => value_error(&other.to_string()),
        })?;
        let outcome = lock(&self.registry).offer(&signed.key_vs, ann, unix_now());
        if !matches!(outcome, Outcome::Added | Outcome::Replaced) {
            return Ok(());
        }
        lock(&self.signed).insert(signed.key_vs.clone(), signed.clone());
        let listeners: Vec<(Peer, i64)> = lock(&self.subscribers)
            .iter()
            .map(|s| (s.peer.clone(), s.clid))
            .collect();
        for (peer, clid) in listeners {
            let set = Value::Set(vec![signed.to_value()]);
            // Not awaited (as Tahoe's introducer): a slow subscriber slows no one else.
            tokio::spawn(async move {
                if let Err(e) = peer.call(clid, "announce_v2", vec![set], vec![]).await {
                    tracing::debug!("introducer: announce_v2 to {} failed: {e}", peer.tub_id());
                }
            });
        }
        Ok(())
    }

    /// Records a subscriber and sends it every announcement held, answering its subscribe only
    /// after it has answered those (so a subscriber knows the grid when its subscribe returns).
    async fn subscribe(&self, connection: u64, peer: &Peer, clid: i64) {
        {
            let mut subscribers = lock(&self.subscribers);
            if subscribers.iter().any(|s| s.connection == connection && s.clid == clid)
                || subscribers.len() >= MAX_SUBSCRIBERS
            {
                return;
            }
            subscribers.push(Subscriber {
                connection,
                peer: peer.clone(),
                clid,
            });
        }
        let all: Vec<Value> = lock(&self.signed).values().map(SignedAnnouncement::to_value).collect();
        if all.is_empty() {
            return;
        }
        let announcing = peer.call(clid, "announce_v2", vec![Value::Set(all)], vec![]);
        match tokio::time::timeout(ANNOUNCE_WAIT, announcing).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("introducer: announce_v2 to {} failed: {e}", peer.tub_id()),
            Err(_) => tracing::debug!("introducer: {} did not answer announce_v2", peer.tub_id()),
        }
    }
}
