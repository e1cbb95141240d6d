//! The HTTPS webhook receiver: a private CA and a leaf certificate for 127.0.0.1 (rcgen),
//! rustls with ring, hyper HTTP/1.1 with keep-alive. Every request must carry a valid
//! `Nursa-Signature` for the secret registered for its path; a verified delivery is recorded
//! with its receipt time (first receipt per path and event id; later ones count as duplicates).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub const SIGNATURE_HEADER: &str = "nursa-signature";
pub const EVENT_ID_HEADER: &str = "nursa-event-id";
/// A signature whose timestamp is further than this from now is refused (replay window).
const TOLERANCE_SECS: i64 = 300;

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
}

impl Receiver {
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
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the receiver")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(shared);
        let acceptor = TlsAcceptor::from(tls);
        let state = shared.clone();
        // Ends with the process (the runtime drops it).
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                state.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(tcp, acceptor.clone(), state.clone()));
            }
        });
        Ok(Self { addr, ca_pem, shared })
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            shared.tls_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
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

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Full<Bytes>>, Infallible> {
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
}
