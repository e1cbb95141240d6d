//! The HTTPS client deliveries use: rustls (ring), keep-alive pooling, the configured extra
//! CA, no redirects, no proxy, and a resolver that applies the SSRF guard to every resolved
//! address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard::TargetPolicy;
use super::signer::USER_AGENT;

#[derive(Clone)]
pub struct DeliveryHttp {
    pub client: reqwest::Client,
    pub policy: Arc<TargetPolicy>,
}

struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(e)) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

pub fn build_client(
    policy: TargetPolicy,
    extra_ca: Option<&Path>,
    connect_timeout: Duration,
    timeout: Duration,
) -> anyhow::Result<DeliveryHttp> {
    // reqwest is built without a default crypto provider: ring is the one we ship.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = Arc::new(policy);
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .https_only(true)
        // A proxy (`HTTPS_PROXY`, `ALL_PROXY` in the environment) would resolve the receiver's
        // name itself: the guarded resolver would only ever see the proxy's.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }));
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).with_context(|| format!("reading extra CA {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing extra CA {}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(DeliveryHttp { client: builder.build().context("building the delivery HTTP client")?, policy })
}
