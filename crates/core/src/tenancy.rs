//! Tenancy: organizations own everything; API clients act for one organization.

use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::time::Timestamp;

/// A kind of resource an organization may have at most so many of (SPEC §12: 1,000 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capped {
    IngestionWebhooks,
    /// A project's subscriptions, over all the organization's projects ("project webhooks").
    Subscriptions,
    Secrets,
    /// Actions and automations, one resource.
    Actions,
    Workflows,
}

impl Capped {
    /// The error code of a refused create. Ingestion webhooks and subscriptions share
    /// `too_many_webhooks`, the code the API answered for both before the other kinds existed
    /// (subscriptions are "project webhooks" there).
    pub fn code(self) -> &'static str {
        match self {
            Self::IngestionWebhooks | Self::Subscriptions => "too_many_webhooks",
            Self::Secrets => "too_many_secrets",
            Self::Actions => "too_many_actions",
            Self::Workflows => "too_many_workflows",
        }
    }

    /// The resources in the API's words, plural.
    pub fn noun(self) -> &'static str {
        match self {
            Self::IngestionWebhooks => "ingestion webhooks",
            Self::Subscriptions => "project webhooks",
            Self::Secrets => "secrets",
            Self::Actions => "actions and automations",
            Self::Workflows => "workflows",
        }
    }
}

/// Whether an organization that has `existing` resources of one kind may create one more,
/// `limit` being the most it may have: else a 422 with the kind's code
/// ([`Capped::code`]), which says how to make room. The caller counts under a lock that makes
/// an organization's creates of that kind take turns.
pub fn check_room(existing: i64, limit: usize, kind: Capped) -> Result<(), Error> {
    if existing >= i64::try_from(limit).unwrap_or(i64::MAX) {
        return Err(Error::invalid(
            kind.code(),
            format!("the organization has {existing} {}, the most it may have ({limit}); delete one first", kind.noun()),
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
    /// What Port's clients set with `PATCH /v1/organization` (`portAgentStreamerName`).
    pub settings: serde_json::Map<String, Value>,
}

impl Organization {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "settings": self.settings,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }

    /// Applies a `PATCH /v1/organization` (its settings merged into those kept) at `now`.
    pub fn patch(&mut self, patch: crate::agent::OrganizationPatch, now: Timestamp) {
        if let Some(name) = patch.name {
            self.name = name;
        }
        self.settings.extend(patch.settings);
        self.updated_at = now;
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
        assert!(check_room(0, 3, Capped::Subscriptions).is_ok());
        assert!(check_room(2, 3, Capped::Subscriptions).is_ok());
        let full = check_room(3, 3, Capped::Subscriptions).unwrap_err();
        assert_eq!(full.code, "too_many_webhooks");
        assert!(full.message.contains("has 3 project webhooks, the most it may have (3)"), "{}", full.message);
        assert!(check_room(7, 3, Capped::IngestionWebhooks).is_err(), "past the limit (lowered since) too");
        assert_eq!(check_room(3, 3, Capped::Secrets).unwrap_err().code, "too_many_secrets");
        let actions = check_room(3, 3, Capped::Actions).unwrap_err();
        assert_eq!(actions.code, "too_many_actions");
        assert!(actions.message.contains("has 3 actions and automations"), "{}", actions.message);
    }
}
