//! Identifiers: their formats and how new ones are made.
//!
//! Organization ids are 24 lowercase hex characters (seed 004's shape, accepted in either case).
//! Other generated ids are a prefix and random base62 characters, as Port's `r_…` run ids.

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random bytes from the operating system.
///
/// The OS random source failing is not a recoverable condition for a server that must mint
/// secrets, so this panics with a clear message rather than returning weak randomness.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source is unavailable");
    buf
}

/// `len` random base62 characters (≈5.95 bits each), unbiased by rejection sampling.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes::<32>() {
            // 248 = 4 * 62: bytes at or above it would bias the first characters.
            if byte < 248 && out.len() < len {
                out.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
    }
    out
}

/// A new organization (or project) id: 24 lowercase hex characters.
pub fn new_object_id() -> String {
    hex::encode(random_bytes::<12>())
}

/// Whether `id` has the 24-hex shape of organization and project ids (either case).
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new API client id (public, 32 characters).
pub fn new_client_id() -> String {
    random_base62(32)
}

/// A new API client secret (64 base62 characters, ≈380 bits).
pub fn new_client_secret() -> String {
    random_base62(64)
}

/// A new audit entry (entity change) id.
pub fn new_change_id() -> String {
    format!("chg_{}", random_base62(16))
}

/// A new ingestion webhook's internal id (events belong to it; never reused).
pub fn new_webhook_id() -> String {
    format!("wh_{}", random_base62(20))
}

/// A new webhook identifier, for webhooks created without one (at most 30 characters).
pub fn new_webhook_identifier() -> String {
    format!("webhook-{}", random_base62(12))
}

/// A new ingest key: 40 base62 characters (≈238 bits). It is a capability when the webhook
/// has no secret, so it must not be guessable.
pub fn new_webhook_key() -> String {
    random_base62(40)
}

/// A new webhook event id.
pub fn new_webhook_event_id() -> String {
    format!("whe_{}", random_base62(20))
}

/// A new project event id (also the `webhook-id` of its deliveries) when the publisher gives
/// none.
pub fn new_project_event_id() -> String {
    format!("msg_{}", random_base62(24))
}

/// A new delivery id.
pub fn new_delivery_id() -> String {
    format!("dlv_{}", random_base62(20))
}

/// A new delivery attempt id.
pub fn new_attempt_id() -> String {
    format!("atmpt_{}", random_base62(20))
}

/// A new entity identifier, for entities created without one.
pub fn new_entity_identifier() -> String {
    format!("e_{}", random_base62(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let org = new_object_id();
        assert!(is_object_id(&org), "{org}");
        assert_eq!(org, org.to_lowercase());
        assert!(is_object_id("ABCDEFabcdef012345678901"));
        assert!(!is_object_id("abcdefabcdef01234567890"));
        assert!(!is_object_id("zbcdefabcdef012345678901"));
        assert_eq!(new_client_secret().len(), 64);
        assert!(new_change_id().starts_with("chg_"));
        assert_ne!(new_client_id(), new_client_id());
    }
}
