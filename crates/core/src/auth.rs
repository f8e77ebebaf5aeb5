//! API authentication: client secrets and the Bearer access tokens they are exchanged for.
//!
//! Access tokens are JWTs signed with HMAC-SHA256 (HS256) under a key derived from the master
//! key, so every node sharing the master key accepts every node's tokens without a lookup.
//! A token names its client's *token generation*, which rotating the client's secret moves on:
//! a token of an older generation (or of a deleted client) is revoked. Checking it is the
//! engine's (it knows the clients); the token only carries the number.
//!
//! They are written here by hand (thirty lines over `hmac` and `sha2`, which Wharf needs for
//! signatures anyway) rather than with `jsonwebtoken`, which would pull a second crypto backend.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::time::Timestamp;
use crate::{Error, crypto::MasterKey};

/// How long an access token is valid, as Port: three hours.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 10_800;

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What an access token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API client's id.
    pub sub: String,
    /// The organization the client belongs to.
    pub org: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The client's token generation when the token was issued (tokens issued before
    /// generations existed carry none: generation 0, every client's first).
    #[serde(rename = "gen", default)]
    pub generation: i64,
}

/// The key that signs access tokens.
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn derive(master: &MasterKey) -> Self {
        Self(master.derive(b"wharf/access-token/v1"))
    }

    /// Issues a token for `client_id` of `org_id` at its token `generation`, valid
    /// [`ACCESS_TOKEN_TTL_SECS`] from `now`.
    pub fn issue(&self, org_id: &str, client_id: &str, generation: i64, now: Timestamp) -> String {
        let iat = now.millis() / 1000;
        let claims =
            Claims { sub: client_id.to_owned(), org: org_id.to_owned(), iat, exp: iat + ACCESS_TOKEN_TTL_SECS, generation };
        // Serializing a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(JWT_HEADER), URL_SAFE_NO_PAD.encode(payload));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// Checks the signature (in constant time) and the expiry, and returns the claims.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, Error> {
        let invalid = || Error::unauthorized("the access token is invalid");
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        if !bool::from(self.mac(signing_input.as_bytes()).as_slice().ct_eq(&signature)) {
            return Err(invalid());
        }
        if URL_SAFE_NO_PAD.decode(header).ok().as_deref() != Some(JWT_HEADER.as_bytes()) {
            return Err(invalid());
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if claims.exp <= now.millis() / 1000 {
            return Err(Error::unauthorized("the access token has expired; request a new one from /v1/auth/access_token"));
        }
        Ok(claims)
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so a 32-byte key cannot be rejected.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// Access tokens already verified, with their claims: a client sends the same token with
/// every request for hours, and checking it (base64, the MAC, the claims' JSON) costs more
/// than the rest of authenticating it. A hit is only the exact token verified before, until
/// its expiry, so it says what [`TokenKey::verify`] would say.
///
/// Entries are found by a keyed hash of the token (no byte-by-byte comparison of a secret
/// that stops at the first difference) and then compared whole in constant time. At most
/// [`VerifiedTokens::CAPACITY`] are kept; when full, expired ones go, and if none has, all.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    hasher: std::hash::RandomState,
    entries: std::sync::RwLock<std::collections::HashMap<u64, (Box<str>, Claims)>>,
}

impl VerifiedTokens {
    pub const CAPACITY: usize = 4096;

    /// The claims of `token` if it was verified before and has not expired at `now`.
    pub fn get(&self, token: &str, now: Timestamp) -> Option<Claims> {
        let key = std::hash::BuildHasher::hash_one(&self.hasher, token);
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (known, claims) = entries.get(&key)?;
        let same: bool = known.as_bytes().ct_eq(token.as_bytes()).into();
        (same && claims.exp > now.millis() / 1000).then(|| claims.clone())
    }

    /// Remembers claims that [`TokenKey::verify`] returned for `token`.
    pub fn insert(&self, token: &str, claims: Claims, now: Timestamp) {
        let key = std::hash::BuildHasher::hash_one(&self.hasher, token);
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY {
            entries.retain(|_, (_, claims)| claims.exp > now.millis() / 1000);
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (token.into(), claims));
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The stored form of a client secret, for checking what a client presents.
///
/// Secrets are 64 random base62 characters, so a plain SHA-256 is enough: there is nothing
/// for a slow password hash to protect against.
pub fn hash_client_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret whose hash is `stored_hash`, compared in constant time.
pub fn client_secret_matches(presented: &str, stored_hash: &str) -> bool {
    hash_client_secret(presented).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::derive(&MasterKey::from_bytes([7; 32]))
    }

    #[test]
    fn issues_and_verifies() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let token = key().issue("org1", "client1", 0, now);
        let claims = key().verify(&token, now.plus_millis(1000)).unwrap();
        assert_eq!((claims.org.as_str(), claims.sub.as_str()), ("org1", "client1"));
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_TTL_SECS);
        assert_eq!(claims.generation, 0);
        let rotated = key().issue("org1", "client1", 3, now);
        assert_eq!(key().verify(&rotated, now).unwrap().generation, 3);
    }

    #[test]
    fn rejects_expired_tampered_and_foreign_tokens() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let token = key().issue("org1", "client1", 0, now);
        let later = now.plus_millis(ACCESS_TOKEN_TTL_SECS * 1000);
        assert!(key().verify(&token, later).unwrap_err().message.contains("expired"));
        let other = TokenKey::derive(&MasterKey::from_bytes([8; 32]));
        assert!(other.verify(&token, now).is_err());
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"client1","org":"org2","iat":0,"exp":9999999999}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert!(key().verify(&forged, now).is_err());
        assert!(key().verify("garbage", now).is_err());
    }

    #[test]
    fn verified_tokens_answer_only_for_the_same_token_until_it_expires() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let cache = VerifiedTokens::default();
        let token = key().issue("org1", "client1", 0, now);
        let claims = key().verify(&token, now).unwrap();
        assert_eq!(cache.get(&token, now), None);
        cache.insert(&token, claims.clone(), now);
        assert_eq!(cache.get(&token, now.plus_millis(1000)), Some(claims.clone()));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(cache.get(&tampered, now), None);
        let expiry = now.plus_millis(ACCESS_TOKEN_TTL_SECS * 1000);
        assert_eq!(cache.get(&token, expiry), None, "an expired token is not answered from the cache");
    }

    #[test]
    fn verified_tokens_stay_bounded() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let cache = VerifiedTokens::default();
        let claims = |exp| Claims { sub: "c".into(), org: "o".into(), iat: 0, exp, generation: 0 };
        for n in 0..VerifiedTokens::CAPACITY {
            cache.insert(&format!("expired-{n}"), claims(1), now);
        }
        cache.insert("live", claims(i64::MAX), now);
        assert_eq!(cache.len(), 1, "a full cache drops its expired tokens first");
        for n in 0..VerifiedTokens::CAPACITY {
            cache.insert(&format!("live-{n}"), claims(i64::MAX), now);
        }
        assert!(cache.len() <= VerifiedTokens::CAPACITY);
        assert!(cache.get(&format!("live-{}", VerifiedTokens::CAPACITY - 1), now).is_some());
    }

    #[test]
    fn secret_hashes_match_only_their_secret() {
        let hash = hash_client_secret("s3cret");
        assert!(client_secret_matches("s3cret", &hash));
        assert!(!client_secret_matches("s3cret!", &hash));
    }
}
