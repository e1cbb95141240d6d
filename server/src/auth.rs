//! Bearer-token authentication and authorization.
//!
//! A token is a JWT: HS256 with the configured (or generated) secret, or RS256/ES256 with a
//! public key from a JWKS file, as an OpenID Connect provider issues them. `azp` (else
//! `client_id`) is the OAuth client; `sub` the user. Anything wrong with the token is 401;
//! a valid token whose `role` is not allowed or that lacks a required scope is 403.
//!
//! `exp` and `nbf` are checked with a leeway of [`LEEWAY_SECS`]; a configured issuer or
//! audience must be in the token (`aud` a string or an array of strings); a claim the server
//! reads that holds U+0000 makes the token invalid (no stored value can contain it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::http::{header, HeaderMap};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use webhooks::rt::Rejection;

use crate::keys::{self, KeyLen, MIN_HS256_SECRET};

const HS256_KEY_FILE: &str = "jwt-hs256.key";
/// The documented role of the Public API's users (claim `role`).
pub const DEFAULT_ALLOWED_ROLE: &str = "FACILITY_USER";

/// How tokens are verified (the server's settings build it; see `config.rs`).
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The HS256 secret; unset, one is generated into `key_dir` (unless a JWKS is given).
    pub jwt_secret: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub allowed_roles: Vec<String>,
    pub key_dir: PathBuf,
}

impl AuthOptions {
    /// HS256 with the key generated into `key_dir`, the default role, no issuer or audience.
    pub fn in_dir(key_dir: &Path) -> Self {
        Self {
            jwt_secret: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            allowed_roles: vec![DEFAULT_ALLOWED_ROLE.to_owned()],
            key_dir: key_dir.to_owned(),
        }
    }
}

/// The authenticated caller: webhooks belong to the pair (client, user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    pub user_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

impl Claims {
    /// Whether a claim the server reads holds U+0000.
    fn has_nul(&self) -> bool {
        [Some(&self.sub), self.azp.as_ref(), self.client_id.as_ref(), self.role.as_ref(), Some(&self.scope)]
            .into_iter()
            .flatten()
            .any(|value| value.contains('\0'))
    }
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

pub struct Authenticator {
    /// Tokens already verified, until they expire: a client sends the same token on every
    /// request, and checking a signature costs more than the rest of a rejected request.
    verified: Mutex<HashMap<String, Verified>>,
    hs256: Option<(EncodingKey, DecodingKey)>,
    /// RS256/ES256 keys by `kid`.
    jwks: HashMap<String, (Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    allowed_roles: Vec<String>,
}

/// What authorization needs from a verified token.
#[derive(Debug, Clone)]
struct Verified {
    client_id: String,
    user_id: String,
    role: Option<String>,
    scopes: Vec<String>,
    /// Unix seconds before which the token is refused (its `nbf` minus the leeway).
    valid_from: u64,
    /// Unix seconds after which the token is refused (its `exp` plus the leeway).
    valid_until: u64,
}

impl Verified {
    fn valid_at(&self, now: u64) -> bool {
        self.valid_from <= now && now <= self.valid_until
    }
}

/// Verified tokens kept at most; past it the cache starts over (cheap, and bounded).
const VERIFIED_CACHE: usize = 10_000;
/// Clock leeway for `exp` and `nbf`, in the verification and the cache alike.
pub const LEEWAY_SECS: u64 = 30;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl Authenticator {
    pub fn new(options: &AuthOptions) -> anyhow::Result<Self> {
        let jwks = match &options.jwks_file {
            None => HashMap::new(),
            Some(path) => load_jwks(path)?,
        };
        // With a JWKS and no explicit secret, only the provider's tokens are accepted.
        let secret = match (&options.jwt_secret, jwks.is_empty()) {
            (Some(secret), _) => {
                keys::check_hs256_secret(secret)?;
                Some(secret.as_bytes().to_vec())
            }
            (None, true) => Some(keys::load_or_create(
                &options.key_dir,
                HS256_KEY_FILE,
                KeyLen::AtLeast(MIN_HS256_SECRET),
            )?),
            (None, false) => None,
        };
        Ok(Self {
            verified: Mutex::new(HashMap::new()),
            hs256: secret.map(|s| (EncodingKey::from_secret(&s), DecodingKey::from_secret(&s))),
            jwks,
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
            allowed_roles: options.allowed_roles.clone(),
        })
    }

    /// Authenticates the request and checks role and scopes.
    pub fn authorize(&self, headers: &HeaderMap, required_scopes: &[&str]) -> Result<Principal, Rejection> {
        let token = bearer(headers).ok_or(Rejection::Unauthorized)?;
        let verified = match self.cached(token) {
            Some(verified) => verified,
            None => {
                let verified = self.verify_token(token).ok_or(Rejection::Unauthorized)?;
                if let Ok(mut cache) = self.verified.lock() {
                    if cache.len() >= VERIFIED_CACHE {
                        cache.clear();
                    }
                    cache.insert(token.to_owned(), verified.clone());
                }
                verified
            }
        };
        let role_allowed = verified.role.as_ref().is_some_and(|r| self.allowed_roles.contains(r));
        if !role_allowed || !required_scopes.iter().all(|s| verified.scopes.iter().any(|g| g == s)) {
            return Err(Rejection::Forbidden);
        }
        Ok(Principal { client_id: verified.client_id, user_id: verified.user_id })
    }

    /// A token verified before and not expired since.
    fn cached(&self, token: &str) -> Option<Verified> {
        let cache = self.verified.lock().ok()?;
        cache.get(token).filter(|v| v.valid_at(now_secs())).cloned()
    }

    fn verify_token(&self, token: &str) -> Option<Verified> {
        let claims = self.verify(token)?;
        if claims.has_nul() {
            return None;
        }
        let client_id = claims.azp.or(claims.client_id)?;
        if claims.sub.is_empty() || client_id.is_empty() {
            return None;
        }
        Some(Verified {
            client_id,
            user_id: claims.sub,
            role: claims.role,
            scopes: claims.scope.split_ascii_whitespace().map(str::to_owned).collect(),
            valid_from: claims.nbf.unwrap_or_default().saturating_sub(LEEWAY_SECS),
            valid_until: claims.exp.saturating_add(LEEWAY_SECS),
        })
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let (algorithm, key) = match header.alg {
            Algorithm::HS256 => (Algorithm::HS256, &self.hs256.as_ref()?.1),
            Algorithm::RS256 | Algorithm::ES256 => {
                let (algorithm, key) = match &header.kid {
                    Some(kid) => self.jwks.get(kid)?,
                    // Without a `kid`, a JWKS with a single key of that algorithm is unambiguous.
                    None => {
                        let mut candidates = self.jwks.values().filter(|(a, _)| *a == header.alg);
                        let only = candidates.next()?;
                        if candidates.next().is_some() {
                            return None;
                        }
                        only
                    }
                };
                if *algorithm != header.alg {
                    return None;
                }
                (*algorithm, key)
            }
            _ => return None,
        };
        jsonwebtoken::decode::<Claims>(token, key, &self.validation(algorithm)).ok().map(|data| data.claims)
    }

    /// jsonwebtoken compares `iss` and `aud` only when the token has them, unless they are
    /// required: a configured one is.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Mints an HS256 token this server accepts (the `token` command).
    pub fn mint(
        &self,
        client_id: &str,
        sub: &str,
        role: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let Some((key, _)) = &self.hs256 else {
            bail!("this server only accepts tokens from its JWKS; set --jwt-secret to mint local tokens");
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).context("clock before 1970")?.as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            azp: Some(client_id.to_owned()),
            client_id: None,
            role: Some(role.to_owned()),
            scope: scopes.join(" "),
            iat: now,
            exp: now + ttl.as_secs(),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)?)
    }
}

/// `Authorization: Bearer <token>`: scheme case-insensitive, exactly one space, one token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return None;
    }
    Some(token)
}

fn load_jwks(path: &std::path::Path) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading JWKS {}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).with_context(|| format!("parsing JWKS {}", path.display()))?;
    let mut keys = HashMap::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => bail!("JWKS {}: key {index} is neither RSA nor EC", path.display()),
        };
        let key =
            DecodingKey::from_jwk(jwk).with_context(|| format!("JWKS {}: key {index}", path.display()))?;
        let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{index}"));
        keys.insert(kid, (algorithm, key));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn authenticator(dir: &std::path::Path) -> Authenticator {
        Authenticator::new(&AuthOptions::in_dir(dir)).unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_principal() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let token = auth.mint("client-1", "user-1", "FACILITY_USER", &[], Duration::from_secs(60)).unwrap();
        let principal = auth.authorize(&headers(&format!("bEaReR {token}")), &[]).unwrap();
        assert_eq!(principal, Principal { client_id: "client-1".into(), user_id: "user-1".into() });
        // A second authenticator on the same data dir shares the generated key.
        assert!(authenticator(dir.path()).authorize(&headers(&format!("Bearer {token}")), &[]).is_ok());
    }

    #[test]
    fn expired_tokens_are_refused_even_after_being_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let (key, _) = auth.hs256.as_ref().unwrap();
        let claims = |exp: u64| Claims {
            sub: "u".into(),
            azp: Some("c".into()),
            client_id: None,
            role: Some("FACILITY_USER".into()),
            scope: String::new(),
            iat: exp.saturating_sub(3600),
            exp,
            nbf: None,
            iss: None,
            aud: None,
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(now_secs() - 120), key).unwrap();
        assert_eq!(auth.authorize(&headers(&format!("Bearer {expired}")), &[]), Err(Rejection::Unauthorized));

        // Accepted while fresh, then refused once the cached verification runs out.
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(now_secs() + 60), key).unwrap();
        assert!(auth.authorize(&headers(&format!("Bearer {token}")), &[]).is_ok());
        auth.verified.lock().unwrap().get_mut(&token).unwrap().valid_until = now_secs() - 1;
        assert!(auth.cached(&token).is_none(), "an expired cache entry is not used");
    }

    /// A throw-away P-256 key (made with `openssl ecparam -name prime256v1 -genkey`) and its
    /// public half as a JWK, as an OpenID Connect provider would publish it.
    const ES256_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyji5wUlx1cLDTfDM
G6nkIfqPN7AnIhmeJM/7K/zITh6hRANCAAT1JAJxuZ4QjtKPPdskEzZp37SE2Fr/
DveMy4yq5Xgb00drHWmlht1PbTFZGY1F0k7/GifFMudKol1iZkLI8dLu
-----END PRIVATE KEY-----
";
    const ES256_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"provider-key-1","use":"sig","alg":"ES256",
        "x":"9SQCcbmeEI7Sjz3bJBM2ad-0hNha_w73jMuMquV4G9M","y":"R2sdaaWG3U9tMVkZjUXSTv8aJ8Uy50qiXWJmQsjx0u4"}]}"#;

    #[test]
    fn provider_tokens_verify_against_the_jwks_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, ES256_JWKS).unwrap();
        let options = AuthOptions {
            jwks_file: Some(jwks),
            issuer: Some("https://idp.example".into()),
            ..AuthOptions::in_dir(dir.path())
        };
        let auth = Authenticator::new(&options).unwrap();
        let key = EncodingKey::from_ec_pem(ES256_PRIVATE_PEM.as_bytes()).unwrap();
        let claims = |iss: &str| Claims {
            sub: "user-1".into(),
            azp: Some("provider-client".into()),
            iss: Some(iss.into()),
            ..valid_claims()
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("provider-key-1".into());
        let token = jsonwebtoken::encode(&header, &claims("https://idp.example"), &key).unwrap();
        assert_eq!(
            auth.authorize(&headers(&format!("Bearer {token}")), &[]),
            Ok(Principal { client_id: "provider-client".into(), user_id: "user-1".into() })
        );
        let wrong_issuer = jsonwebtoken::encode(&header, &claims("https://evil.example"), &key).unwrap();
        assert_eq!(
            auth.authorize(&headers(&format!("Bearer {wrong_issuer}")), &[]),
            Err(Rejection::Unauthorized)
        );
        header.kid = Some("unknown-key".into());
        let unknown_kid = jsonwebtoken::encode(&header, &claims("https://idp.example"), &key).unwrap();
        assert_eq!(
            auth.authorize(&headers(&format!("Bearer {unknown_kid}")), &[]),
            Err(Rejection::Unauthorized)
        );
        // With a JWKS and no configured secret, locally minted HS256 tokens are not accepted.
        assert!(auth.mint("c", "u", "FACILITY_USER", &[], Duration::from_secs(60)).is_err());
    }

    #[test]
    fn bad_tokens_are_401_and_missing_rights_403() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let token = auth.mint("c", "u", "FACILITY_USER", &[], Duration::from_secs(60)).unwrap();
        for value in [
            String::new(),
            token.clone(),
            format!("Bearer  {token}"),
            "Bearer x.y.z".into(),
            format!("Basic {token}"),
        ] {
            assert_eq!(auth.authorize(&headers(&value), &[]), Err(Rejection::Unauthorized), "{value}");
        }
        let other = authenticator(tempfile::tempdir().unwrap().path())
            .mint("c", "u", "FACILITY_USER", &[], Duration::from_secs(60))
            .unwrap();
        assert_eq!(auth.authorize(&headers(&format!("Bearer {other}")), &[]), Err(Rejection::Unauthorized));

        let nurse = auth.mint("c", "u", "NURSE_USER", &[], Duration::from_secs(60)).unwrap();
        assert_eq!(auth.authorize(&headers(&format!("Bearer {nurse}")), &[]), Err(Rejection::Forbidden));
        assert_eq!(
            auth.authorize(&headers(&format!("Bearer {token}")), &["events:publish"]),
            Err(Rejection::Forbidden)
        );
        let publisher = auth
            .mint("c", "u", "FACILITY_USER", &["events:publish".into()], Duration::from_secs(60))
            .unwrap();
        assert!(auth.authorize(&headers(&format!("Bearer {publisher}")), &["events:publish"]).is_ok());
    }

    const ISSUER: &str = "https://issuer.example";
    const AUDIENCE: &str = "webhooks-api";

    /// Claims of a valid token for `c`/`u`; tests change what they are about.
    fn valid_claims() -> Claims {
        Claims {
            sub: "u".into(),
            azp: Some("c".into()),
            client_id: None,
            role: Some("FACILITY_USER".into()),
            scope: String::new(),
            iat: now_secs(),
            exp: now_secs() + 300,
            nbf: None,
            iss: None,
            aud: None,
        }
    }

    /// `claims` (any JSON) signed with the authenticator's HS256 key, as an `Authorization` value.
    fn signed(auth: &Authenticator, claims: &impl Serialize) -> HeaderMap {
        let (key, _) = auth.hs256.as_ref().unwrap();
        headers(&format!(
            "Bearer {}",
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key).unwrap()
        ))
    }

    fn with_issuer_and_audience(dir: &std::path::Path) -> Authenticator {
        let options = AuthOptions {
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ..AuthOptions::in_dir(dir)
        };
        Authenticator::new(&options).unwrap()
    }

    #[test]
    fn a_configured_issuer_and_audience_must_be_in_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let auth = with_issuer_and_audience(dir.path());
        let claims = |iss: Option<&str>, aud: Option<&str>| Claims {
            iss: iss.map(Into::into),
            aud: aud.map(|a| Audience::One(a.into())),
            ..valid_claims()
        };
        assert!(auth.authorize(&signed(&auth, &claims(Some(ISSUER), Some(AUDIENCE))), &[]).is_ok());
        for (iss, aud) in [
            (None, Some(AUDIENCE)),
            (Some(ISSUER), None),
            (None, None),
            (Some("https://other.example"), Some(AUDIENCE)),
            (Some(ISSUER), Some("other-api")),
        ] {
            assert_eq!(
                auth.authorize(&signed(&auth, &claims(iss, aud)), &[]),
                Err(Rejection::Unauthorized),
                "iss {iss:?}, aud {aud:?}"
            );
        }
        // Minted tokens carry what the server requires.
        let minted = auth.mint("c", "u", "FACILITY_USER", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.authorize(&headers(&format!("Bearer {minted}")), &[]).is_ok());

        // Without configuration, neither is needed nor compared.
        let open = authenticator(dir.path());
        assert!(open.authorize(&signed(&open, &claims(None, None)), &[]).is_ok());
        assert!(open
            .authorize(&signed(&open, &claims(Some("https://any.example"), Some("any"))), &[])
            .is_ok());
    }

    #[test]
    fn aud_may_be_one_string_or_an_array_of_strings() {
        let dir = tempfile::tempdir().unwrap();
        let auth = with_issuer_and_audience(dir.path());
        let claims = |aud: serde_json::Value| {
            let mut claims =
                serde_json::to_value(Claims { iss: Some(ISSUER.into()), ..valid_claims() }).unwrap();
            claims["aud"] = aud;
            claims
        };
        let verdict = |aud: serde_json::Value| auth.authorize(&signed(&auth, &claims(aud)), &[]).map(|_| ());
        assert_eq!(verdict(serde_json::json!(AUDIENCE)), Ok(()));
        assert_eq!(verdict(serde_json::json!([AUDIENCE])), Ok(()));
        assert_eq!(verdict(serde_json::json!(["account", AUDIENCE])), Ok(()));
        for wrong in
            [serde_json::json!(["account"]), serde_json::json!([]), serde_json::json!(["account", 7])]
        {
            assert_eq!(verdict(wrong.clone()), Err(Rejection::Unauthorized), "{wrong}");
        }
        // Without a configured audience, an array is no reason to refuse the token.
        let open = authenticator(dir.path());
        assert!(open.authorize(&signed(&open, &claims(serde_json::json!(["a", "b"]))), &[]).is_ok());
    }

    #[test]
    fn nbf_is_honoured_with_the_leeway() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let at = |nbf: u64| Claims { nbf: Some(nbf), ..valid_claims() };
        let now = now_secs();
        assert_eq!(auth.authorize(&signed(&auth, &at(now + 300)), &[]), Err(Rejection::Unauthorized));
        assert_eq!(
            auth.authorize(&signed(&auth, &at(now + LEEWAY_SECS + 60)), &[]),
            Err(Rejection::Unauthorized),
            "past the leeway"
        );
        assert!(auth.authorize(&signed(&auth, &at(now + LEEWAY_SECS / 2)), &[]).is_ok(), "within the leeway");
        assert!(auth.authorize(&signed(&auth, &at(now - 10)), &[]).is_ok());
        let mut garbled = serde_json::to_value(valid_claims()).unwrap();
        garbled["nbf"] = serde_json::json!("yesterday");
        assert_eq!(auth.authorize(&signed(&auth, &garbled), &[]), Err(Rejection::Unauthorized));
    }

    #[test]
    fn the_cache_does_not_accept_a_token_before_its_nbf() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let nbf = now_secs() + LEEWAY_SECS / 2;
        let headers = signed(&auth, &Claims { nbf: Some(nbf), ..valid_claims() });
        assert!(auth.authorize(&headers, &[]).is_ok());
        let token = bearer(&headers).unwrap().to_owned();
        assert_eq!(auth.verified.lock().unwrap()[&token].valid_from, nbf - LEEWAY_SECS);
        // As if the clock were set back: the entry is not yet valid, so it is not used.
        auth.verified.lock().unwrap().get_mut(&token).unwrap().valid_from = now_secs() + 60;
        assert!(auth.cached(&token).is_none(), "a cache entry before its nbf is not used");
    }

    #[test]
    fn a_nul_in_a_claim_the_server_reads_is_401() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let publisher = Claims { scope: "events:publish".into(), ..valid_claims() };
        assert!(auth.authorize(&signed(&auth, &publisher), &["events:publish"]).is_ok());
        let cases = [
            ("sub", Claims { sub: "u\0".into(), ..valid_claims() }),
            ("sub", Claims { sub: "\0".into(), ..valid_claims() }),
            ("azp", Claims { azp: Some("c\0x".into()), ..valid_claims() }),
            ("client_id", Claims { azp: None, client_id: Some("\0c".into()), ..valid_claims() }),
            ("unused client_id", Claims { client_id: Some("c\0".into()), ..valid_claims() }),
            ("role", Claims { role: Some("FACILITY_USER\0".into()), ..valid_claims() }),
            ("scope", Claims { scope: "events:publish \0".into(), ..valid_claims() }),
        ];
        for (claim, claims) in cases {
            assert_eq!(auth.authorize(&signed(&auth, &claims), &[]), Err(Rejection::Unauthorized), "{claim}");
        }
    }

    #[test]
    fn short_hs256_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = AuthOptions::in_dir(dir.path());
        for weak in ["", "secret", &"x".repeat(MIN_HS256_SECRET - 1)] {
            settings.jwt_secret = Some(weak.to_owned());
            let err = Authenticator::new(&settings).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("openssl rand -base64 32"), "{weak:?}: {err}");
        }
        // A JWKS does not make an empty secret harmless: it would still verify HS256 tokens.
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, ES256_JWKS).unwrap();
        settings.jwks_file = Some(jwks);
        settings.jwt_secret = Some(String::new());
        assert!(Authenticator::new(&settings).is_err());
        settings.jwt_secret = Some("x".repeat(MIN_HS256_SECRET));
        assert!(Authenticator::new(&settings).is_ok());
        assert!(!dir.path().join(HS256_KEY_FILE).exists(), "a configured secret generates no key file");
    }

    #[test]
    fn an_empty_key_file_is_an_error_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HS256_KEY_FILE), "").unwrap();
        let err = Authenticator::new(&AuthOptions::in_dir(dir.path())).err().unwrap();
        assert!(format!("{err:#}").contains(HS256_KEY_FILE), "{err:#}");
    }
}
