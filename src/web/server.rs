//! The HTTP/1.1 server: the accept loop, and what every response gets (Tahoe's security
//! headers, refusal of cross-site writes, an access log line with caps censored).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::web::WebState;
use crate::web::body::{WebBody, full, respond};
use crate::web::errors::WebError;

/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `state` on `listener` until `shutdown` resolves (connections in progress are left
/// to finish on their own tasks).
pub async fn serve(listener: TcpListener, state: Arc<WebState>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("web accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), handler);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "web connection ended: {e}");
            }
        });
    }
}

/// Answers one request: every failure becomes Tahoe's error answer, never a dropped connection.
pub async fn handle(state: &WebState, request: Request<Incoming>) -> Response<WebBody> {
    let method = request.method().clone();
    let logged_path = censor(request.uri().path());
    let mut response = if let Some(refusal) = cross_site_write(&request) {
        refusal
    } else {
        match crate::web::routes::route(state, request).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    };
    tracing::info!(target: "lafs_gateway::web::access", "{method} {logged_path} {}", response.status().as_u16());
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The answer for `error`.
pub fn error_response(error: &WebError) -> Response<WebBody> {
    respond(error.status, error.content_type(), full(error.body()))
}

/// A state-changing request sent by a page of another site (a browser says so in
/// `Sec-Fetch-Site`, or with an `Origin` that is not this node) is refused: such a page could
/// otherwise make a browser change directories whose caps it learned. Tools (curl, the
/// `tahoe` CLI) send neither header.
fn cross_site_write(request: &Request<Incoming>) -> Option<Response<WebBody>> {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let headers = request.headers();
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let cross_site = match site {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => match (headers.get(hyper::header::ORIGIN), headers.get(hyper::header::HOST)) {
            (Some(origin), Some(host)) => {
                let origin = origin.to_str().unwrap_or("");
                let host = host.to_str().unwrap_or("");
                origin != "null" && origin.split_once("://").map(|(_, rest)| rest) != Some(host)
            }
            (Some(_), None) => true,
            (None, _) => false,
        },
    };
    cross_site.then(|| {
        respond(
            StatusCode::FORBIDDEN,
            "text/plain;charset=utf-8",
            full("cross-site requests may not change anything on this node"),
        )
    })
}

/// The path with every cap replaced by `[CENSORED]`, as Tahoe's access log writes it.
fn censor(path: &str) -> String {
    let mut segments: Vec<&str> = path.split('/').collect();
    for segment in segments.iter_mut() {
        let upper = segment.to_ascii_uppercase();
        if upper.starts_with("URI:") || upper.starts_with("URI%3A") {
            *segment = "[CENSORED]";
        }
    }
    let joined = segments.join("/");
    // Names below a cap are private too.
    match joined.find("[CENSORED]") {
        Some(at) => format!("{}[CENSORED]", &joined[..at]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::censor;

    #[test]
    fn caps_and_the_names_below_them_never_reach_the_log() {
        assert_eq!(censor("/uri/URI%3ADIR2%3Aabc%3Adef/secret.txt"), "/uri/[CENSORED]");
        assert_eq!(censor("/file/URI:CHK:a:b:3:10:5/@@named=/x"), "/file/[CENSORED]");
        assert_eq!(censor("/statistics"), "/statistics");
    }
}
