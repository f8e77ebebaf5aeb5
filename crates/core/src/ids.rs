//! Identifiers: their formats, as pure functions of the randomness and time given to them.
//!
//! Organization ids are 24 lowercase hex characters (seed 004's shape, accepted in either case).
//! Other generated ids are a prefix and random base62 characters, as Port's `r_…` run ids.
//!
//! Records made on the hot paths (events, deliveries, attempts, changes) get time-ordered ids,
//! as Svix's KSUID-based ones: the creation time in milliseconds, then random characters.
//! Ids made later sort later, so the unique indexes holding them grow at one end: a commit of
//! a hundred deliveries dirties a page or two of the id index, not a hundred random pages.
//!
//! Architecture Invariant: core reads neither the random source nor the clock. New ids and
//! secrets are made by `wharf-ids` (crates/ids), which feeds these functions the operating
//! system's randomness (secrets), a thread-local ChaCha generator (identifiers) and the clock.

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 digits of the millisecond clock in a time-ordered id: 62⁸ ms is about 6,900 years.
pub const TIME_DIGITS: usize = 8;

/// The shape of a time-ordered id: a prefix and how many random characters follow the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderedId {
    pub prefix: &'static str,
    pub random: usize,
}

/// Audit entries (entity changes): `chg_…`.
pub const CHANGE_ID: OrderedId = OrderedId { prefix: "chg_", random: 12 };
/// Webhook events (ingested requests): `whe_…`.
pub const WEBHOOK_EVENT_ID: OrderedId = OrderedId { prefix: "whe_", random: 12 };
/// Published events when the publisher gives none (also the `webhook-id` of their deliveries).
pub const PUBLISHED_EVENT_ID: OrderedId = OrderedId { prefix: "msg_", random: 16 };
/// Deliveries: `dlv_…`.
pub const DELIVERY_ID: OrderedId = OrderedId { prefix: "dlv_", random: 12 };
/// Runs: `r_…`, sixteen characters after the prefix, as Port's (`r_QOz6WoOB1Q2lmhZZ`).
pub const RUN_ID: OrderedId = OrderedId { prefix: "r_", random: 8 };
/// A workflow run (reference §4.6: `wfr_…`).
pub const WORKFLOW_RUN_ID: OrderedId = OrderedId { prefix: "wfr_", random: 12 };
/// A workflow node run (`wfnr_…`).
pub const NODE_RUN_ID: OrderedId = OrderedId { prefix: "wfnr_", random: 12 };
/// A saved version of a workflow.
pub const WORKFLOW_VERSION_ID: OrderedId = OrderedId { prefix: "wfv_", random: 8 };
/// Run log lines: `rlog_…`.
pub const RUN_LOG_ID: OrderedId = OrderedId { prefix: "rlog_", random: 12 };
/// Attempts (of deliveries and of run requests): `atmpt_…`.
pub const ATTEMPT_ID: OrderedId = OrderedId { prefix: "atmpt_", random: 12 };

/// Random base62 characters in an ingestion webhook's internal id (`wh_…`).
pub const WEBHOOK_ID_CHARS: usize = 20;
/// Random base62 characters in a generated webhook identifier (`webhook-…`, at most 30 characters).
pub const WEBHOOK_IDENTIFIER_CHARS: usize = 12;
/// Random base62 characters in an ingest key (≈238 bits: a capability when the webhook has no secret).
pub const WEBHOOK_KEY_CHARS: usize = 40;
/// Random base62 characters in an API client id (public).
pub const CLIENT_ID_CHARS: usize = 32;
/// Random base62 characters in an API client secret (≈380 bits).
pub const CLIENT_SECRET_CHARS: usize = 64;
/// Random base62 characters in a generated entity identifier (`e_…`).
pub const ENTITY_IDENTIFIER_CHARS: usize = 16;
/// Random bytes in an organization or project id (24 hex characters).
pub const OBJECT_ID_BYTES: usize = 12;

/// A time-ordered id: `shape.prefix`, `millis` (Unix time in milliseconds) as [`TIME_DIGITS`]
/// base62 digits (the alphabet is in ASCII order, so the text sorts as the number), then
/// `random` (the characters that keep ids made in the same millisecond apart, `shape.random`
/// of them from [`base62`]).
pub fn ordered_id_at(shape: OrderedId, millis: u128, random: &str) -> String {
    let mut id = String::with_capacity(shape.prefix.len() + TIME_DIGITS + random.len());
    id.push_str(shape.prefix);
    let mut digits = [0u8; TIME_DIGITS];
    let mut rest = millis;
    for digit in digits.iter_mut().rev() {
        // `rest % 62` is below 62, a valid index.
        *digit = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    id.extend(digits.iter().map(|&d| d as char));
    id.push_str(random);
    id
}

/// `len` base62 characters (≈5.95 bits each) from the random blocks `bytes` returns, unbiased
/// by rejection sampling.
pub fn base62(len: usize, mut bytes: impl FnMut() -> [u8; 32]) -> String {
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

/// A uniform number in [-1, 1] (the retry jitter) from 32 random bits.
pub fn unit_from_bits(bits: u32) -> f64 {
    f64::from(bits) / f64::from(u32::MAX) * 2.0 - 1.0
}

/// An organization (or project) id from its random bytes: 24 lowercase hex characters.
pub fn object_id(bytes: [u8; OBJECT_ID_BYTES]) -> String {
    hex::encode(bytes)
}

/// Whether `id` has the 24-hex shape of organization and project ids (either case).
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An ingestion webhook's internal id from its random characters (events belong to it; never reused).
pub fn webhook_id(random: &str) -> String {
    format!("wh_{random}")
}

/// A webhook identifier from its random characters, for webhooks created without one.
pub fn webhook_identifier(random: &str) -> String {
    format!("webhook-{random}")
}

/// An entity identifier from its random characters, for entities created without one.
pub fn entity_identifier(random: &str) -> String {
    format!("e_{random}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_object_id(&object_id([0xab; 12])));
        assert_eq!(object_id([0xab; 12]), "abababababababababababab");
        assert!(is_object_id("ABCDEFabcdef012345678901"));
        assert!(!is_object_id("abcdefabcdef01234567890"));
        assert!(!is_object_id("zbcdefabcdef012345678901"));
        let mut n = 0u8;
        let counting = || {
            n = n.wrapping_add(1);
            [n; 32]
        };
        assert_eq!(base62(40, counting), "1111111111111111111111111111111122222222");
        // Bytes at or above 248 are skipped, so a source of them alone is never used.
        let mut calls = 0;
        let text = base62(3, || {
            calls += 1;
            if calls == 1 { [255; 32] } else { [61; 32] }
        });
        assert_eq!(text, "zzz");
        assert_eq!(unit_from_bits(0), -1.0);
        assert_eq!(unit_from_bits(u32::MAX), 1.0);
        assert_eq!(webhook_id("x"), "wh_x");
        assert_eq!(webhook_identifier("x"), "webhook-x");
        assert_eq!(entity_identifier("x"), "e_x");
    }

    #[test]
    fn ordered_ids_sort_by_time() {
        let at = |millis| ordered_id_at(DELIVERY_ID, millis, "000000000000");
        assert_eq!(&at(0)[..12], "dlv_00000000");
        assert_eq!(&at(61)[..12], "dlv_0000000z");
        assert_eq!(&at(62)[..12], "dlv_00000010");
        assert_eq!(at(0).len(), 24);
        let times = [0, 1, 61, 62, 3_843, 1_700_000_000_000, 1_800_000_000_123, 62u128.pow(8) - 1];
        let ids: Vec<String> = times.iter().map(|&t| at(t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}
