//! Changes: the record of every write that changed something, in Port's event shape.
//!
//! A change is written in the same transaction as the write it describes, into an ordered
//! outbox that later readers (automations, project subscriptions) consume; the audit log is a
//! view of the same records.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::time::Timestamp;

/// What kind of resource changed (Port's `resourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Entity,
    Blueprint,
    /// An action's run: created, or its status, result or report changed.
    Run,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Blueprint => "blueprint",
            Self::Run => "run",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "entity" => Some(Self::Entity),
            "blueprint" => Some(Self::Blueprint),
            "run" => Some(Self::Run),
            _ => None,
        }
    }
}

/// What happened to it (Port's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "CREATE" => Some(Self::Create),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Where a write came from (Port's `trigger.origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Origin {
    /// The REST API, called with a client's token.
    Api,
    /// An ingestion webhook's mapping.
    Webhook,
    /// An automation's run.
    Automation,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "API",
            Self::Webhook => "WEBHOOK",
            Self::Automation => "AUTOMATION",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "API" => Some(Self::Api),
            "WEBHOOK" => Some(Self::Webhook),
            "AUTOMATION" => Some(Self::Automation),
            _ => None,
        }
    }
}

/// Who or what caused a write: the organization, the acting client (or webhook), the origin,
/// and the links an audit reader filters by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub org_id: String,
    /// The API client id, or the webhook identifier for ingestion.
    pub by: String,
    pub origin: Origin,
    pub at: Timestamp,
    pub webhook_id: Option<String>,
    pub webhook_event_id: Option<String>,
    pub run_id: Option<String>,
}

impl Trigger {
    /// A write through the REST API by client `by`.
    pub fn api(org_id: &str, by: &str, at: Timestamp) -> Self {
        Self {
            org_id: org_id.to_owned(),
            by: by.to_owned(),
            origin: Origin::Api,
            at,
            webhook_id: None,
            webhook_event_id: None,
            run_id: None,
        }
    }

    /// Port's `trigger` object.
    pub fn to_json(&self) -> Value {
        json!({"by": {"orgId": self.org_id, "userId": self.by}, "origin": self.origin.as_str(), "at": self.at})
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The audit entry's identifier (`chg_…`).
    pub id: String,
    /// The position in the outbox; `0` until stored.
    pub seq: i64,
    pub resource_type: ResourceType,
    pub action: ChangeAction,
    pub blueprint: String,
    /// The entity identifier, for entity changes.
    pub entity: Option<String>,
    pub trigger: Trigger,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    /// Change `id` (`ids::CHANGE_ID`'s shape; a new one: `wharf_ids::NewChange::new`) of
    /// `resource_type` with the given versions before and after; the action follows from which
    /// versions exist.
    pub fn with_id(
        id: String,
        resource_type: ResourceType,
        blueprint: &str,
        entity: Option<&str>,
        trigger: &Trigger,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Self {
        let action = match (&before, &after) {
            (None, _) => ChangeAction::Create,
            (Some(_), Some(_)) => ChangeAction::Update,
            (Some(_), None) => ChangeAction::Delete,
        };
        Self {
            id,
            seq: 0,
            resource_type,
            action,
            blueprint: blueprint.to_owned(),
            entity: entity.map(str::to_owned),
            trigger: trigger.clone(),
            before,
            after,
        }
    }

    /// Port's `context` object.
    pub fn context(&self) -> Value {
        match self.resource_type {
            ResourceType::Entity => json!({
                "blueprintIdentifier": self.blueprint,
                "entityIdentifier": self.entity,
                "propertyIdentifier": null,
            }),
            ResourceType::Blueprint => json!({"blueprintIdentifier": self.blueprint}),
            ResourceType::Run => json!({
                "blueprintIdentifier": (!self.blueprint.is_empty()).then_some(&self.blueprint),
                "entityIdentifier": self.entity,
                "actionIdentifier": self.run_action(),
                "runId": self.trigger.run_id,
            }),
        }
    }

    /// The identifier of the action whose run changed (run changes only).
    pub fn run_action(&self) -> Option<&str> {
        if self.resource_type != ResourceType::Run {
            return None;
        }
        let version = self.after.as_ref().or(self.before.as_ref())?;
        version.get("action")?.get("identifier")?.as_str()
    }

    /// The change as Port's event object, which automation conditions and templates read
    /// (`.action`, `.resourceType`, `.trigger`, `.context`, `.diff.before`, `.diff.after`).
    pub fn event(&self) -> Value {
        json!({
            "action": self.action.as_str(),
            "resourceType": self.resource_type.as_str(),
            "trigger": self.trigger.to_json(),
            "context": self.context(),
            "diff": {"before": self.before, "after": self.after},
        })
    }

    /// The change as an entry of `GET /v1/audit-log`: the event plus its identifier, status and
    /// the links (webhook, webhook event, run) in `additionalData`.
    pub fn audit_entry(&self) -> Value {
        let mut entry = json!({
            "identifier": self.id,
            "action": self.action.as_str(),
            "resourceType": self.resource_type.as_str(),
            "status": "SUCCESS",
            "trigger": self.trigger.to_json(),
            "context": self.context(),
            "diff": {"before": self.before, "after": self.after},
        });
        let mut additional = serde_json::Map::new();
        let links = [
            ("webhookId", &self.trigger.webhook_id),
            ("webhookEventId", &self.trigger.webhook_event_id),
            ("runId", &self.trigger.run_id),
        ];
        for (key, value) in links {
            if let Some(value) = value {
                additional.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        if !additional.is_empty() {
            entry["additionalData"] = Value::Object(additional);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_has_ports_shape() {
        let trigger = Trigger::api("org", "client", Timestamp::from_millis(0));
        let change = Change::with_id(
            "chg_1".into(),
            ResourceType::Entity,
            "service",
            Some("api"),
            &trigger,
            None,
            Some(json!({"identifier": "api"})),
        );
        assert_eq!(change.action, ChangeAction::Create);
        let event = change.event();
        assert_eq!(event["resourceType"], "entity");
        assert_eq!(event["context"]["entityIdentifier"], "api");
        assert_eq!(event["trigger"]["by"]["orgId"], "org");
        assert_eq!(event["trigger"]["origin"], "API");
        assert_eq!(event["diff"]["before"], Value::Null);
        let audit = change.audit_entry();
        assert!(audit["identifier"].as_str().unwrap().starts_with("chg_"));
        assert!(audit.get("additionalData").is_none());
        let deleted =
            Change::with_id("chg_2".into(), ResourceType::Entity, "service", Some("api"), &trigger, Some(json!({})), None);
        assert_eq!(deleted.action, ChangeAction::Delete);
    }
}
