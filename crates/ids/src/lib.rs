//! New identifiers and secrets: the formats of `wharf_core::ids` fed with randomness and time.
//!
//! Core is pure (no I/O, no clock), yet a record needs a fresh id and a key needs fresh bytes
//! in every layer that makes them: the store (delivery ids in a fan-out), the engine, the api
//! (request ids) and the binary (the master key). This crate is that one place, below the
//! store, so each of them can call it and none of them reads the random source or the clock
//! for an id on its own.
//!
//! Two sources of randomness, by what the value guards: secrets (client secrets, ingest keys,
//! signing and master keys, nonces) come from the operating system on every call
//! ([`random_bytes`], [`random_base62`]); identifiers that must only be unique (events,
//! deliveries, attempts, changes, leases) come from a thread-local ChaCha generator seeded
//! from the operating system ([`id_base62`]), which costs no system call on the hot paths.
//!
//! Core types whose new values need randomness get it here through extension traits, so that a
//! caller writes `MasterKey::generate()`, `key.seal(text)` or `Change::new(…)` with
//! [`Fresh`], [`Seal`] or [`NewChange`] in scope.

use serde_json::Value;
use wharf_core::change::{Change, ResourceType, Trigger};
use wharf_core::crypto::{MasterKey, NONCE_BYTES};
use wharf_core::ids::{self, OrderedId};
use wharf_core::signing::{SECRET_BYTES, SigningSecret};

/// `n` random bytes from the operating system.
///
/// The OS random source failing is not a recoverable condition for a server that must mint
/// secrets, so this panics with a clear message rather than returning weak randomness.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source is unavailable");
    buf
}

/// `len` random base62 characters from the operating system, for secrets.
pub fn random_base62(len: usize) -> String {
    ids::base62(len, random_bytes::<32>)
}

/// `len` random base62 characters from the thread's ChaCha generator, for identifiers.
pub fn id_base62(len: usize) -> String {
    ids::base62(len, || {
        let mut buf = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
        buf
    })
}

/// A uniform number in [-1, 1] (the retry jitter), from the thread's generator.
pub fn unit_random() -> f64 {
    ids::unit_from_bits(rand::RngCore::next_u32(&mut rand::rng()))
}

/// A time-ordered id of `shape` made now (the clock's Unix milliseconds; 0 before 1970).
fn ordered_id(shape: OrderedId) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    ids::ordered_id_at(shape, millis, &id_base62(shape.random))
}

/// A new organization (or project) id: 24 lowercase hex characters.
pub fn new_object_id() -> String {
    ids::object_id(random_bytes())
}

/// A new API client id (public, 32 characters).
pub fn new_client_id() -> String {
    random_base62(ids::CLIENT_ID_CHARS)
}

/// A new API client secret (64 base62 characters, ≈380 bits).
pub fn new_client_secret() -> String {
    random_base62(ids::CLIENT_SECRET_CHARS)
}

/// A new audit entry (entity change) id.
pub fn new_change_id() -> String {
    ordered_id(ids::CHANGE_ID)
}

/// A new ingestion webhook's internal id (webhook events belong to it; never reused).
pub fn new_webhook_id() -> String {
    ids::webhook_id(&random_base62(ids::WEBHOOK_ID_CHARS))
}

/// A new webhook identifier, for ingestion webhooks created without one (at most 30 characters).
pub fn new_webhook_identifier() -> String {
    ids::webhook_identifier(&random_base62(ids::WEBHOOK_IDENTIFIER_CHARS))
}

/// A new ingest key: 40 base62 characters (≈238 bits). It is a capability when the webhook
/// has no secret, so it must not be guessable.
pub fn new_webhook_key() -> String {
    random_base62(ids::WEBHOOK_KEY_CHARS)
}

/// A new webhook event id.
pub fn new_webhook_event_id() -> String {
    ordered_id(ids::WEBHOOK_EVENT_ID)
}

/// A new published event id (also the `webhook-id` of its deliveries) when the publisher
/// gives none.
pub fn new_published_event_id() -> String {
    ordered_id(ids::PUBLISHED_EVENT_ID)
}

/// A new delivery id.
pub fn new_delivery_id() -> String {
    ordered_id(ids::DELIVERY_ID)
}

/// A new run id (`r_…`).
pub fn new_run_id() -> String {
    ordered_id(ids::RUN_ID)
}

/// A new workflow run id (`wfr_…`).
pub fn new_workflow_run_id() -> String {
    ordered_id(ids::WORKFLOW_RUN_ID)
}

/// A new workflow node run id (`wfnr_…`).
pub fn new_node_run_id() -> String {
    ordered_id(ids::NODE_RUN_ID)
}

/// A new workflow version id (`wfv_…`).
pub fn new_workflow_version_id() -> String {
    ordered_id(ids::WORKFLOW_VERSION_ID)
}

/// A new run log line id.
pub fn new_run_log_id() -> String {
    ordered_id(ids::RUN_LOG_ID)
}

/// A new delivery attempt id.
pub fn new_attempt_id() -> String {
    ordered_id(ids::ATTEMPT_ID)
}

/// A new entity identifier, for entities created without one.
pub fn new_entity_identifier() -> String {
    ids::entity_identifier(&id_base62(ids::ENTITY_IDENTIFIER_CHARS))
}

/// Keys made of fresh random bytes from the operating system.
pub trait Fresh {
    fn generate() -> Self;
}

impl Fresh for MasterKey {
    fn generate() -> Self {
        MasterKey::from_bytes(random_bytes())
    }
}

impl Fresh for SigningSecret {
    fn generate() -> Self {
        SigningSecret::from_bytes(random_bytes::<SECRET_BYTES>())
    }
}

/// Sealing with a fresh nonce from the operating system on every call.
pub trait Seal {
    /// Encrypts `plaintext`; the result is `base64(nonce ‖ ciphertext ‖ tag)`.
    fn seal(&self, plaintext: &str) -> String;
}

impl Seal for MasterKey {
    fn seal(&self, plaintext: &str) -> String {
        self.seal_with_nonce(random_bytes::<NONCE_BYTES>(), plaintext)
    }
}

/// A change with a new time-ordered id ([`new_change_id`]).
pub trait NewChange {
    /// A change of `resource_type` with the given versions before and after; the action
    /// follows from which versions exist.
    fn new(
        resource_type: ResourceType,
        blueprint: &str,
        entity: Option<&str>,
        trigger: &Trigger,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Self;
}

impl NewChange for Change {
    fn new(
        resource_type: ResourceType,
        blueprint: &str,
        entity: Option<&str>,
        trigger: &Trigger,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Self {
        Change::with_id(new_change_id(), resource_type, blueprint, entity, trigger, before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let org = new_object_id();
        assert!(ids::is_object_id(&org), "{org}");
        assert_eq!(org, org.to_lowercase());
        assert_eq!(new_client_secret().len(), 64);
        assert!(new_change_id().starts_with("chg_"));
        assert_ne!(new_client_id(), new_client_id());
        let delivery = new_delivery_id();
        assert!(delivery.starts_with("dlv_") && delivery[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{delivery}");
        assert_eq!(delivery.len(), 24);
        assert_ne!(new_delivery_id(), new_delivery_id());
        assert!(new_attempt_id().starts_with("atmpt_"));
        assert_eq!(new_published_event_id().len(), 4 + ids::TIME_DIGITS + 16);
        assert!(new_webhook_id().starts_with("wh_"));
        assert!(new_webhook_identifier().len() <= 30);
        assert_eq!(new_webhook_key().len(), 40);
        assert!(new_entity_identifier().starts_with("e_"));
        assert!((0..1000).map(|_| unit_random()).all(|u| (-1.0..=1.0).contains(&u)));
    }

    #[test]
    fn ids_made_now_sort_after_ids_made_before() {
        let now = new_delivery_id();
        let at = |millis| ids::ordered_id_at(ids::DELIVERY_ID, millis, "000000000000");
        assert!(now > at(1_700_000_000_000) && now < at(4_000_000_000_000), "{now}");
    }

    #[test]
    fn fresh_keys_differ_and_seal_with_fresh_nonces() {
        let key = MasterKey::generate();
        let a = key.seal("hunter2");
        assert_ne!(a, key.seal("hunter2"));
        assert_eq!(key.open(&a).unwrap(), "hunter2");
        assert!(MasterKey::generate().open(&a).is_err());
        assert_ne!(SigningSecret::generate(), SigningSecret::generate());
        let change = Change::new(
            ResourceType::Entity,
            "service",
            Some("api"),
            &Trigger::api("org", "test", wharf_core::time::Timestamp::from_millis(0)),
            None,
            None,
        );
        assert!(change.id.starts_with("chg_"), "{}", change.id);
    }
}
