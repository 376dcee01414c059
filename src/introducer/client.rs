//! The introducer client (shell): connects to an introducer's fURL, publishes this node's
//! announcement if it has one, subscribes to `storage`, verifies and keeps what it is told
//! (the [`Registry`]) and saves it to Tahoe's cache file after each change; reconnects with
//! backoff while it runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::cache;
use super::registry::{Outcome, Registry};
use super::signed::{SignatureError, SignedAnnouncement};
use crate::foolscap::banana::Value;
use crate::foolscap::call::{Failure, Reference};
use crate::foolscap::connection::{ConnectionError, IncomingCall, Peer, Tub};
use crate::foolscap::furl::Furl;

/// The introducer service's RemoteInterface name.
pub const PUBLISHER_INTERFACE: &str = "RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com";
/// The subscriber's RemoteInterface name (Tahoe checks it on `subscribe_v2`).
pub const SUBSCRIBER_INTERFACE: &str = "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com";
/// The key a v2 introducer's `get_version` answer must hold.
pub const V2_PROTOCOL: &str = "http://allmydata.org/tahoe/protocols/introducer/v2";
/// Our subscriber object's clid.
const SUBSCRIBER_CLID: i64 = 1;
/// Our canary's clid (never called).
const CANARY_CLID: i64 = 2;
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a session with an introducer ended.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or closed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The peer is not a v2 introducer.
    #[error("not a Tahoe v2 introducer")]
    NotIntroducer,
}

/// What `lafs status` and the grid see of one introducer.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    /// The servers it announced (or the cache held).
    pub registry: Registry,
    /// Whether a session is up.
    pub connected: bool,
    /// Why the last session ended or failed.
    pub last_error: Option<String>,
}

/// One introducer this node subscribes (and maybe publishes) to.
pub struct IntroducerClient {
    /// Its petname in `introducers.yaml`.
    pub petname: String,
    furl: Furl,
    cache_path: PathBuf,
    nickname: String,
    publish: Option<SignedAnnouncement>,
    state: Mutex<ClientState>,
    /// Set by [`IntroducerClient::run`]: a long-running client writes its status file.
    writes_status: AtomicBool,
}

impl std::fmt::Debug for IntroducerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntroducerClient({} at {})", self.petname, self.furl.tub_id)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl IntroducerClient {
    /// A client for introducer `petname` at `furl`, starting from the servers in its cache.
    pub fn new(
        dir: &std::path::Path,
        petname: &str,
        furl: Furl,
        nickname: &str,
        publish: Option<SignedAnnouncement>,
    ) -> IntroducerClient {
        let cache_path = cache::cache_path(dir, petname);
        let registry = cache::load(&cache_path, unix_now()).unwrap_or_else(|e| {
            tracing::warn!("ignoring the introducer cache: {e}");
            Registry::default()
        });
        IntroducerClient {
            petname: petname.to_string(),
            furl,
            cache_path,
            nickname: nickname.to_string(),
            publish,
            state: Mutex::new(ClientState {
                registry,
                ..ClientState::default()
            }),
            writes_status: AtomicBool::new(false),
        }
    }

    /// Writes `private/introducer_<petname>_status.json` (for `lafs status`) if this client
    /// runs in `lafs run`.
    fn save_status(&self) {
        if !self.writes_status.load(Ordering::Relaxed) {
            return;
        }
        let status = {
            let state = self.lock();
            super::status::StatusFile::of(&self.furl.tub_id, &state, unix_now())
        };
        let path = super::status::status_path(
            self.cache_path.parent().unwrap_or(std::path::Path::new(".")),
            &self.petname,
        );
        if let Err(e) = status.save(&path) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// A copy of what it knows now.
    pub fn state(&self) -> ClientState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One session: connect, publish, subscribe; with `until_subscribed` it ends (closing the
    /// connection) once the introducer has answered the subscription, which a Tahoe introducer
    /// does only after it has sent every announcement it holds; otherwise it lasts until the
    /// connection closes.
    pub async fn session(&self, tub: &Tub, until_subscribed: bool) -> Result<(), ClientError> {
        let (peer, calls) = tub.dial(&self.furl).await?;
        let result = tokio::select! {
            result = self.talk(&peer, until_subscribed) => result,
            () = self.serve_calls(calls) => Err(ConnectionError::Closed.into()),
        };
        peer.close();
        {
            let mut state = self.lock();
            state.connected = false;
            if let Err(e) = &result {
                state.last_error = Some(e.to_string());
            }
        }
        self.save_status();
        result
    }

    async fn talk(&self, peer: &Peer, until_subscribed: bool) -> Result<(), ClientError> {
        let name = vec![("name".to_string(), Value::bytes(&self.furl.swissnum))];
        let service = peer.call(0, "getReferenceByName", vec![], name).await?;
        let service = Reference::from_value(&service).ok_or(ClientError::NotIntroducer)?.clid;
        let version = peer.call(service, "get_version", vec![], vec![]).await?;
        if version.get(V2_PROTOCOL).is_none() {
            return Err(ClientError::NotIntroducer);
        }
        {
            let mut state = self.lock();
            state.connected = true;
            state.last_error = None;
        }
        tracing::info!(introducer = %self.petname, "connected to the introducer");
        self.save_status();
        let publish = async {
            let Some(announcement) = &self.publish else {
                return Ok(());
            };
            let canary = Reference {
                clid: CANARY_CLID,
                interface: Some(String::new()),
                furl: None,
            };
            let arguments = vec![announcement.to_value(), canary.to_value()];
            peer.call(service, "publish_v2", arguments, vec![]).await.map(|_| ())
        };
        let subscriber = Reference {
            clid: SUBSCRIBER_CLID,
            interface: Some(SUBSCRIBER_INTERFACE.into()),
            furl: None,
        };
        let text = |t: &str| Value::Text(t.to_string());
        let info = Value::Dict(vec![
            (Value::bytes("app-versions"), Value::List(vec![])),
            (
                Value::bytes("my-version"),
                text(&format!("lafs-gateway/{}", env!("CARGO_PKG_VERSION"))),
            ),
            (Value::bytes("nickname"), text(&self.nickname)),
            (Value::bytes("oldest-supported"), text("1.0.0")),
            (Value::bytes("version"), Value::Int(0)),
        ]);
        let arguments = vec![subscriber.to_value(), Value::bytes("storage"), info];
        let subscribe = peer.call(service, "subscribe_v2", arguments, vec![]);
        let (published, subscribed) = tokio::join!(publish, subscribe);
        published?;
        subscribed?;
        if !until_subscribed {
            peer.closed().await;
        }
        Ok(())
    }

    async fn serve_calls(&self, mut calls: mpsc::Receiver<IncomingCall>) {
        while let Some(call) = calls.recv().await {
            if call.call.target == SUBSCRIBER_CLID && call.call.method == "announce_v2" {
                match self.take_announcements(call.call.argument(0, "announcements")) {
                    Ok(()) => call.answer(Value::None).await,
                    Err(why) => {
                        tracing::warn!(introducer = %self.petname, "refusing an announce_v2 call: {why}");
                        call.fail(Failure::new("foolscap.tokens.Violation", &why)).await;
                    }
                }
            } else {
                let why = format!("no method {} on object {}", call.call.method, call.call.target);
                call.fail(Failure::new("foolscap.tokens.Violation", &why)).await;
            }
        }
    }

    /// Verifies and keeps a set of announcements. A bad signature skips that one; a malformed
    /// one fails the whole call, as Tahoe's client does.
    fn take_announcements(&self, announcements: Option<&Value>) -> Result<(), String> {
        let Some(Value::Set(items)) = announcements else {
            return Err("announce_v2 takes a set".into());
        };
        let mut verified = Vec::new();
        for item in items {
            let signed = SignedAnnouncement::from_value(item).map_err(|e| e.to_string())?;
            match signed.verify() {
                Ok(ann) => verified.push((signed.key_vs, ann)),
                Err(e @ (SignatureError::BadSignature | SignatureError::NotJson)) => {
                    tracing::warn!(introducer = %self.petname, server = %signed.key_vs, "skipping an announcement: {e}");
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let now = unix_now();
        let mut changed = false;
        let registry = {
            let mut state = self.lock();
            for (key, ann) in verified {
                let outcome = state.registry.offer(&key, ann, now);
                tracing::debug!(introducer = %self.petname, server = %key, "announcement: {outcome:?}");
                changed |= matches!(outcome, Outcome::Added | Outcome::Replaced);
            }
            state.registry.clone()
        };
        if changed {
            // A few KB written once per change; not worth a thread hop for correctness, but
            // kept off the runtime's hot path by the caller being one connection's task.
            if let Err(e) = cache::save(&self.cache_path, &registry) {
                tracing::warn!("cannot save the introducer cache: {e}");
            }
        }
        self.save_status();
        Ok(())
    }

    /// Keeps a session up until `shutdown`, reconnecting with backoff (1 s doubling to 60 s).
    pub async fn run(self: Arc<Self>, tub: Arc<Tub>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        self.writes_status.store(true, Ordering::Relaxed);
        let mut backoff = Duration::from_secs(1);
        loop {
            let began = std::time::Instant::now();
            let ended = tokio::select! {
                ended = self.session(&tub, false) => ended,
                () = &mut shutdown => return,
            };
            if let Err(e) = ended {
                tracing::warn!(introducer = %self.petname, "introducer connection: {e}");
            }
            if began.elapsed() > MAX_BACKOFF {
                backoff = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = &mut shutdown => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
