//! `fieldsToDecryptPaths`: values of the message that Port encrypted for the agent, decrypted
//! before the mapping runs (`app/utils.py`: `decrypt_field`, `decrypt_payload_fields`).
//!
//! Each value is `base64(IV (16 bytes) | ciphertext | GCM tag (16 bytes))`, sealed with
//! AES-256-GCM under the first 32 bytes of the client secret. A path is dotted, without a
//! leading dot; a segment that reads an array is its index (`items.0.token`). A value that is
//! missing or `null` is left alone; one that does not decrypt is left as it is, and the
//! failure is returned for the caller to log.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// AES-256-GCM with Port's 16-byte IV.
type PortCipher = AesGcm<Aes256, U16>;

const IV_BYTES: usize = 16;
const TAG_BYTES: usize = 16;
const KEY_BYTES: usize = 32;

/// Why one value did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the value is {0}, not an encrypted string")]
    NotAString(&'static str),
    #[error("the value is not base64")]
    NotBase64,
    #[error("encrypted data is too short (under {} bytes)", IV_BYTES + TAG_BYTES)]
    TooShort,
    #[error("the encryption key (the client secret) must be at least {KEY_BYTES} bytes")]
    KeyTooShort,
    #[error("the value does not decrypt with this key: wrong key, or the data was altered")]
    Authentication,
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
}

/// Decrypts one value with `key` (the client secret; its first 32 bytes are the AES key).
pub fn decrypt_field(encrypted: &str, key: &str) -> Result<String, DecryptError> {
    let data = STANDARD.decode(encrypted.trim()).map_err(|_| DecryptError::NotBase64)?;
    if data.len() < IV_BYTES + TAG_BYTES {
        return Err(DecryptError::TooShort);
    }
    let key = key.as_bytes().get(..KEY_BYTES).ok_or(DecryptError::KeyTooShort)?;
    let cipher = PortCipher::new_from_slice(key).map_err(|_| DecryptError::KeyTooShort)?;
    let (iv, sealed) = data.split_at(IV_BYTES);
    let nonce: Nonce<U16> = Array::try_from(iv).map_err(|_| DecryptError::TooShort)?;
    // `sealed` is ciphertext followed by the tag, the layout aes-gcm expects.
    let plain = cipher.decrypt(&nonce, sealed).map_err(|_| DecryptError::Authentication)?;
    String::from_utf8(plain).map_err(|_| DecryptError::NotUtf8)
}

/// Decrypts the value at each of `paths` in `message` in place; returns the paths whose
/// value did not decrypt (left as they were), with why.
pub fn decrypt_paths(message: &mut Value, paths: &[String], key: &str) -> Vec<(String, DecryptError)> {
    let mut failures = Vec::new();
    for path in paths {
        let Some(slot) = at_path(message, path) else { continue };
        let decrypted = match &*slot {
            Value::Null => continue,
            Value::String(encrypted) => decrypt_field(encrypted, key),
            other => Err(DecryptError::NotAString(crate::message::type_name(other))),
        };
        match decrypted {
            Ok(plain) => *slot = Value::String(plain),
            Err(err) => failures.push((path.clone(), err)),
        }
    }
    failures
}

/// The value at a dotted path (glom's: an object's key, or an array's index), if there is one.
fn at_path<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(value, |value, segment| match value {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}
