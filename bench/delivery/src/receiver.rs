//! The HTTPS webhook receiver: a private CA and a leaf certificate for 127.0.0.1 (rcgen),
//! rustls with ring, hyper HTTP/1.1 with keep-alive. Every request must carry a valid
//! `Nursa-Signature` for the secret registered for its path; a verified delivery is recorded
//! with its receipt time (first receipt per path and event id; later ones count as duplicates).
//!
//! Besides the healthy listener `start()` opens, `listen()` opens more on other ports (each its
//! own destination for the server) that misbehave as receivers do in production: answer 500,
//! fail an event's first attempt only, never answer, or accept TCP and never speak TLS.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Sha256;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub const SIGNATURE_HEADER: &str = "nursa-signature";
pub const EVENT_ID_HEADER: &str = "nursa-event-id";
/// A signature whose timestamp is further than this from now is refused (replay window).
const TOLERANCE_SECS: i64 = 300;
/// How long a hanging receiver holds a request (or a black hole a connection) at most: far
/// beyond any delivery timeout, yet bounded.
const HANG_BOUND: Duration = Duration::from_secs(120);

/// How a listener answers a request whose signature verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// 200 at once; the delivery counts as received.
    Healthy,
    /// 503 for the first attempt of each event on a path, 200 (received) for later ones.
    FailFirst,
    /// 500, always.
    Error500,
    /// Reads the request, then answers nothing (until HANG_BOUND, then 503).
    Hang,
    /// Accepts TCP connections and never starts TLS (the client's handshake times out).
    BlackHole,
}

#[derive(Default)]
pub struct Shared {
    /// Path → the secret that signs deliveries to it.
    secrets: RwLock<HashMap<String, Vec<u8>>>,
    /// "<path> <event id>" → time of the first verified receipt.
    receipts: Mutex<HashMap<String, Instant>>,
    /// Distinct verified (path, event id) pairs.
    pub verified: AtomicU64,
    /// Verified again: the same event id on the same path (at-least-once redelivery).
    pub duplicates: AtomicU64,
    /// Refused: no or unknown path, missing header, bad or stale signature.
    pub refused: AtomicU64,
    pub connections: AtomicU64,
    pub tls_errors: AtomicU64,
    /// The first few refusal reasons, for the report.
    pub refusal_samples: Mutex<Vec<String>>,
    /// "<path> <event id>" → signed requests seen, whatever was answered (every attempt).
    attempts: Mutex<HashMap<String, u32>>,
    /// A tarpit: reads each request (counted in `hung`) and never answers it.
    tarpit: bool,
    pub hung: AtomicU64,
}

impl Shared {
    pub fn register(&self, path: &str, secret: &str) {
        self.secrets.write().unwrap().insert(path.to_owned(), secret.as_bytes().to_vec());
    }

    /// When `event_id` was first verified on `path`.
    pub fn receipt(&self, path: &str, event_id: &str) -> Option<Instant> {
        self.receipts.lock().unwrap().get(&format!("{path} {event_id}")).copied()
    }

    /// How many verified requests (attempts) for `event_id` reached `path`.
    pub fn attempts(&self, path: &str, event_id: &str) -> u32 {
        self.attempts.lock().unwrap().get(&format!("{path} {event_id}")).copied().unwrap_or(0)
    }

    /// Counts one more verified attempt; returns how many there were, this one included.
    fn attempt(&self, path: &str, event_id: &str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap();
        let count = attempts.entry(format!("{path} {event_id}")).or_insert(0);
        *count += 1;
        *count
    }

    fn refuse(&self, why: String) -> Response<Full<Bytes>> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.refusal_samples.lock().unwrap();
        if samples.len() < 5 {
            samples.push(why);
        }
        answer(StatusCode::UNAUTHORIZED, "refused")
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub shared: Arc<Shared>,
    acceptor: TlsAcceptor,
}

impl Receiver {
    /// The receiver with its healthy listener at `addr`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Shared::default()).await
    }

    /// A receiver that accepts, completes the TLS handshake, reads every request and never
    /// answers: it holds each of the server's attempts for the server's whole delivery timeout.
    pub async fn start_tarpit() -> anyhow::Result<Self> {
        Self::start_with(Shared { tarpit: true, ..Default::default() }).await
    }

    async fn start_with(shared: Shared) -> anyhow::Result<Self> {
        let (ca_pem, tls) = tls_config()?;
        let shared = Arc::new(shared);
        let acceptor = TlsAcceptor::from(tls);
        let mut receiver = Self { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ca_pem, shared, acceptor };
        receiver.addr = receiver.listen(Behaviour::Healthy).await?;
        Ok(receiver)
    }

    /// Another listener on 127.0.0.1 (a port of its own: a destination of its own for the
    /// server), with the same certificate and records, answering as `behaviour` says.
    pub async fn listen(&self, behaviour: Behaviour) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the receiver")?;
        let addr = listener.local_addr()?;
        let (acceptor, state) = (self.acceptor.clone(), self.shared.clone());
        // Ends with the process (the runtime drops it).
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                state.connections.fetch_add(1, Ordering::Relaxed);
                if behaviour == Behaviour::BlackHole {
                    tokio::spawn(black_hole(tcp));
                } else {
                    tokio::spawn(connection(tcp, acceptor.clone(), state.clone(), behaviour));
                }
            }
        });
        Ok(addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }
}

/// Reads and drops whatever the client sends (its TLS ClientHello) until it gives up and
/// closes, or HANG_BOUND passes.
async fn black_hole(mut tcp: tokio::net::TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(HANG_BOUND, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    behaviour: Behaviour,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            shared.tls_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| handle(req, shared.clone(), behaviour));
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

fn answer(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    behaviour: Behaviour,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if shared.tarpit {
        let _ = req.into_body().collect().await;
        shared.hung.fetch_add(1, Ordering::Relaxed);
        // Until the server gives up and closes the connection (or the bench ends).
        return std::future::pending().await;
    }
    let path = req.uri().path().to_owned();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let signature = header(SIGNATURE_HEADER);
    let event_id = header(EVENT_ID_HEADER);
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(shared.refuse(format!("{path}: body cut short: {e}"))),
    };
    let secret = shared.secrets.read().unwrap().get(&path).cloned();
    let (Some(secret), Some(signature), Some(event_id)) = (secret, signature, event_id) else {
        return Ok(shared.refuse(format!("{path}: unknown path or missing Nursa-Signature / Nursa-Event-Id")));
    };
    if let Err(why) = verify(&secret, &signature, &body, unix_now()) {
        return Ok(shared.refuse(format!("{path} {event_id}: {why}")));
    }
    let attempt = shared.attempt(&path, &event_id);
    match behaviour {
        Behaviour::Healthy | Behaviour::BlackHole => {}
        Behaviour::FailFirst if attempt > 1 => {}
        Behaviour::FailFirst => return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, "first attempt fails")),
        Behaviour::Error500 => return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, "always fails")),
        Behaviour::Hang => {
            // The server gives up first and drops the connection, which drops this future.
            tokio::time::sleep(HANG_BOUND).await;
            return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, "hung"));
        }
    }
    let now = Instant::now();
    let first = {
        let mut receipts = shared.receipts.lock().unwrap();
        match receipts.entry(format!("{path} {event_id}")) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    };
    if first {
        shared.verified.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    Ok(answer(StatusCode::OK, "ok"))
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Checks `t=<unix>,v1=<hex>[,v1=<hex>]`: some v1 is HMAC-SHA256(secret, "<t>.<body>") and
/// `t` is within the tolerance of `now`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), String> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or("no t=")?;
    let t_num: i64 = t.parse().map_err(|_| format!("t={t} is not a number"))?;
    if (now - t_num).abs() > TOLERANCE_SECS {
        return Err(format!("t={t} is {}s away from now", now - t_num));
    }
    if candidates.is_empty() {
        return Err("no v1=".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    for candidate in candidates {
        if let Ok(bytes) = hex::decode(candidate) {
            if mac.clone().verify_slice(&bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err("no v1 matches".into())
}

/// What the server does: `t=<unix>,v1=<hex>` over `"<t>.<body>"` (the ceiling client signs so).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh CA and a leaf for 127.0.0.1 / localhost signed by it: (CA PEM, server config).
fn tls_config() -> anyhow::Result<(String, Arc<rustls::ServerConfig>)> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "delivery-bench receiver CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    // rcgen makes names that parse as IP addresses IP SANs.
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf_params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    // HTTP/1.1, like most webhook endpoints behind a load balancer.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let header = sign(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(verify(b"s3cret", &header, b"{\"a\":1}", 1_700_000_010).is_ok());
        assert!(verify(b"other", &header, b"{\"a\":1}", 1_700_000_010).is_err());
        assert!(verify(b"s3cret", &header, b"{\"a\":2}", 1_700_000_010).is_err());
        assert!(verify(b"s3cret", &header, b"{\"a\":1}", 1_700_001_000).is_err());
        let two = format!("{header},v1=00ff");
        assert!(verify(b"s3cret", &two, b"{\"a\":1}", 1_700_000_000).is_ok());
    }

    /// POSTs a delivery of `event` to `path` at `addr`, signed with `secret`: the status, or
    /// the error when there was no answer.
    async fn post(
        client: &reqwest::Client,
        addr: SocketAddr,
        path: &str,
        secret: &str,
        event: &str,
    ) -> Result<u16, reqwest::Error> {
        let body = b"{\"data\":{},\"eventType\":\"facility.creation.accepted\"}".to_vec();
        let response = client
            .post(format!("https://{addr}{path}"))
            .header(SIGNATURE_HEADER, sign(secret.as_bytes(), unix_now(), &body))
            .header(EVENT_ID_HEADER, event)
            .body(body)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    #[tokio::test]
    async fn each_listener_answers_as_its_behaviour_says() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let receiver = Receiver::start().await.unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(receiver.ca_pem.as_bytes()).unwrap())
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let shared = &receiver.shared;
        for path in ["/ok", "/first", "/500", "/hang", "/hole"] {
            shared.register(path, "secret-0123456789");
        }

        assert_eq!(post(&client, receiver.addr, "/ok", "secret-0123456789", "e1").await.unwrap(), 200);
        assert!(shared.receipt("/ok", "e1").is_some());
        assert_eq!(post(&client, receiver.addr, "/ok", "another-secret", "e2").await.unwrap(), 401);
        assert_eq!((shared.refused.load(Ordering::Relaxed), shared.attempts("/ok", "e2")), (1, 0));

        let first = receiver.listen(Behaviour::FailFirst).await.unwrap();
        assert_eq!(post(&client, first, "/first", "secret-0123456789", "e1").await.unwrap(), 503);
        assert!(shared.receipt("/first", "e1").is_none());
        assert_eq!(post(&client, first, "/first", "secret-0123456789", "e1").await.unwrap(), 200);
        assert!(shared.receipt("/first", "e1").is_some());
        assert_eq!(shared.attempts("/first", "e1"), 2);

        let error = receiver.listen(Behaviour::Error500).await.unwrap();
        for _ in 0..2 {
            assert_eq!(post(&client, error, "/500", "secret-0123456789", "e1").await.unwrap(), 500);
        }
        assert_eq!((shared.attempts("/500", "e1"), shared.receipt("/500", "e1")), (2, None));

        let hang = receiver.listen(Behaviour::Hang).await.unwrap();
        let hung = post(&client, hang, "/hang", "secret-0123456789", "e1").await.unwrap_err();
        assert!(hung.is_timeout(), "{hung}");
        assert_eq!(shared.attempts("/hang", "e1"), 1);

        let hole = receiver.listen(Behaviour::BlackHole).await.unwrap();
        let lost = post(&client, hole, "/hole", "secret-0123456789", "e1").await.unwrap_err();
        assert!(lost.is_timeout(), "{lost}");
        assert_eq!(shared.attempts("/hole", "e1"), 0);
        assert_eq!(shared.verified.load(Ordering::Relaxed), 2);
    }
}
