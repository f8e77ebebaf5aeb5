//! The execution agent's side of runs (reference §5, SPEC §8): what an agent's claim and
//! acknowledgement say, where a claimed run stands, and Port's field encryption for agents.
//!
//! An `agent: true` WEBHOOK run is not sent by Wharf: its request waits until an agent inside
//! the backend's network claims it (`POST /v1/actions/runs/claim-pending`), acknowledges it
//! (`PATCH /v1/actions/runs/ack`), sends it there and reports back through the runs API. A
//! claim hides the run from other claims for the claim's visibility timeout; a run claimed but
//! not acknowledged within it can be claimed again (its agent died before taking it); an
//! acknowledged run is never handed out again.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::time::Timestamp;

/// How long a claimed run stays hidden from other claims unless the claim says (SPEC §8).
pub const DEFAULT_VISIBILITY_MS: i64 = 60_000;
/// The shortest and longest visibility timeouts a claim may ask for.
pub const VISIBILITY_MS: (i64, i64) = (1_000, 12 * 3_600_000);
/// Runs one claim takes unless it says (Port's agent asks for `POLLING_RUNS_BATCH_SIZE`, 100).
pub const DEFAULT_CLAIM_LIMIT: u32 = 100;
/// The most runs one claim takes.
pub const MAX_CLAIM_LIMIT: u32 = 1_000;
/// The longest a claim waits for a run to become claimable (`waitMs`, a long poll).
pub const MAX_WAIT_MS: u64 = 30_000;
/// The most run ids one acknowledgement names.
pub const MAX_ACK_RUNS: usize = 1_000;
const MAX_INSTALLATION_ID: usize = 200;
const CODE: &str = "invalid_claim";

/// `POST /v1/actions/runs/claim-pending` (and the workflow node runs' twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who claims (Port's agent sends `_PORT_EXEC_AGENT`; `wharf agent` its own name).
    pub installation_id: String,
    pub limit: u32,
    /// How long the runs claimed stay hidden from other claims unless acknowledged.
    pub visibility_ms: i64,
    /// How long to wait for a claimable run when none is (0: answer at once).
    pub wait_ms: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimBody {
    installation_id: String,
    limit: Option<u32>,
    invocation_method: Option<String>,
    visibility_timeout_ms: Option<i64>,
    wait_ms: Option<u64>,
}

impl Claim {
    /// Reads a claim's body; `node_runs` for the workflow node runs' route, which takes no
    /// `invocationMethod`.
    pub fn parse(body: Value, node_runs: bool) -> Result<Self, Error> {
        let body: ClaimBody = crate::json::from_value(body, CODE, "claim")?;
        if body.installation_id.is_empty() || body.installation_id.chars().count() > MAX_INSTALLATION_ID {
            return Err(Error::invalid(CODE, format!("`installationId` must have 1 to {MAX_INSTALLATION_ID} characters")));
        }
        match (&body.invocation_method, node_runs) {
            (Some(_), true) => return Err(Error::invalid(CODE, "`invocationMethod` is not part of a node run claim")),
            (Some(method), false) if method != "WEBHOOK" => {
                return Err(Error::invalid(CODE, format!("`invocationMethod` is `{method}`; agents claim `WEBHOOK` runs only")));
            }
            _ => {}
        }
        let limit = body.limit.unwrap_or(DEFAULT_CLAIM_LIMIT);
        if !(1..=MAX_CLAIM_LIMIT).contains(&limit) {
            return Err(Error::invalid(CODE, format!("`limit` is {limit}; it must be 1 to {MAX_CLAIM_LIMIT}")));
        }
        let visibility_ms = body.visibility_timeout_ms.unwrap_or(DEFAULT_VISIBILITY_MS);
        let (shortest, longest) = VISIBILITY_MS;
        if !(shortest..=longest).contains(&visibility_ms) {
            return Err(Error::invalid(
                CODE,
                format!("`visibilityTimeoutMs` is {visibility_ms}; it must be {shortest} to {longest}"),
            ));
        }
        let wait_ms = body.wait_ms.unwrap_or(0);
        if wait_ms > MAX_WAIT_MS {
            return Err(Error::invalid(CODE, format!("`waitMs` is {wait_ms}; it must be at most {MAX_WAIT_MS}")));
        }
        Ok(Self { installation_id: body.installation_id, limit, visibility_ms, wait_ms })
    }

    /// Until when the runs this claim takes at `now` stay hidden.
    pub fn visible_again_at(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis(now.millis().saturating_add(self.visibility_ms))
    }
}

/// `PATCH /v1/actions/runs/ack`: the run ids an agent takes for good, each once, in order.
pub fn parse_ack(body: Value) -> Result<Vec<String>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct AckBody {
        run_ids: Vec<String>,
    }
    let body: AckBody = crate::json::from_value(body, "invalid_ack", "acknowledgement")?;
    if body.run_ids.len() > MAX_ACK_RUNS {
        return Err(Error::invalid("invalid_ack", format!("`runIds` names {} runs; at most {MAX_ACK_RUNS}", body.run_ids.len())));
    }
    let mut ids = Vec::with_capacity(body.run_ids.len());
    for id in body.run_ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `PATCH /v1/workflows/runs/ack`: the workflow node run an agent takes (Port's
/// `nodeRunIdentifier`; Ocean also sends `visibilityTimeoutMs`).
pub fn parse_node_run_ack(body: Value) -> Result<String, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct NodeRunAck {
        node_run_identifier: String,
        #[allow(dead_code)] // accepted, as Ocean sends it
        visibility_timeout_ms: Option<i64>,
    }
    let body: NodeRunAck = crate::json::from_value(body, "invalid_ack", "acknowledgement")?;
    Ok(body.node_run_identifier)
}

/// Where an agent's claim of a run stands, as the run shows it (`agentClaim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimState {
    pub installation_id: String,
    pub claimed_at: Timestamp,
    /// When the claim lapses unless acknowledged (the run can be claimed again then).
    pub visible_again_at: Timestamp,
    pub acked_at: Option<Timestamp>,
}

impl ClaimState {
    pub fn to_json(&self) -> Value {
        let mut shown = json!({
            "installationId": self.installation_id,
            "claimedAt": self.claimed_at,
            "ackedAt": self.acked_at,
        });
        if self.acked_at.is_none() {
            shown["visibleAgainAt"] = json!(self.visible_again_at);
        }
        shown
    }
}

/// `PATCH /v1/organization`: what it changes. Port's agent writes
/// `{"settings":{"portAgentStreamerName":"POLLING"}}` at startup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    /// Settings to set, each checked.
    pub settings: serde_json::Map<String, Value>,
}

impl OrganizationPatch {
    pub fn parse(body: Value) -> Result<Self, Error> {
        const CODE: &str = "invalid_organization";
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            name: Option<String>,
            settings: Option<serde_json::Map<String, Value>>,
        }
        let body: Body = crate::json::from_value(body, CODE, "organization")?;
        if let Some(name) = &body.name
            && (name.trim().is_empty() || name.chars().count() > 200)
        {
            return Err(Error::invalid(CODE, "`name` must have 1 to 200 characters"));
        }
        let settings = body.settings.unwrap_or_default();
        for (key, value) in &settings {
            match (key.as_str(), value.as_str()) {
                ("portAgentStreamerName", Some("POLLING")) => {}
                ("portAgentStreamerName", _) => {
                    return Err(Error::invalid(
                        CODE,
                        format!(
                            "`settings.portAgentStreamerName` is {value}; Wharf serves agents by polling only: \
                             run Port's agent with STREAMER_NAME=POLLING"
                        ),
                    ));
                }
                _ => return Err(Error::invalid(CODE, format!("`settings.{key}` is not a setting Wharf knows"))),
            }
        }
        Ok(Self { name: body.name, settings })
    }
}

/// Bytes of the random IV a field encrypted for an agent starts with (Port's format).
pub const FIELD_IV_BYTES: usize = 16;
type FieldCipher = AesGcm<Aes256, U16>;

/// Why a field encrypted for an agent could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldCryptoError {
    #[error("the encryption key (the client secret) must be at least 32 bytes")]
    KeyTooShort,
    #[error("the value is not base64")]
    NotBase64,
    #[error("encrypted data is too short (under {} bytes)", FIELD_IV_BYTES + 16)]
    TooShort,
    #[error("the value does not decrypt with this key: wrong key, or the data was altered")]
    Authentication,
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
}

fn field_cipher(client_secret: &str) -> Result<FieldCipher, FieldCryptoError> {
    let key = client_secret.as_bytes().get(..32).ok_or(FieldCryptoError::KeyTooShort)?;
    FieldCipher::new_from_slice(key).map_err(|_| FieldCryptoError::KeyTooShort)
}

/// Encrypts a field for an agent as Port does (an input with `"encryption": "aes256-gcm"`):
/// AES-256-GCM keyed with the first 32 bytes of the organization's client secret, written
/// `base64(IV ‖ ciphertext ‖ tag)`. `iv` must be fresh random bytes.
pub fn encrypt_field(client_secret: &str, iv: [u8; FIELD_IV_BYTES], plaintext: &[u8]) -> Result<String, FieldCryptoError> {
    let cipher = field_cipher(client_secret)?;
    // Encryption with a valid key and IV only fails for plaintexts over 64 GiB.
    let ciphertext = cipher.encrypt(&Nonce::<U16>::from(iv), plaintext).map_err(|_| FieldCryptoError::TooShort)?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(STANDARD.encode(out))
}

/// Reads what [`encrypt_field`] wrote (what an agent does with `fieldsToDecryptPaths`).
pub fn decrypt_field(client_secret: &str, encrypted: &str) -> Result<String, FieldCryptoError> {
    let cipher = field_cipher(client_secret)?;
    let bytes = STANDARD.decode(encrypted.trim()).map_err(|_| FieldCryptoError::NotBase64)?;
    if bytes.len() < FIELD_IV_BYTES + 16 {
        return Err(FieldCryptoError::TooShort);
    }
    // `ciphertext` is followed by the tag, the layout aes-gcm expects.
    let (iv, ciphertext) = bytes.split_at(FIELD_IV_BYTES);
    let iv: [u8; FIELD_IV_BYTES] = iv.try_into().map_err(|_| FieldCryptoError::TooShort)?;
    let plaintext = cipher.decrypt(&Nonce::<U16>::from(iv), ciphertext).map_err(|_| FieldCryptoError::Authentication)?;
    String::from_utf8(plaintext).map_err(|_| FieldCryptoError::NotUtf8)
}

/// The text an input's value is encrypted as: a string as itself, anything else as compact JSON.
pub fn field_plaintext(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdefEXTRA";

    #[test]
    fn claims_read_ports_body_and_check_bounds() {
        let claim =
            Claim::parse(json!({"installationId": "_PORT_EXEC_AGENT", "limit": 100, "invocationMethod": "WEBHOOK"}), false)
                .unwrap();
        assert_eq!(claim, Claim { installation_id: "_PORT_EXEC_AGENT".into(), limit: 100, visibility_ms: 60_000, wait_ms: 0 });
        assert_eq!(claim.visible_again_at(Timestamp::from_millis(1_000)), Timestamp::from_millis(61_000));
        let bad = |body: Value, needle: &str| {
            let err = Claim::parse(body, false).unwrap_err();
            assert!(err.message.contains(needle), "{}", err.message);
        };
        bad(json!({"limit": 1}), "installationId");
        bad(json!({"installationId": ""}), "installationId");
        bad(json!({"installationId": "a", "limit": 0}), "`limit` is 0");
        bad(json!({"installationId": "a", "invocationMethod": "KAFKA"}), "WEBHOOK");
        bad(json!({"installationId": "a", "visibilityTimeoutMs": 5}), "visibilityTimeoutMs");
        bad(json!({"installationId": "a", "waitMs": 60_000}), "waitMs");
        bad(json!({"installationId": "a", "extra": 1}), "extra");
        assert!(Claim::parse(json!({"installationId": "a", "invocationMethod": "WEBHOOK"}), true).is_err());
        assert_eq!(Claim::parse(json!({"installationId": "a"}), true).unwrap().limit, DEFAULT_CLAIM_LIMIT);
    }

    #[test]
    fn acks_name_each_run_once() {
        assert_eq!(parse_ack(json!({"runIds": ["r_1", "r_2", "r_1"]})).unwrap(), ["r_1", "r_2"]);
        assert!(parse_ack(json!({"runIds": "r_1"})).is_err());
        assert!(parse_ack(json!({"runIds": vec!["r"; MAX_ACK_RUNS + 1]})).is_err());
        assert_eq!(parse_node_run_ack(json!({"nodeRunIdentifier": "wfnr_1", "visibilityTimeoutMs": 5})).unwrap(), "wfnr_1");
        assert!(parse_node_run_ack(json!({"nodeRunIdentifier": 1})).is_err());
    }

    #[test]
    fn organization_patch_takes_polling_only() {
        let patch = OrganizationPatch::parse(json!({"settings": {"portAgentStreamerName": "POLLING"}})).unwrap();
        assert_eq!(patch.settings["portAgentStreamerName"], "POLLING");
        let kafka = OrganizationPatch::parse(json!({"settings": {"portAgentStreamerName": "KAFKA"}})).unwrap_err();
        assert!(kafka.message.contains("STREAMER_NAME=POLLING"), "{}", kafka.message);
        assert!(OrganizationPatch::parse(json!({"settings": {"colour": "red"}})).is_err());
        assert!(OrganizationPatch::parse(json!({"name": " "})).is_err());
    }

    #[test]
    fn fields_round_trip_under_the_first_32_bytes_of_the_secret() {
        let encrypted = encrypt_field(SECRET, [7; FIELD_IV_BYTES], b"hunter2").unwrap();
        let bytes = STANDARD.decode(&encrypted).unwrap();
        assert_eq!(bytes.len(), FIELD_IV_BYTES + 7 + 16);
        assert_eq!(&bytes[..FIELD_IV_BYTES], &[7; FIELD_IV_BYTES]);
        // Only the first 32 bytes are the key.
        assert_eq!(decrypt_field("0123456789abcdef0123456789abcdefOTHER", &encrypted).unwrap(), "hunter2");
        assert_eq!(decrypt_field("X123456789abcdef0123456789abcdefEXTRA", &encrypted), Err(FieldCryptoError::Authentication));
        assert_eq!(encrypt_field("short", [0; FIELD_IV_BYTES], b"x"), Err(FieldCryptoError::KeyTooShort));
        assert_eq!(decrypt_field(SECRET, "not base64!"), Err(FieldCryptoError::NotBase64));
        assert_eq!(decrypt_field(SECRET, "AAAA"), Err(FieldCryptoError::TooShort));
        assert_eq!(field_plaintext(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(field_plaintext(&json!("x")), "x");
    }
}
