//! Signatures on what Wharf sends: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, `whsec_` secrets) for project subscriptions, and Port's
//! `X-Port-Timestamp`/`X-Port-Signature` for actions, automations and workflows.
//!
//! Both are HMAC-SHA256 over a string that ends with the body bytes exactly as sent. Written
//! here rather than taken from the `standardwebhooks` crate because that crate only signs
//! UTF-8 payloads, cannot sign with several keys at once (rotation), and pulls a third base64;
//! the crate is the oracle of the known-answer tests instead.

use base64::Engine;
use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a generated secret (Svix's default: 24).
pub const SECRET_BYTES: usize = 24;

/// How far a receiver's clock may be from a signature's timestamp (the libraries' default).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Base64 that accepts a secret with or without its `=` padding, ignoring stray low bits (the Python library's
/// behaviour; a secret copied without its padding still works).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD_ALPHABET,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true),
);

/// Why a secret or a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret is empty")]
    EmptySecret,
    #[error("the secret is not base64 (expected `whsec_` followed by base64)")]
    InvalidSecret,
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    InvalidTimestamp,
    #[error("the timestamp is too old")]
    TimestampTooOld,
    #[error("the timestamp is in the future")]
    TimestampTooNew,
    #[error("no signature matches")]
    InvalidSignature,
}

impl SignatureError {
    /// A stable code (the names the known-answer vectors use).
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptySecret => "empty_secret",
            Self::InvalidSecret => "invalid_secret",
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampTooNew => "timestamp_too_new",
            Self::InvalidSignature => "invalid_signature",
        }
    }
}

/// A Standard Webhooks signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(****)")
    }
}

impl SigningSecret {
    /// A secret of the given bytes (a new one: `wharf_ids::Fresh::generate`, from the OS).
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Self {
        Self(bytes.to_vec())
    }

    /// Reads `whsec_<base64>` (the prefix is optional; padding may be left out).
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        if encoded.is_empty() {
            return Err(SignatureError::EmptySecret);
        }
        let bytes = LENIENT.decode(encoded).map_err(|_| SignatureError::InvalidSecret)?;
        if bytes.is_empty() {
            return Err(SignatureError::EmptySecret);
        }
        Ok(Self(bytes))
    }

    /// The `whsec_…` form users configure their verifiers with.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(msg_id, timestamp, body)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = hmac(&self.0);
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Checks a Standard Webhooks request as a receiver would: the three headers (names in any
    /// case), the timestamp within `tolerance` seconds of `now` (`None`: not checked), and one
    /// of the space-separated `v1,` signatures, compared in constant time.
    pub fn verify<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: &[u8],
        now: i64,
        tolerance: Option<i64>,
    ) -> Result<(), SignatureError> {
        let (mut id, mut timestamp, mut signatures) = (None, None, None);
        for (name, value) in headers {
            match name.to_ascii_lowercase().as_str() {
                "webhook-id" => id = Some(value),
                "webhook-timestamp" => timestamp = Some(value),
                "webhook-signature" => signatures = Some(value),
                _ => {}
            }
        }
        let id = id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
        let timestamp = timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
        let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
        let timestamp: i64 = timestamp.trim().parse().map_err(|_| SignatureError::InvalidTimestamp)?;
        if let Some(tolerance) = tolerance {
            if timestamp < now - tolerance {
                return Err(SignatureError::TimestampTooOld);
            }
            if timestamp > now + tolerance {
                return Err(SignatureError::TimestampTooNew);
            }
        }
        let expected = self.mac(id, timestamp, body);
        let matches = signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .any(|given| bool::from(given.as_slice().ct_eq(&expected)));
        if matches { Ok(()) } else { Err(SignatureError::InvalidSignature) }
    }
}

/// Old keys a rotation keeps at most (Svix keeps 10).
pub const MAX_OLD_KEYS: usize = 10;

/// A subscription's keys: the current one, and old ones that still sign until they expire
/// (a rotation's grace period, so receivers can switch without losing a delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    pub current: SigningSecret,
    /// Old keys and the time (Unix ms) they stop signing.
    pub previous: Vec<(SigningSecret, i64)>,
}

impl KeyRing {
    pub fn new(current: SigningSecret) -> Self {
        Self { current, previous: Vec::new() }
    }

    /// Makes `next` the current key; the old one keeps signing until `now_ms + grace_ms`.
    /// A zero grace period revokes every old key at once (the way out after a leak).
    pub fn rotate(&mut self, next: SigningSecret, now_ms: i64, grace_ms: i64) {
        let old = std::mem::replace(&mut self.current, next);
        if grace_ms <= 0 {
            self.previous.clear();
            return;
        }
        self.previous.retain(|(_, until)| *until > now_ms);
        self.previous.insert(0, (old, now_ms.saturating_add(grace_ms)));
        self.previous.truncate(MAX_OLD_KEYS);
    }

    /// Every key that signs at `now_ms`: the current one first.
    pub fn signing_keys(&self, now_ms: i64) -> impl Iterator<Item = &SigningSecret> {
        std::iter::once(&self.current).chain(self.previous.iter().filter(move |(_, until)| *until > now_ms).map(|(k, _)| k))
    }

    /// The form that is sealed at rest: `whsec_current[ whsec_old@until_ms …]`.
    pub fn to_text(&self) -> String {
        let mut text = self.current.expose();
        for (key, until) in &self.previous {
            text.push_str(&format!(" {}@{until}", key.expose()));
        }
        text
    }

    /// Reads what [`KeyRing::to_text`] wrote.
    pub fn from_text(text: &str) -> Result<Self, SignatureError> {
        let mut parts = text.split(' ');
        let current = SigningSecret::parse(parts.next().unwrap_or_default())?;
        let previous = parts
            .map(|part| {
                let (key, until) = part.split_once('@').ok_or(SignatureError::InvalidSecret)?;
                Ok((SigningSecret::parse(key)?, until.parse().map_err(|_| SignatureError::InvalidSecret)?))
            })
            .collect::<Result<_, SignatureError>>()?;
        Ok(Self { current, previous })
    }
}

/// The `webhook-signature` value: one `v1,` signature per key, space-separated (during a
/// rotation's grace period both the new and the old keys sign).
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets.into_iter().map(|secret| secret.sign(msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Port's `X-Port-Signature`: `v1,<base64 HMAC-SHA256(key, "<timestamp>.<body>")>`, where the
/// key is the organization's client secret.
pub fn port_signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac(key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningSecret {
        SigningSecret::from_bytes([n; SECRET_BYTES])
    }

    #[test]
    fn secrets_round_trip() {
        let secret = key(1);
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        assert_ne!(key(2), secret);
        assert_eq!(format!("{secret:?}"), "SigningSecret(****)");
    }

    #[test]
    fn key_rings_rotate_and_expire() {
        let (a, b) = (key(1), key(2));
        let mut ring = KeyRing::new(a.clone());
        ring.rotate(b.clone(), 1_000, 500);
        assert_eq!(ring.signing_keys(1_400).collect::<Vec<_>>(), vec![&b, &a]);
        assert_eq!(ring.signing_keys(1_500).collect::<Vec<_>>(), vec![&b]);
        assert_eq!(KeyRing::from_text(&ring.to_text()).unwrap(), ring);
        ring.rotate(key(3), 1_100, 1_000);
        assert_eq!(ring.signing_keys(1_200).count(), 3, "both old keys sign during their grace periods");
        ring.rotate(key(4), 1_300, 0);
        assert!(ring.previous.is_empty(), "a zero grace period revokes every old key");
    }

    #[test]
    fn rotation_header_carries_every_key() {
        let (a, b) = (key(1), key(2));
        let header = signature_header([&a, &b], "msg_1", 10, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&a, &b] {
            let headers = [("webhook-id", "msg_1"), ("webhook-timestamp", "10"), ("webhook-signature", header.as_str())];
            assert_eq!(secret.verify(headers, b"{}", 10, Some(300)), Ok(()));
        }
    }
}
