//! `Nursa-Signature: t=<unix>,v1=<hex>[,v1=<hex>]`: one HMAC-SHA256 per current secret over
//! `"<t>.<body>"`, so a receiver holding either secret during a rotation can verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Nursa-Signature";
/// Stable across retries: receivers deduplicate on it.
pub const EVENT_ID_HEADER: &str = "Nursa-Event-Id";
pub const USER_AGENT: &str = concat!("webhooks-server/", env!("CARGO_PKG_VERSION"));

pub fn signature_header(secrets: &[String], timestamp: u64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        // HMAC accepts keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}
