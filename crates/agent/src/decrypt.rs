//! `fieldsToDecryptPaths`: values of the message that Port encrypted for the agent, decrypted
//! before the mapping runs (`app/utils.py`: `decrypt_field`, `decrypt_payload_fields`).
//!
//! Each value is `base64(IV (16 bytes) | ciphertext | GCM tag (16 bytes))`, sealed with
//! AES-256-GCM under the first 32 bytes of the client secret. A path is dotted, without a
//! leading dot; a segment that reads an array is its index (`items.0.token`). A value that is
//! missing or `null` is left alone; one that does not decrypt is left as it is, and the
//! failure is returned for the caller to log.

use serde_json::Value;
use wharf_core::agent::FieldCryptoError;

/// Why one value did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the value is {0}, not an encrypted string")]
    NotAString(&'static str),
    #[error(transparent)]
    Field(#[from] FieldCryptoError),
}

/// Decrypts the value at each of `paths` in `message` in place; returns the paths whose
/// value did not decrypt (left as they were), with why.
pub fn decrypt_paths(message: &mut Value, paths: &[String], key: &str) -> Vec<(String, DecryptError)> {
    let mut failures = Vec::new();
    for path in paths {
        let Some(slot) = at_path(message, path) else { continue };
        let decrypted = match &*slot {
            Value::Null => continue,
            // Port's format, which Wharf writes for secret inputs (core's `encrypt_field`).
            Value::String(encrypted) => wharf_core::agent::decrypt_field(key, encrypted).map_err(DecryptError::from),
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
