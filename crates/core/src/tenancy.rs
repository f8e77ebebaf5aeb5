//! Tenancy: organizations own everything; API clients act for one organization.

use serde::Serialize;
use serde_json::{Value, json};

use crate::time::Timestamp;

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
