//! Tenancy: organizations own everything; API clients act for one organization.

use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::time::Timestamp;

/// Whether an organization that has `existing` resources of one kind (`what`, plural: "ingestion
/// webhooks") may create one more, `limit` being the most it may have (SPEC §12: 1,000 each):
/// else a 422 `too_many_webhooks`, which says how to make room. The caller counts under a lock
/// that makes an organization's creates of that kind take turns.
pub fn check_room(existing: i64, limit: usize, what: &str) -> Result<(), Error> {
    if existing >= i64::try_from(limit).unwrap_or(i64::MAX) {
        return Err(Error::invalid(
            "too_many_webhooks",
            format!("the organization has {existing} {what}, the most it may have ({limit}); delete one first"),
        ));
    }
    Ok(())
}

/// An organization: the owner of a catalog, webhooks, actions and projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Organization {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "createdAt": self.created_at, "updatedAt": self.updated_at})
    }
}

/// An API client: credentials that are exchanged for access tokens of its organization.
///
/// The secret is stored twice: hashed, to check what a client presents, and sealed under the
/// master key, because it is also the HMAC key of `X-Port-Signature` (as in Port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub secret_hash: String,
    pub secret_sealed: String,
    /// Moved on by every rotation of the secret: tokens of an older generation are revoked.
    pub token_generation: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Organization names: 1 to 100 characters, not blank.
pub fn check_organization_name(name: &str) -> Result<(), crate::Error> {
    let len = name.chars().count();
    if name.trim().is_empty() || len > 100 {
        return Err(crate::Error::invalid("invalid_organization", "an organization name is 1 to 100 characters, not blank"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_has_room_up_to_its_limit() {
        assert!(check_room(0, 3, "project webhooks").is_ok());
        assert!(check_room(2, 3, "project webhooks").is_ok());
        let full = check_room(3, 3, "project webhooks").unwrap_err();
        assert_eq!(full.code, "too_many_webhooks");
        assert!(full.message.contains("has 3 project webhooks, the most it may have (3)"), "{}", full.message);
        assert!(check_room(7, 3, "ingestion webhooks").is_err(), "past the limit (lowered since) too");
    }
}
