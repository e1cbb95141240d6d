//! Webhook secrets at rest: XChaCha20-Poly1305 with a random nonce per value, the row id as
//! associated data (a ciphertext moved to another row does not decrypt).

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::config::Settings;
use crate::keys;

const KEY_FILE: &str = "secrets.key";
const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let key = match &settings.secrets_key {
            Some(text) => STANDARD.decode(text.trim()).context("secrets_key is not base64")?,
            None => keys::load_or_create(&settings.data_dir, KEY_FILE, 32)?,
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

#[cfg(test)]
mod tests {
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
}
