//! Secrets at rest: sealed with XChaCha20-Poly1305 under the master key.
//!
//! The master key comes from `WHARF_MASTER_KEY` or a generated key file in the data directory;
//! nodes that share a PostgreSQL database must share it too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the nonce a sealed secret starts with (XChaCha20's 192 bits: safe to draw at random).
pub const NONCE_BYTES: usize = 24;

/// The 256-bit key everything secret is derived from.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(****)")
    }
}

/// Why a master key or a sealed secret could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 64 hex characters (32 bytes); got {0} characters")]
    MasterKeyFormat(usize),
    #[error("a sealed secret is corrupt or was sealed under another master key")]
    Unseal,
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// Reads the hex form written by [`MasterKey::to_hex`] (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = hex::decode(text).map_err(|_| CryptoError::MasterKeyFormat(text.len()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::MasterKeyFormat(text.len()))?;
        Ok(Self(bytes))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A sub-key for one purpose (HMAC-SHA256 of the purpose under the master key), so that a
    /// key used for tokens is never the key used for sealing.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so a 32-byte key cannot be rejected.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` under `nonce_bytes`, which must never repeat under this key (fresh
    /// random bytes: `wharf_ids::Seal::seal`); the result is `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal_with_nonce(&self, nonce_bytes: [u8; NONCE_BYTES], plaintext: &str) -> String {
        let cipher = self.cipher();
        let nonce = XNonce::from(nonce_bytes);
        // Encryption with a valid key and nonce only fails for plaintexts over 256 GiB.
        let ciphertext = cipher.encrypt(&nonce, plaintext.as_bytes()).expect("plaintext within AEAD limits");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }

    /// Decrypts what [`MasterKey::seal_with_nonce`] produced.
    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| CryptoError::Unseal)?;
        if bytes.len() < NONCE_BYTES {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| CryptoError::Unseal)?;
        let plaintext = self.cipher().decrypt(&XNonce::from(nonce), ciphertext).map_err(|_| CryptoError::Unseal)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::Unseal)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.derive(b"wharf/secret-box/v1").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_depends_on_the_nonce() {
        let key = MasterKey::from_bytes([1; 32]);
        let a = key.seal_with_nonce([2; NONCE_BYTES], "hunter2");
        assert_ne!(a, key.seal_with_nonce([3; NONCE_BYTES], "hunter2"));
        assert!(!a.contains("hunter2"));
        assert_eq!(key.open(&a).unwrap(), "hunter2");
        assert_eq!(MasterKey::from_bytes([4; 32]).open(&a), Err(CryptoError::Unseal));
        assert_eq!(key.open("AAAA"), Err(CryptoError::Unseal));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let key = MasterKey::from_bytes([0xa5; 32]);
        assert_eq!(MasterKey::from_hex(&format!("{}\n", key.to_hex())).unwrap().0, key.0);
        assert_eq!(MasterKey::from_hex("abcd").unwrap_err(), CryptoError::MasterKeyFormat(4));
    }
}
