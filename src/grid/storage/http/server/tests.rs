//! Tests of the storage server over loopback HTTPS: requests go through TLS, hyper and the
//! routing exactly as a Tahoe client's do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;

use super::immutable_routes::UPLOAD_IDLE_LIMIT;
use super::messages::{CBOR, Refusal};
use super::{StorageService, serve};
use crate::grid::spki;
use crate::grid::storage::disk::{DiskServer, MAX_READ_TEST_WRITE_ANSWER};
use crate::grid::storage::http::{tls, wire};
use crate::grid::storage::{Error, ShareNum, StorageServer, TestAndWrite};
use crate::grid::uri::StorageIndex;

const SWISSNUM: &str = "loopback-swissnum";

/// A storage server on 127.0.0.1:0 over a temporary directory, and a client pinned to its
/// certificate: requests go through TLS, hyper and the routing exactly as a Tahoe client's do.
struct Harness {
    base: String,
    addr: std::net::SocketAddr,
    pin: String,
    http: reqwest::Client,
    service: Arc<StorageService>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(DiskServer::open(dir.path(), "loopback").unwrap());
        let (certificate, key) = tls::parse_identity_pem(&tls::generate_identity_pem().unwrap()).unwrap();
        let pin = spki::certificate_spki_hash(&certificate).unwrap();
        let config = Arc::new(tls::server_config(certificate, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Arc::new(StorageService::new(backend, SWISSNUM));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, config, service.clone(), async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&pin).unwrap())
            .http1_only()
            .no_proxy()
            .build()
            .unwrap();
        Harness {
            base: format!("https://{addr}/storage/v1"),
            addr,
            pin,
            http,
            service,
            _stop: stop,
            _dir: dir,
        }
    }

    fn authorization() -> String {
        format!("Tahoe-LAFS {}", BASE64.encode(SWISSNUM))
    }

    fn request(&self, method: Method, path: &str, secrets: &[(&str, &[u8])]) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header(hyper::header::AUTHORIZATION, Self::authorization());
        for (kind, secret) in secrets {
            request = request.header("X-Tahoe-Authorization", format!("{kind} {}", BASE64.encode(secret)));
        }
        request
    }

    fn cbor_request(
        &self,
        method: Method,
        path: &str,
        secrets: &[(&str, &[u8])],
        body: &ciborium::value::Value,
    ) -> reqwest::RequestBuilder {
        self.request(method, path, secrets)
            .header(CONTENT_TYPE, CBOR)
            .body(wire::encode(body))
    }

    /// A TLS connection to the server, for requests sent a piece at a time.
    async fn raw_connection(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls::client_config(&self.pin).unwrap()));
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        connector.connect(name, tcp).await.unwrap()
    }

    async fn allocate(&self, si: StorageIndex, upload_secret: &[u8], size: u64) -> BTreeSet<ShareNum> {
        let secrets: [(&str, &[u8]); 3] = [
            ("lease-renew-secret", &[1; 32]),
            ("lease-cancel-secret", &[2; 32]),
            ("upload-secret", upload_secret),
        ];
        let body = wire::allocate_request(&[0].into(), size);
        let response = self
            .cbor_request(Method::POST, &format!("immutable/{si}"), &secrets, &body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = wire::decode(&response.bytes().await.unwrap()).unwrap();
        wire::parse_allocate_response(&body).unwrap().1
    }

    async fn patch(&self, si: StorageIndex, upload_secret: &[u8], data: &'static [u8]) -> StatusCode {
        let range = format!("bytes 0-{}/*", data.len() - 1);
        self.request(
            Method::PATCH,
            &format!("immutable/{si}/0"),
            &[("upload-secret", upload_secret)],
        )
        .header(CONTENT_RANGE, range)
        .body(data)
        .send()
        .await
        .unwrap()
        .status()
    }

    /// Waits until `count` holders share share 0's turn lock (a request that checked its
    /// upload secret holds one).
    async fn wait_for_turn_holders(&self, si: StorageIndex, count: usize) {
        let poll = async {
            loop {
                let holders = self.service.uploads().get(&(si, 0)).map(|u| Arc::strong_count(&u.turn));
                if holders >= Some(count) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        // Without the request holding the turn the test still runs on, and shows what happens.
        let _ = tokio::time::timeout(Duration::from_secs(5), poll).await;
    }

    async fn read_test_write(
        &self,
        si: StorageIndex,
        test_and_writes: &BTreeMap<ShareNum, TestAndWrite>,
        read_vector: &[(u64, u64)],
    ) -> reqwest::Response {
        let secrets: [(&str, &[u8]); 3] = [
            ("write-enabler", &[9; 32]),
            ("lease-renew-secret", &[1; 32]),
            ("lease-cancel-secret", &[2; 32]),
        ];
        let body = wire::read_test_write_request(test_and_writes, read_vector);
        self.cbor_request(Method::POST, &format!("mutable/{si}/read-test-write"), &secrets, &body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_read_test_write_answering_more_than_the_cap_is_a_bad_request() {
    let harness = Harness::start().await;
    let si = StorageIndex([3; 16]);
    let half = MAX_READ_TEST_WRITE_ANSWER / 2;
    // Two sparse shares of half the cap each.
    let grow = TestAndWrite {
        tests: vec![],
        writes: vec![(half - 1, b"z".to_vec())],
        new_length: None,
    };
    let shares = [(0, grow.clone()), (1, grow)].into();
    let created = harness.read_test_write(si, &shares, &[]).await;
    assert_eq!(created.status(), StatusCode::OK);
    let answered = harness.read_test_write(si, &BTreeMap::new(), &[(half - 4, 4)]).await;
    assert_eq!(answered.status(), StatusCode::OK);
    let body = wire::decode(&answered.bytes().await.unwrap()).unwrap();
    let result = wire::parse_read_test_write_response(&body).unwrap();
    assert_eq!(result.data[&1], vec![b"\0\0\0z".to_vec()]);
    let refused = harness
        .read_test_write(si, &BTreeMap::new(), &[(0, half), (half - 1, 1)])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_patch_whose_upload_was_replaced_while_its_body_arrived_writes_nothing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let harness = Harness::start().await;
    let si = StorageIndex([4; 16]);
    let (first, second) = ([1u8; 20], [2u8; 20]);
    assert_eq!(harness.allocate(si, &first, 10).await, [0].into());
    // The first uploader's PATCH: headers and half the body, the rest held back.
    let mut slow = harness.raw_connection().await;
    let head = format!(
        "PATCH /storage/v1/immutable/{si}/0 HTTP/1.1\r\nHost: storage\r\nAuthorization: {}\r\n\
         X-Tahoe-Authorization: upload-secret {}\r\nContent-Range: bytes 0-9/*\r\n\
         Content-Length: 10\r\nConnection: close\r\n\r\n01234",
        Harness::authorization(),
        BASE64.encode(first)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();
    harness.wait_for_turn_holders(si, 2).await;
    // Meanwhile the upload is aborted and another uploader allocates the share.
    let abort = harness
        .request(
            Method::PUT,
            &format!("immutable/{si}/0/abort"),
            &[("upload-secret", &first)],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(abort.status(), StatusCode::OK);
    assert_eq!(harness.allocate(si, &second, 10).await, [0].into());
    slow.write_all(b"56789").await.unwrap();
    slow.flush().await.unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 401") || answer.starts_with("HTTP/1.1 404"),
        "{answer}"
    );
    // The new upload is untouched: its own different bytes are no conflict.
    assert_eq!(harness.patch(si, &second, b"abcdefghij").await, StatusCode::CREATED);
    assert_eq!(
        harness.service.backend.read_share(si, 0, 0, 100).await.unwrap(),
        b"abcdefghij"
    );
}

#[tokio::test]
async fn an_abort_waiting_for_its_turn_does_not_abort_the_upload_that_replaced_its_own() {
    let harness = Harness::start().await;
    let si = StorageIndex([5; 16]);
    let (first, second) = ([1u8; 20], [2u8; 20]);
    assert_eq!(harness.allocate(si, &first, 10).await, [0].into());
    // Another request of the first upload holds the turn, so this abort waits for it.
    let turn = harness.service.uploads()[&(si, 0)].turn.clone();
    let held = turn.clone().lock_owned().await;
    let mut headers = HeaderMap::new();
    let secret = format!("upload-secret {}", BASE64.encode(first));
    headers.append("x-tahoe-authorization", HeaderValue::from_str(&secret).unwrap());
    let service = harness.service.clone();
    let waiting = tokio::spawn(async move {
        match service.abort(si, 0, &headers).await {
            Ok(response) => response.status(),
            Err(Refusal(status, _)) => status,
        }
    });
    // The map's, ours, the guard's and the waiting abort's.
    harness.wait_for_turn_holders(si, 4).await;
    // The holder is an abort of the same upload: it does what abort does under the turn.
    harness.service.uploads().remove(&(si, 0));
    harness.service.backend.abort_share(si, 0).await.unwrap();
    // A new allocation of the share takes its place before the waiting abort runs.
    assert_eq!(harness.allocate(si, &second, 10).await, [0].into());
    drop(held);
    let status = waiting.await.unwrap();
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    assert_eq!(harness.patch(si, &second, b"abcdefghij").await, StatusCode::CREATED);
}

#[tokio::test]
async fn an_idle_upload_is_not_dropped_while_a_request_holds_its_turn() {
    let harness = Harness::start().await;
    let si = StorageIndex([6; 16]);
    assert_eq!(harness.allocate(si, &[1; 20], 10).await, [0].into());
    let Some(long_ago) = Instant::now().checked_sub(UPLOAD_IDLE_LIMIT + Duration::from_secs(1)) else {
        // The monotonic clock started too recently to fake an idle upload.
        return;
    };
    let turn = {
        let mut uploads = harness.service.uploads();
        let upload = uploads.get_mut(&(si, 0)).unwrap();
        upload.last_write = long_ago;
        upload.turn.clone()
    };
    let held = turn.lock_owned().await;
    harness.service.drop_idle_uploads().await;
    assert!(harness.service.uploads().contains_key(&(si, 0)));
    drop(held);
    harness.service.drop_idle_uploads().await;
    assert!(!harness.service.uploads().contains_key(&(si, 0)));
    assert!(matches!(
        harness.service.backend.read_incoming(si, 0, 0, 1).await,
        Err(Error::NoSuchUpload)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_allocations_over_http_exactly_one_gets_the_share() {
    let harness = Harness::start().await;
    let si = StorageIndex([7; 16]);
    let secrets: Vec<[u8; 20]> = (1..=8).map(|n| [n; 20]).collect();
    let answers = futures::future::join_all(secrets.iter().map(|secret| harness.allocate(si, secret, 10))).await;
    let winners: Vec<_> = secrets
        .iter()
        .zip(&answers)
        .filter(|(_, allocated)| allocated.contains(&0))
        .map(|(secret, _)| *secret)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for loser in secrets.iter().filter(|s| **s != winners[0]) {
        assert_eq!(harness.patch(si, loser, b"0123456789").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(harness.patch(si, &winners[0], b"0123456789").await, StatusCode::CREATED);
}

#[tokio::test]
async fn the_immutable_read_route_answers_404_for_a_mutable_truncated_or_corrupt_share() {
    let harness = Harness::start().await;
    let get = |si: StorageIndex, range: Option<&'static str>| {
        let mut request = harness.request(Method::GET, &format!("immutable/{si}/0"), &[]);
        if let Some(range) = range {
            request = request.header(hyper::header::RANGE, range);
        }
        async move { request.send().await.unwrap().status() }
    };
    let mutable = StorageIndex([8; 16]);
    let create = TestAndWrite {
        tests: vec![],
        writes: vec![(0, b"a mutable share".to_vec())],
        new_length: None,
    };
    let created = harness.read_test_write(mutable, &[(0, create)].into(), &[]).await;
    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(get(mutable, None).await, StatusCode::NOT_FOUND);
    assert_eq!(get(mutable, Some("bytes=0-9")).await, StatusCode::NOT_FOUND);
    let as_mutable = harness.request(Method::GET, &format!("mutable/{mutable}/0"), &[]);
    assert_eq!(as_mutable.send().await.unwrap().status(), StatusCode::OK);

    let broken = |si: StorageIndex, bytes: &[u8]| {
        let dir = harness.service.backend.share_dir(si);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0"), bytes).unwrap();
    };
    let truncated = StorageIndex([9; 16]);
    broken(truncated, &[0, 0, 0, 2, 0]);
    assert_eq!(get(truncated, None).await, StatusCode::NOT_FOUND);
    assert_eq!(get(truncated, Some("bytes=0-9")).await, StatusCode::NOT_FOUND);
    // A version 2 header claiming 1000 leases, on a file with room for none.
    let corrupt = StorageIndex([10; 16]);
    broken(
        corrupt,
        &[0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0x03, 0xe8, b'd', b'a', b't', b'a'],
    );
    assert_eq!(get(corrupt, None).await, StatusCode::NOT_FOUND);
    assert_eq!(get(corrupt, Some("bytes=0-3")).await, StatusCode::NOT_FOUND);
    // The same bytes with the one lease they have room for are a share.
    let mut whole = vec![0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1, b'd', b'a', b't', b'a'];
    whole.extend_from_slice(&[0; 72]);
    let fine = StorageIndex([11; 16]);
    broken(fine, &whole);
    let response = harness
        .request(Method::GET, &format!("immutable/{fine}/0"), &[])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"data");
}

#[tokio::test]
async fn routes_that_take_no_secrets_refuse_any_given() {
    let harness = Harness::start().await;
    let si = StorageIndex([12; 16]);
    assert_eq!(harness.allocate(si, &[1; 20], 4).await, [0].into());
    assert_eq!(harness.patch(si, &[1; 20], b"data").await, StatusCode::CREATED);
    let create = TestAndWrite {
        tests: vec![],
        writes: vec![(0, b"mutable".to_vec())],
        new_length: None,
    };
    let created = harness.read_test_write(si, &[(1, create)].into(), &[]).await;
    assert_eq!(created.status(), StatusCode::OK);
    let corrupt = wire::corrupt_request("bad hash");
    let routes = [
        (Method::GET, "version".to_string(), None),
        (Method::GET, format!("immutable/{si}/shares"), None),
        (Method::GET, format!("mutable/{si}/shares"), None),
        (Method::GET, format!("immutable/{si}/0"), None),
        (Method::GET, format!("mutable/{si}/1"), None),
        (Method::POST, format!("immutable/{si}/0/corrupt"), Some(&corrupt)),
        (Method::POST, format!("mutable/{si}/1/corrupt"), Some(&corrupt)),
    ];
    let unexpected: [(&str, &[u8]); 1] = [("lease-renew-secret", &[1; 32])];
    for (method, path, body) in routes {
        for secrets in [&[][..], &unexpected[..]] {
            let request = match body {
                Some(body) => harness.cbor_request(method.clone(), &path, secrets, body),
                None => harness.request(method.clone(), &path, secrets),
            };
            let status = request.send().await.unwrap().status();
            if secrets.is_empty() {
                assert!(status.is_success(), "{method} {path}: {status}");
            } else {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} with a secret");
            }
        }
    }
}

#[tokio::test]
async fn a_server_error_answers_a_generic_body() {
    let harness = Harness::start().await;
    let si = StorageIndex([13; 16]);
    // A file where the storage index's directory should be: listing it fails on our side.
    let dir = harness.service.backend.share_dir(si);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let response = harness
        .request(Method::GET, &format!("immutable/{si}/shares"), &[])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    assert_eq!(body, "Internal Server Error");
    // Client errors still say what was wrong.
    let response = harness
        .request(
            Method::GET,
            &format!("immutable/{si}/shares"),
            &[("upload-secret", &[1; 20])],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("secrets"));
}
