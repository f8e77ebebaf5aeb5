//! Identifiers: their formats and how new ones are made.
//!
//! Organization ids are 24 lowercase hex characters (seed 004's shape, accepted in either case).
//! Other generated ids are a prefix and random base62 characters, as Port's `r_…` run ids.
//!
//! Records made on the hot paths (events, deliveries, attempts, changes) get time-ordered ids,
//! as Svix's KSUID-based ones: the creation time in milliseconds, then random characters.
//! Ids made later sort later, so the unique indexes holding them grow at one end: a commit of
//! a hundred deliveries dirties a page or two of the id index, not a hundred random pages.
//!
//! Two sources of randomness, by what the value guards: secrets (client secrets, ingest keys,
//! signing and master keys, nonces) come from the operating system on every call
//! ([`random_bytes`], [`random_base62`]); identifiers that must only be unique (events,
//! deliveries, attempts, changes, leases) come from a thread-local ChaCha generator seeded
//! from the operating system ([`id_base62`]), which costs no system call on the hot paths.

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

/// `len` random base62 characters from the operating system, for secrets.
pub fn random_base62(len: usize) -> String {
    base62(len, random_bytes::<32>)
}

/// `len` random base62 characters from the thread's ChaCha generator, for identifiers.
pub fn id_base62(len: usize) -> String {
    base62(len, || {
        let mut buf = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
        buf
    })
}

/// Base62 digits of the millisecond clock in a time-ordered id: 62⁸ ms is about 6,900 years.
const TIME_DIGITS: usize = 8;

/// A time-ordered id: `prefix`, the current Unix time in milliseconds as [`TIME_DIGITS`]
/// base62 digits (the alphabet is in ASCII order, so the text sorts as the number), then
/// `random` random characters that keep ids made in the same millisecond apart.
fn ordered_id(prefix: &str, random: usize) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    ordered_id_at(prefix, millis, random)
}

fn ordered_id_at(prefix: &str, millis: u128, random: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + TIME_DIGITS + random);
    id.push_str(prefix);
    let mut digits = [0u8; TIME_DIGITS];
    let mut rest = millis;
    for digit in digits.iter_mut().rev() {
        // `rest % 62` is below 62, a valid index.
        *digit = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    id.extend(digits.iter().map(|&d| d as char));
    id.push_str(&id_base62(random));
    id
}

/// `len` base62 characters (≈5.95 bits each) from `bytes`, unbiased by rejection sampling.
fn base62(len: usize, mut bytes: impl FnMut() -> [u8; 32]) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in bytes() {
            // 248 = 4 * 62: bytes at or above it would bias the first characters.
            if byte < 248 && out.len() < len {
                out.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
    }
    out
}

/// A uniform number in [-1, 1] (the retry jitter), from the thread's generator.
pub fn unit_random() -> f64 {
    let bits = rand::RngCore::next_u32(&mut rand::rng());
    f64::from(bits) / f64::from(u32::MAX) * 2.0 - 1.0
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
    ordered_id("chg_", 12)
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
    ordered_id("whe_", 12)
}

/// A new project event id (also the `webhook-id` of its deliveries) when the publisher gives
/// none.
pub fn new_project_event_id() -> String {
    ordered_id("msg_", 16)
}

/// A new delivery id.
pub fn new_delivery_id() -> String {
    ordered_id("dlv_", 12)
}

/// A new delivery attempt id.
pub fn new_attempt_id() -> String {
    ordered_id("atmpt_", 12)
}

/// A new entity identifier, for entities created without one.
pub fn new_entity_identifier() -> String {
    format!("e_{}", id_base62(16))
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
        let delivery = new_delivery_id();
        assert!(delivery.starts_with("dlv_") && delivery[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{delivery}");
        assert_eq!(delivery.len(), 24);
        assert_ne!(new_delivery_id(), new_delivery_id());
        assert!((0..1000).map(|_| unit_random()).all(|u| (-1.0..=1.0).contains(&u)));
    }

    #[test]
    fn ordered_ids_sort_by_time() {
        let at = |millis| ordered_id_at("dlv_", millis, 12);
        assert_eq!(&at(0)[..12], "dlv_00000000");
        assert_eq!(&at(61)[..12], "dlv_0000000z");
        assert_eq!(&at(62)[..12], "dlv_00000010");
        let times = [0, 1, 61, 62, 3_843, 1_700_000_000_000, 1_800_000_000_123, 62u128.pow(8) - 1];
        let ids: Vec<String> = times.iter().map(|&t| at(t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let now = new_delivery_id();
        assert!(now > at(1_700_000_000_000) && now < at(4_000_000_000_000), "{now}");
    }
}
