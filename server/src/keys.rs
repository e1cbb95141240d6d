//! Key material: generated once into the data directory, so a restarted server (and the
//! `token` command) uses the same keys, and checked wherever it comes from. A key that is
//! empty, short or unreadable is an error, never a key.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

/// How to make a good key, for every message about a bad one.
pub const KEY_HINT: &str = "make one with `openssl rand -base64 32`";

/// The shortest HS256 secret accepted: as long as the SHA-256 output (RFC 7518 §3.2), so the
/// secret is not the easy part to guess.
pub const MIN_HS256_SECRET: usize = 32;

/// What length a key must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLen {
    Exactly(usize),
    AtLeast(usize),
}

impl KeyLen {
    fn check(self, len: usize) -> anyhow::Result<()> {
        match self {
            KeyLen::Exactly(n) if len != n => bail!("is {len} bytes, not {n}; {KEY_HINT}"),
            KeyLen::AtLeast(n) if len < n => bail!("is {len} bytes, fewer than {n}; {KEY_HINT}"),
            _ => Ok(()),
        }
    }

    /// How many random bytes a generated key has.
    fn generated(self) -> usize {
        match self {
            KeyLen::Exactly(n) | KeyLen::AtLeast(n) => n,
        }
    }
}

/// An HS256 secret as given (its bytes are the key): refused when shorter than
/// [`MIN_HS256_SECRET`], empty included.
pub fn check_hs256_secret(secret: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_HS256_SECRET {
        bail!(
            "jwt_secret (--jwt-secret / WEBHOOKS_JWT_SECRET) is {} bytes; an HS256 secret needs at least \
             {MIN_HS256_SECRET}: {KEY_HINT}",
            secret.len()
        );
    }
    Ok(())
}

/// A base64 key of length `len` (surrounding whitespace ignored).
pub fn decode(text: &str, len: KeyLen) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() {
        bail!("is empty; {KEY_HINT}");
    }
    let key = STANDARD.decode(text).map_err(|_| anyhow!("is not base64; {KEY_HINT}"))?;
    len.check(key.len())?;
    Ok(key)
}

/// Reads the base64 key in `data_dir/name`, creating it with random bytes if absent. Processes
/// starting together on one data directory all end up with the same key: a new key is
/// published complete (written and synced under a temporary name, then linked to `name` only if
/// `name` does not exist yet), and whoever loses the race reads the winner's.
pub fn load_or_create(data_dir: &Path, name: &str, len: KeyLen) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Some(key) = read(&path, len)? {
        return Ok(key);
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut key = vec![0u8; len.generated()];
    rand::rng().fill_bytes(&mut key);
    let creating = || format!("creating the key file {}", path.display());
    // 0600 on Unix: tempfile creates its files readable by their owner only.
    let mut file =
        tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(data_dir).with_context(creating)?;
    file.write_all(STANDARD.encode(&key).as_bytes()).with_context(creating)?;
    file.as_file().sync_all().with_context(creating)?;
    match file.persist_noclobber(&path) {
        Ok(_) => {
            sync_dir(data_dir);
            Ok(key)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path, len)?.ok_or_else(|| anyhow!("the key file {} vanished while created", path.display()))
        }
        Err(e) => Err(e.error).with_context(creating),
    }
}

/// The key in `path`, `None` if there is no such file.
fn read(path: &Path, len: KeyLen) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode(&text, len).map(Some).with_context(|| format!("the key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the key file {}", path.display())),
    }
}

/// Makes the new directory entry durable; a failure only risks regenerating the key after a
/// power loss before any token or secret used it, so it is not an error.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: KeyLen = KeyLen::AtLeast(MIN_HS256_SECRET);

    #[test]
    fn a_generated_key_is_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(dir.path(), "k.key", JWT).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(load_or_create(dir.path(), "k.key", JWT).unwrap(), key);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["k.key"], "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("k.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Many starts at once on a fresh data directory: every one gets the same key. Repeated,
    /// since one round of a race proves little.
    #[test]
    fn racing_creators_all_get_the_same_key() {
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Barrier::new(16);
            let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..16)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            load_or_create(dir.path(), "race.key", JWT).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(keys[0].len(), 32, "round {round}");
            assert!(keys.iter().all(|k| *k == keys[0]), "round {round}: the racers got different keys");
            let stored = std::fs::read_to_string(dir.path().join("race.key")).unwrap();
            assert_eq!(STANDARD.decode(stored).unwrap(), keys[0], "round {round}");
        }
    }

    #[test]
    fn empty_short_or_garbled_key_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let short = STANDARD.encode([1u8; 16]);
        let long = STANDARD.encode([2u8; 48]);
        for (content, expected) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("not base64!", "not base64"),
            (short.as_str(), "16 bytes"),
        ] {
            std::fs::write(dir.path().join("bad.key"), content).unwrap();
            let err = load_or_create(dir.path(), "bad.key", JWT).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains(&dir.path().join("bad.key").display().to_string()), "{message}");
            assert!(message.contains(expected), "{content:?}: {message}");
            assert!(message.contains("openssl rand -base64 32"), "{message}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("bad.key")).unwrap(),
                content,
                "left as it was"
            );
        }
        // A secrets key is exactly 32 bytes; an HS256 key at least 32.
        std::fs::write(dir.path().join("long.key"), &long).unwrap();
        assert!(load_or_create(dir.path(), "long.key", KeyLen::Exactly(32)).is_err());
        assert_eq!(load_or_create(dir.path(), "long.key", JWT).unwrap(), [2u8; 48]);
    }

    #[test]
    fn hs256_secrets_need_32_bytes() {
        for weak in ["", "x", &"s".repeat(31)] {
            let err = check_hs256_secret(weak).unwrap_err().to_string();
            assert!(err.contains("at least 32") && err.contains("openssl rand -base64 32"), "{err}");
        }
        assert!(check_hs256_secret(&"s".repeat(32)).is_ok());
    }
}
