//! Webhook secrets at rest: XChaCha20-Poly1305 with a random nonce per value, the row id as
//! associated data (a ciphertext moved to another row does not decrypt).

use anyhow::{anyhow, bail, Context};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use std::path::Path;

use crate::keys::{self, KeyLen};

const KEY_FILE: &str = "secrets.key";
/// XChaCha20-Poly1305 takes exactly this many key bytes.
pub const KEY_LEN: KeyLen = KeyLen::Exactly(32);
const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// The `configured` key (base64), or the one generated into `key_dir` on first use.
    pub fn load(configured: Option<&str>, key_dir: &Path) -> anyhow::Result<Self> {
        let key = match configured {
            Some(text) => decode_key(text)?,
            None => keys::load_or_create(key_dir, KEY_FILE, KEY_LEN)?,
        };
        Self::new(&key)
    }

    pub fn new(key: &[u8]) -> anyhow::Result<Self> {
        if key.len() != 32 {
            bail!("the secrets key must be 32 bytes, not {}", key.len());
        }
        Ok(Self { cipher: XChaCha20Poly1305::new_from_slice(key).map_err(|e| anyhow!("{e}"))? })
    }

    /// `nonce || ciphertext` of `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| anyhow!("encryption failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed value too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| anyhow!("sealed value does not open with this key (wrong key or tampered row)"))
    }
}

/// The configured secrets key (base64 of exactly 32 bytes).
pub fn decode_key(text: &str) -> anyhow::Result<Vec<u8>> {
    keys::decode(text, KEY_LEN).context("secrets_key (--secrets-key / WEBHOOKS_SECRETS_KEY)")
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;

    #[test]
    fn round_trips_and_refuses_other_rows_and_keys() {
        let sealer = SecretBox::new(&[7; 32]).unwrap();
        let sealed = sealer.seal(b"[\"s1\"]", b"row-1").unwrap();
        assert!(!sealed.windows(2).any(|w| w == b"s1"));
        assert_eq!(sealer.open(&sealed, b"row-1").unwrap(), b"[\"s1\"]");
        assert!(sealer.open(&sealed, b"row-2").is_err());
        assert!(SecretBox::new(&[8; 32]).unwrap().open(&sealed, b"row-1").is_err());
    }

    #[test]
    fn configured_keys_must_be_base64_of_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "  ", "not base64!", "AAAA", &STANDARD.encode([0u8; 33])] {
            let err =
                SecretBox::load(Some(bad), dir.path()).err().map(|e| format!("{e:#}")).unwrap_or_default();
            assert!(err.contains("secrets_key") && err.contains("openssl rand -base64 32"), "{bad:?}: {err}");
        }
        assert!(SecretBox::load(Some(&STANDARD.encode([9u8; 32])), dir.path()).is_ok());
        assert!(!dir.path().join(KEY_FILE).exists(), "a configured key generates no file");
    }
}
