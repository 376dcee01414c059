//! The HTTPS storage server: Tahoe's HTTP storage protocol in front of a [`DiskServer`].
//!
//! Every request needs the swissnum (`Authorization: Tahoe-LAFS <base64>`); secrets come in
//! `X-Tahoe-Authorization` headers, exactly the set each route wants. Immutable shares are
//! complete (and closed on disk) when the last missing byte arrives, as the protocol has no
//! close call. Bad requests get 4xx answers; nothing a client sends stops the server.
//!
//! This file holds the listener and the routing; the routes live beside it by family.
//!
//! [`DiskServer`]: crate::grid::storage::disk::DiskServer

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use self::messages::{Answer, Refusal, cbor, full, respond, secrets};
use self::share_routes::Kind;
use super::wire;
use crate::grid::base32;
use crate::grid::storage::{ShareNum, StorageServer};
use crate::grid::uri::StorageIndex;

#[doc(hidden)]
pub mod fuzzing;
mod immutable_routes;
mod messages;
mod mutable_routes;
mod service;
mod share_routes;
#[cfg(test)]
mod tests;
mod upload_state;

pub use self::messages::Body;
pub use self::service::StorageService;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

impl StorageService {
    /// Answers one request; every failure is an HTTP status, never a dropped connection.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let authorized = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(&self.authorization)));
        if !authorized {
            return respond(
                StatusCode::UNAUTHORIZED,
                Some("text/plain"),
                full("Wrong Authorization header"),
            );
        }
        match self.route(request).await {
            Ok(response) => response,
            Err(Refusal(status, why)) if status.is_server_error() => {
                // The reason names paths and system errors: the log gets it, the client only
                // learns that the fault is ours.
                tracing::warn!(%status, "storage request failed: {why}");
                let generic = status.canonical_reason().unwrap_or("Server Error");
                respond(status, Some("text/plain"), full(generic))
            }
            Err(Refusal(status, why)) => respond(status, Some("text/plain"), full(why)),
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Answer {
        let not_found = || Refusal::new(StatusCode::NOT_FOUND, "no such resource");
        let path = request.uri().path().to_string();
        let rest = path.strip_prefix("/storage/v1/").ok_or_else(not_found)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let si = |text: &str| base32::decode_array::<16>(text).map(StorageIndex).ok_or_else(not_found);
        let shnum = |text: &str| {
            text.parse::<ShareNum>()
                .ok()
                .filter(|n| *n < 256 && text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(not_found)
        };
        // As Tahoe's server: a route that takes no secrets refuses any it is given (a client
        // sending one is confused about what it is asking, and a secret should not go where
        // it is not needed).
        let no_secrets = |headers: &HeaderMap| secrets(headers, &[]).map(drop);
        let method = request.method().clone();
        match (&method, parts.as_slice()) {
            (&Method::GET, ["version"]) => {
                no_secrets(request.headers())?;
                self.version().await
            }
            (&Method::PUT, ["lease", s]) => self.renew_lease(si(s)?, request.headers()).await,
            (&Method::POST, ["immutable", s]) => self.allocate(si(s)?, request).await,
            (&Method::PATCH, ["immutable", s, n]) => self.write(si(s)?, shnum(n)?, request).await,
            (&Method::PUT, ["immutable", s, n, "abort"]) => self.abort(si(s)?, shnum(n)?, request.headers()).await,
            (&Method::POST, [kind @ ("immutable" | "mutable"), s, n, "corrupt"]) => {
                let (si, n) = (si(s)?, shnum(n)?);
                no_secrets(request.headers())?;
                self.corrupt(Kind::of(kind), si, n, request).await
            }
            (&Method::GET, [kind @ ("immutable" | "mutable"), s, "shares"]) => {
                let si = si(s)?;
                no_secrets(request.headers())?;
                self.list(Kind::of(kind), si).await
            }
            (&Method::GET, [kind @ ("immutable" | "mutable"), s, n]) => {
                let (si, n) = (si(s)?, shnum(n)?);
                no_secrets(request.headers())?;
                self.read(Kind::of(kind), si, n, request.headers()).await
            }
            (&Method::POST, ["mutable", s, "read-test-write"]) => self.read_test_write(si(s)?, request).await,
            _ => Err(not_found()),
        }
    }

    async fn version(&self) -> Answer {
        let version = self.backend.version().await?;
        Ok(cbor(
            StatusCode::OK,
            &wire::version_body(&version, &self.application_version),
        ))
    }
}

/// Serves `service` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: Arc<StorageService>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("storage accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "storage TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "storage TLS handshake timed out");
                    return;
                }
            };
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), handler);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "storage connection ended: {e}");
            }
        });
    }
}
