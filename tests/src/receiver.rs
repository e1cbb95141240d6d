//! An in-test HTTPS webhook receiver: what a subscriber's endpoint looks like to the delivery
//! worker, and what the tests inspect afterwards.
//!
//! At start it generates a throw-away CA and a leaf certificate for `localhost` and `127.0.0.1`
//! (rcgen), and serves HTTP/1.1 over TLS (tokio-rustls, ring provider) on `127.0.0.1:0`. Hand
//! [`Receiver::write_ca_file`] to the server's `--extra-ca-file` and [`Receiver::url`] as a
//! webhook URL (an IPv4 literal: the server's URL validator rejects `localhost`).
//!
//! It records every request (method, path, headers, raw body, arrival time, what it answered)
//! and answers according to its [`Mode`], which can be changed at any time. Which answer a
//! request gets: a per-path mode ([`Receiver::set_path_mode`]) if one is set for its path, else
//! the next scripted answer ([`Receiver::script`]) if any is left, else the global mode
//! ([`Receiver::set_mode`], [`Mode::Ok`] at start).
//!
//! Stopped by [`Receiver::shutdown`] or when dropped: the listener and every open connection
//! (including the ones held by [`Mode::Hang`]) are closed.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The body of a [`Mode::Ok`] answer.
pub const OK_BODY: &str = "ok";
/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `200`, `text/plain` body [`OK_BODY`].
    Ok,
    /// This status, `text/plain` body `status <code>`.
    Status(u16),
    /// Never answer; hold the connection open (until the client gives up or the receiver stops).
    Hang,
    /// Drop the connection without answering (after the request has been read and recorded).
    Close,
}

impl Mode {
    fn check(self) -> Self {
        if let Mode::Status(code) = self {
            assert!(StatusCode::from_u16(code).is_ok(), "Mode::Status({code}) is not an HTTP status code");
        }
        self
    }
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, …
    pub method: String,
    /// The path and query as sent, e.g. `/hooks/a?x=1`.
    pub path: String,
    /// Every header as received (names lower-case; repeated headers kept).
    pub headers: reqwest::header::HeaderMap,
    /// The raw body bytes (what a signature is computed over).
    pub body: Vec<u8>,
    /// When the whole request (head and body) had been read.
    pub received_at: Instant,
    /// What the receiver answered (or did instead of answering).
    pub answer: Mode,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header as `(lower-case name, value)` pairs, in received order per name.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect()
    }

    /// The body parsed as JSON. Panics (with the body) if it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as UTF-8 (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
struct Answers {
    mode: Mode,
    script: VecDeque<Mode>,
    by_path: HashMap<String, Mode>,
}

impl Answers {
    fn next(&mut self, path: &str) -> Mode {
        if let Some(mode) = self.by_path.get(path) {
            return *mode;
        }
        self.script.pop_front().unwrap_or(self.mode)
    }
}

struct Shared {
    answers: Mutex<Answers>,
    requests: Mutex<Vec<Recorded>>,
    /// The number of recorded requests, for [`Receiver::wait_for`].
    count: watch::Sender<usize>,
    tls_errors: Mutex<Vec<String>>,
    connections: Mutex<usize>,
}

/// Locks ignoring poisoning: a panicking test thread must not hide what was recorded.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running HTTPS receiver; see the module documentation.
pub struct Receiver {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    /// Dropping it stops the accept loop and every connection.
    stop: Option<watch::Sender<()>>,
    accept_task: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Generates the certificates and starts serving on `127.0.0.1:0`, answering [`Mode::Ok`].
    pub async fn start() -> Self {
        let (ca_pem, tls) = tls_config();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver: binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("receiver: local addr");
        let shared = Arc::new(Shared {
            answers: Mutex::new(Answers { mode: Mode::Ok, script: VecDeque::new(), by_path: HashMap::new() }),
            requests: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            tls_errors: Mutex::new(Vec::new()),
            connections: Mutex::new(0),
        });
        let (stop, stopped) = watch::channel(());
        let accept_task =
            tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), shared.clone(), stopped));
        Receiver { addr, ca_pem, shared, stop: Some(stop), accept_task: Some(accept_task) }
    }

    /// `https://127.0.0.1:PORT/<path>` (`path` with or without its leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!("https://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that issued the receiver's certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Writes [`Self::ca_pem`] to `dir/receiver-ca.pem` and returns that path.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("receiver-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("receiver: writing the CA file");
        path
    }

    /// The answer for every request from now on (unless a per-path mode or a script applies).
    pub fn set_mode(&self, mode: Mode) {
        lock(&self.shared.answers).mode = mode.check();
    }

    /// Queues answers given to the next requests, one each, before falling back to the global
    /// mode; e.g. `script([Mode::Status(500); 2])` = "the next two answer 500, then the mode".
    /// Appends to what is left of an earlier script.
    pub fn script(&self, answers: impl IntoIterator<Item = Mode>) {
        let mut a = lock(&self.shared.answers);
        a.script.extend(answers.into_iter().map(Mode::check));
    }

    /// The answer for requests to exactly `path` (path and query, with its leading `/`, as in
    /// [`Recorded::path`]), over the script and the global mode. `None` removes it.
    pub fn set_path_mode(&self, path: &str, mode: Option<Mode>) {
        let mut a = lock(&self.shared.answers);
        match mode {
            Some(mode) => a.by_path.insert(path.to_owned(), mode.check()),
            None => a.by_path.remove(path),
        };
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The requests recorded so far to exactly `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        lock(&self.shared.requests).iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until at least `n` requests are recorded or `timeout` passes, then returns every
    /// request recorded (check the length: it may be less than `n`, or more).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut count = self.shared.count.subscribe();
        let _ = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        self.requests()
    }

    /// Forgets the recorded requests (the count used by [`Self::wait_for`] restarts at 0).
    pub fn clear(&self) {
        let mut requests = lock(&self.shared.requests);
        requests.clear();
        self.shared.count.send_replace(0);
    }

    /// TLS handshakes that failed (e.g. the client does not trust the CA), as error texts.
    pub fn tls_errors(&self) -> Vec<String> {
        lock(&self.shared.tls_errors).clone()
    }

    /// The number of TCP connections accepted so far.
    pub fn connection_count(&self) -> usize {
        *lock(&self.shared.connections)
    }

    /// Stops accepting, closes every connection, and waits for the listener to be closed.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Dropping the sender wakes every `stopped.changed()`: the accept loop and the
        // connections end on their own.
        self.stop.take();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A fresh CA and a leaf for `localhost` / `127.0.0.1` signed by it: (CA PEM, server config).
fn tls_config() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().expect("receiver: CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("receiver: CA params");
    ca_params.distinguished_name.push(DnType::CommonName, "webhooks-e2e receiver test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).expect("receiver: self-signing the CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("receiver: leaf key");
    // rcgen turns names that parse as IP addresses into IP SANs.
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("receiver: leaf params");
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).expect("receiver: signing the leaf");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("receiver: TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("receiver: TLS certificate");
    // HTTP/1.1 only, whatever the client offers.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), Arc::new(config))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                *lock(&shared.connections) += 1;
                tokio::spawn(connection(tcp, acceptor.clone(), shared.clone(), stopped.clone()));
            }
        }
    }
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<()>,
) {
    let tls = tokio::select! {
        _ = stopped.changed() => return,
        tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match tls {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return lock(&shared.tls_errors).push(e.to_string()),
            Err(_) => return lock(&shared.tls_errors).push("TLS handshake timed out".to_owned()),
        },
    };
    // Set by a `Mode::Close` answer: drop the connection instead of answering.
    let close = Arc::new(Notify::new());
    let service = {
        let close = close.clone();
        hyper::service::service_fn(move |req| handle(shared.clone(), close.clone(), req))
    };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        _ = conn => {}
        _ = close.notified() => {}
        _ = stopped.changed() => {}
    }
    // Dropping `conn` here closes the socket without a TLS close_notify.
}

async fn handle(
    shared: Arc<Shared>,
    close: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // The client went away mid-body: nothing to record or answer.
        Err(_) => {
            close.notify_one();
            return Ok(plain(StatusCode::BAD_REQUEST, "incomplete body"));
        }
    };
    let received_at = Instant::now();
    let path =
        parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let answer = lock(&shared.answers).next(&path);
    {
        let mut requests = lock(&shared.requests);
        requests.push(Recorded {
            method: parts.method.as_str().to_owned(),
            path,
            headers: parts.headers,
            body,
            received_at,
            answer,
        });
        shared.count.send_replace(requests.len());
    }
    match answer {
        Mode::Ok => Ok(plain(StatusCode::OK, OK_BODY)),
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(plain(status, &format!("status {}", status.as_u16())))
        }
        Mode::Hang => std::future::pending().await,
        Mode::Close => {
            close.notify_one();
            std::future::pending().await
        }
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(receiver: &Receiver) -> reqwest::Client {
        crate::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(receiver.ca_pem().as_bytes()).expect("CA PEM");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(1))
            .build()
            .expect("client")
    }

    async fn post(
        client: &reqwest::Client,
        url: &str,
        body: &'static str,
    ) -> reqwest::Result<reqwest::Response> {
        client
            .post(url)
            .header("content-type", "application/json")
            .header("Nursa-Event-Id", "evt-1")
            .body(body)
            .send()
            .await
    }

    #[tokio::test]
    async fn records_and_answers_in_every_mode() {
        let receiver = Receiver::start().await;
        let client = client(&receiver);
        let url = receiver.url("/hooks/a");
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");

        // Ok
        let started = Instant::now();
        let response = post(&client, &url, r#"{"data":{},"eventType":"x"}"#).await.expect("Ok answer");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), OK_BODY);
        let got = receiver.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks/a"));
        assert_eq!(r.body, br#"{"data":{},"eventType":"x"}"#);
        assert_eq!(r.body_json()["eventType"], "x");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("nursa-event-id"), Some("evt-1"));
        assert!(r.header_pairs().contains(&("nursa-event-id".to_owned(), "evt-1".to_owned())));
        assert!(r.received_at >= started);
        assert_eq!(r.answer, Mode::Ok);

        // Status
        receiver.set_mode(Mode::Status(500));
        let response = post(&client, &url, "{}").await.expect("500 answer");
        assert_eq!(response.status(), 500);
        assert_eq!(response.text().await.unwrap(), "status 500");

        // Close: recorded, then the connection is dropped without an answer.
        receiver.set_mode(Mode::Close);
        let err = post(&client, &url, "{}").await.expect_err("Close drops the connection");
        assert!(!err.is_timeout(), "{err:?}");

        // Hang: the client's 1 s timeout fires.
        receiver.set_mode(Mode::Hang);
        let started = Instant::now();
        let err = post(&client, &url, "{}").await.expect_err("Hang never answers");
        assert!(err.is_timeout(), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(900));

        let got = receiver.wait_for(4, Duration::from_secs(5)).await;
        let answers: Vec<Mode> = got.iter().map(|r| r.answer).collect();
        assert_eq!(answers, [Mode::Ok, Mode::Status(500), Mode::Close, Mode::Hang]);
        assert!(receiver.tls_errors().is_empty(), "{:?}", receiver.tls_errors());
        receiver.shutdown().await;
    }

    #[tokio::test]
    async fn script_then_mode_and_path_modes() {
        let receiver = Receiver::start().await;
        let client = client(&receiver);
        receiver.script([Mode::Status(500), Mode::Status(503)]);
        receiver.set_path_mode("/other", Some(Mode::Status(404)));
        let mut statuses = Vec::new();
        for path in ["/a", "/other", "/a", "/a", "/other"] {
            statuses.push(post(&client, &receiver.url(path), "{}").await.unwrap().status().as_u16());
        }
        assert_eq!(statuses, [500, 404, 503, 200, 404]);
        assert_eq!(receiver.requests_to("/other").len(), 2);
        receiver.set_path_mode("/other", None);
        assert_eq!(post(&client, &receiver.url("other"), "{}").await.unwrap().status(), 200);

        receiver.clear();
        assert!(receiver.requests().is_empty());
        // Nothing arrives: wait_for gives up after its timeout and returns what it has.
        let started = Instant::now();
        assert!(receiver.wait_for(1, Duration::from_millis(200)).await.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn wait_for_wakes_on_arrival() {
        let receiver = Receiver::start().await;
        let client = client(&receiver);
        let url = receiver.url("/late");
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            post(&client, &url, "{}").await.map(|r| r.status().as_u16())
        });
        let started = Instant::now();
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(sender.await.unwrap().unwrap(), 200);
    }

    #[tokio::test]
    async fn an_untrusting_client_fails_the_handshake_and_the_ca_file_is_pem() {
        crate::install_crypto_provider();
        let receiver = Receiver::start().await;
        // Trusts an unrelated CA only.
        let other = Receiver::start().await;
        let wrong = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(other.ca_pem().as_bytes()).unwrap()])
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        assert!(post(&wrong, &receiver.url("/x"), "{}").await.is_err());
        assert!(receiver.requests().is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = receiver.write_ca_file(dir.path());
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert_eq!(pem, receiver.ca_pem());
        // The receiver's certificate also names localhost.
        let client = client(&receiver);
        let url = format!("https://localhost:{}/x", receiver.addr().port());
        assert_eq!(post(&client, &url, "{}").await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_client_that_merges_the_ca_file_with_the_platform_roots_trusts_it() {
        // What the server's delivery client does with `--extra-ca-file`.
        crate::install_crypto_provider();
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let pem = std::fs::read(receiver.write_ca_file(dir.path())).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .https_only(true)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let response = post(&client, &receiver.url("/merged"), "{}").await.expect("trusted");
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener_and_hanging_connections() {
        let receiver = Receiver::start().await;
        let client = client(&receiver);
        receiver.set_mode(Mode::Hang);
        let url = receiver.url("/h");
        let pending = tokio::spawn({
            let client = client.clone();
            let url = url.clone();
            async move { post(&client, &url, "{}").await }
        });
        receiver.wait_for(1, Duration::from_secs(5)).await;
        receiver.shutdown().await;
        let err = pending.await.unwrap().expect_err("the hanging request fails");
        assert!(!err.is_timeout(), "closed by the receiver, before the 1 s timeout: {err:?}");
        assert!(post(&client, &url, "{}").await.is_err(), "nothing listens any more");
    }
}
