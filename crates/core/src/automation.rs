//! Automations: which changes an automation fires on (reference §3.5), its condition, and
//! the event object its condition and templates read.
//!
//! The engine's automation worker reads the change outbox; for each change it asks here
//! which of the organization's automations fire, and evaluates their conditions on a jq
//! thread. Timers (`TIMER_PROPERTY_EXPIRED`) are the engine's too: a change that sets a timer
//! property is remembered ([`timer_deadlines`]) and fires when the time passes.

use serde_json::{Value, json};
use wharf_jq::ProgramCache;

use crate::action::{ActionDef, ActionTrigger, AutomationEvent, Combinator, Condition, EventType};
use crate::change::{Change, ChangeAction, ResourceType};
use crate::time::Timestamp;

/// The budget of one automation's condition (all its expressions together).
pub const CONDITION_LIMITS: wharf_jq::Limits = wharf_jq::DEFAULT_LIMITS;

/// Whether automation `event` listens to this change (its type, and its blueprint or
/// action), before its condition.
pub fn listens_to(event: &AutomationEvent, change: &Change) -> bool {
    match change.resource_type {
        ResourceType::Entity => {
            let kind = match change.action {
                ChangeAction::Create => EventType::EntityCreated,
                ChangeAction::Update => EventType::EntityUpdated,
                ChangeAction::Delete => EventType::EntityDeleted,
            };
            (event.kind == kind || event.kind == EventType::AnyEntityChange)
                && event.blueprint.as_deref() == Some(change.blueprint.as_str())
        }
        ResourceType::Run => {
            let kind = match change.action {
                ChangeAction::Create => EventType::RunCreated,
                ChangeAction::Update | ChangeAction::Delete => EventType::RunUpdated,
            };
            (event.kind == kind || event.kind == EventType::AnyRunChange) && event.action.as_deref() == change.run_action()
        }
        ResourceType::Blueprint => false,
    }
}

/// Whether an automation listening to `event` may fire on, or take a timer from, a change
/// known only by its head: its kind (`resource`) and `blueprint`. It errs towards yes: every
/// change [`listens_to`] accepts, and every change that may set a `TIMER_PROPERTY_EXPIRED`
/// automation's timer ([`timer_deadlines`]), is accepted here. The automation worker passes
/// over, without reading them, the changes no automation of their organization may act on.
pub fn may_act_on(event: &AutomationEvent, resource: ResourceType, blueprint: &str) -> bool {
    match resource {
        ResourceType::Entity => {
            matches!(
                event.kind,
                EventType::EntityCreated
                    | EventType::EntityUpdated
                    | EventType::EntityDeleted
                    | EventType::AnyEntityChange
                    | EventType::TimerPropertyExpired
            ) && event.blueprint.as_deref().is_none_or(|on| on == blueprint)
        }
        ResourceType::Run => matches!(event.kind, EventType::RunCreated | EventType::RunUpdated | EventType::AnyRunChange),
        ResourceType::Blueprint => false,
    }
}

/// The timer an automation waits on (`TIMER_PROPERTY_EXPIRED`): its blueprint and property.
pub fn timer_of(def: &ActionDef) -> Option<(&str, &str)> {
    match &def.trigger {
        ActionTrigger::Automation { event, .. } if event.kind == EventType::TimerPropertyExpired => {
            Some((event.blueprint.as_deref()?, event.property.as_deref()?))
        }
        _ => None,
    }
}

/// Whether the action `def` fires, before its condition, when the timer `property` of an
/// entity of `blueprint` expires: a published automation waiting on that timer.
pub fn fires_on_timer(def: &ActionDef, blueprint: &str, property: &str) -> bool {
    def.publish && timer_of(def) == Some((blueprint, property))
}

/// Whether the action `def`, saved at `saved_at`, fires on `change` before its condition: it
/// is a published automation listening to the change, and the change was committed after it
/// was saved (an automation never sees earlier changes).
pub fn listens(def: &ActionDef, saved_at: Timestamp, change: &Change) -> bool {
    def.publish
        && change.trigger.at >= saved_at
        && matches!(&def.trigger, ActionTrigger::Automation { event, .. } if listens_to(event, change))
}

/// The event object of a change as an automation reads it: Port's event (`action`,
/// `resourceType`, `trigger`, `context`, `diff`), plus the run event's `id`.
pub fn event_of(change: &Change) -> Value {
    let mut event = change.event();
    if change.resource_type == ResourceType::Run {
        event["id"] = Value::String(change.id.clone());
    }
    event
}

/// The event of a timer that expired: the entity as it is now in `after` (and `before`),
/// the property in `context.propertyIdentifier`.
pub fn timer_event(org: &str, blueprint: &str, property: &str, entity: &Value, at: Timestamp) -> Value {
    json!({
        "action": "TIMER_PROPERTY_EXPIRED",
        "resourceType": "entity",
        "trigger": {"by": {"orgId": org, "userId": "wharf"}, "origin": "AUTOMATION", "at": at},
        "context": {"blueprintIdentifier": blueprint, "entityIdentifier": entity.get("identifier"), "propertyIdentifier": property},
        "diff": {"before": entity, "after": entity},
    })
}

/// Whether `condition` holds for `event`: each expression's first output must be `true`
/// (`and`: all of them; `or`: one). An expression that fails, or yields something else,
/// does not hold; its error is returned beside the verdict so it can be logged.
pub fn condition_holds(condition: &Condition, event: &Value, programs: &ProgramCache) -> (bool, Vec<String>) {
    let mut errors = Vec::new();
    let budgeted = wharf_jq::with_budget(CONDITION_LIMITS, || {
        let mut verdicts = condition.expressions.iter().map(|expression| match programs.first(expression, event) {
            Ok(Some(Value::Bool(true))) => true,
            Ok(_) => false,
            Err(err) => {
                errors.push(format!("`{expression}`: {err}"));
                false
            }
        });
        match condition.combinator {
            Combinator::And => verdicts.all(|v| v),
            Combinator::Or => verdicts.any(|v| v),
        }
    });
    (budgeted.value, errors)
}

/// The timer properties an entity change sets, with their deadlines: for each
/// `(blueprint, property)` an automation waits on, the entity's value of it after the change
/// (an ISO 8601 time), or `None` when the change removes it (or deletes the entity).
pub fn timer_deadlines(change: &Change, watched: &[(String, String)]) -> Vec<(String, Option<Timestamp>)> {
    if change.resource_type != ResourceType::Entity {
        return Vec::new();
    }
    watched
        .iter()
        .filter(|(blueprint, _)| *blueprint == change.blueprint)
        .filter_map(|(_, property)| {
            let value = |version: &Option<Value>| version.as_ref().and_then(|v| v.get("properties")?.get(property).cloned());
            let (before, after) = (value(&change.before), value(&change.after));
            if before == after && change.action == ChangeAction::Update {
                return None; // unchanged: the timer stands as it was
            }
            let deadline = after.as_ref().and_then(Value::as_str).and_then(Timestamp::parse);
            Some((property.clone(), deadline))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Trigger;

    fn change(resource: ResourceType, blueprint: &str, before: Option<Value>, after: Option<Value>) -> Change {
        let trigger = Trigger::api("org", "client", Timestamp::from_millis(0));
        Change::with_id("chg_1".into(), resource, blueprint, Some("api"), &trigger, before, after)
    }

    fn automation(event: Value, condition: Option<Value>) -> ActionDef {
        let mut trigger = json!({"type": "automation", "event": event});
        if let Some(condition) = condition {
            trigger["condition"] = condition;
        }
        ActionDef::parse(
            json!({"identifier": "a", "trigger": trigger, "invocationMethod": {"type": "WEBHOOK", "url": "https://x"}}),
            None,
        )
        .unwrap()
    }

    #[test]
    fn entity_events_listen_by_type_and_blueprint() {
        let created = change(ResourceType::Entity, "service", None, Some(json!({})));
        let updated = change(ResourceType::Entity, "service", Some(json!({})), Some(json!({})));
        let deleted = change(ResourceType::Entity, "service", Some(json!({})), None);
        let other = change(ResourceType::Entity, "team", None, Some(json!({})));
        let on = |kind: &str, c: &Change| {
            let def = automation(json!({"type": kind, "blueprintIdentifier": "service"}), None);
            listens(&def, Timestamp::from_millis(0), c)
        };
        assert!(on("ENTITY_CREATED", &created) && !on("ENTITY_CREATED", &updated) && !on("ENTITY_CREATED", &other));
        assert!(on("ENTITY_UPDATED", &updated) && !on("ENTITY_UPDATED", &deleted));
        assert!(on("ENTITY_DELETED", &deleted) && !on("ENTITY_DELETED", &created));
        assert!(on("ANY_ENTITY_CHANGE", &created) && on("ANY_ENTITY_CHANGE", &updated) && on("ANY_ENTITY_CHANGE", &deleted));
        assert!(!on("ANY_ENTITY_CHANGE", &other));
    }

    #[test]
    fn run_events_listen_by_action() {
        let run = |before: Option<Value>| {
            let after = Some(json!({"id": "r_1", "action": {"identifier": "deploy"}}));
            change(ResourceType::Run, "", before, after)
        };
        let on = |kind: &str, action: &str, c: &Change| {
            let def = automation(json!({"type": kind, "actionIdentifier": action}), None);
            listens(&def, Timestamp::from_millis(0), c)
        };
        let (created, updated) = (run(None), run(Some(json!({"id": "r_1", "action": {"identifier": "deploy"}}))));
        assert!(on("RUN_CREATED", "deploy", &created) && !on("RUN_CREATED", "deploy", &updated));
        assert!(on("RUN_UPDATED", "deploy", &updated) && !on("RUN_UPDATED", "other", &updated));
        assert!(on("ANY_RUN_CHANGE", "deploy", &created) && on("ANY_RUN_CHANGE", "deploy", &updated));
        assert_eq!(event_of(&created)["id"], "chg_1");
        assert_eq!(event_of(&created)["context"]["actionIdentifier"], "deploy");
    }

    #[test]
    fn a_head_is_acted_on_whenever_its_change_may_fire_or_set_a_timer() {
        let kinds = [
            "ENTITY_CREATED",
            "ENTITY_UPDATED",
            "ENTITY_DELETED",
            "ANY_ENTITY_CHANGE",
            "RUN_CREATED",
            "RUN_UPDATED",
            "ANY_RUN_CHANGE",
        ];
        let run = json!({"id": "r_1", "action": {"identifier": "deploy"}});
        let entity = json!({"identifier": "e", "properties": {"due": "2030-01-01T00:00:00Z"}});
        let changes = [
            change(ResourceType::Entity, "service", None, Some(entity.clone())),
            change(ResourceType::Entity, "service", Some(json!({})), Some(entity.clone())),
            change(ResourceType::Entity, "service", Some(entity.clone()), None),
            change(ResourceType::Entity, "team", None, Some(entity)),
            change(ResourceType::Run, "", None, Some(run.clone())),
            change(ResourceType::Run, "service", Some(run.clone()), Some(run)),
            change(ResourceType::Blueprint, "service", None, Some(json!({}))),
        ];
        let mut accepted = 0;
        for kind in kinds {
            for on in [json!({"blueprintIdentifier": "service"}), json!({"actionIdentifier": "deploy"})] {
                let mut event = on;
                event["type"] = json!(kind);
                let Ok(def) = ActionDef::parse(
                    json!({"identifier": "a", "trigger": {"type": "automation", "event": event},
                        "invocationMethod": {"type": "WEBHOOK", "url": "https://x"}}),
                    None,
                ) else {
                    continue;
                };
                let ActionTrigger::Automation { event, .. } = &def.trigger else { unreachable!() };
                for c in &changes {
                    let head = may_act_on(event, c.resource_type, &c.blueprint);
                    if listens(&def, Timestamp::from_millis(0), c) {
                        accepted += 1;
                        assert!(head, "{kind} fires on {c:?}, but its head is passed over");
                    }
                }
            }
        }
        assert!(accepted >= 10, "the cases fire: {accepted}");
        // A timer is taken from any entity change of its blueprint, and from nothing else.
        let timer = AutomationEvent {
            kind: EventType::TimerPropertyExpired,
            blueprint: Some("service".into()),
            property: Some("due".into()),
            action: None,
        };
        let watched = [("service".to_owned(), "due".to_owned())];
        for c in &changes {
            if !timer_deadlines(c, &watched).is_empty() {
                assert!(may_act_on(&timer, c.resource_type, &c.blueprint), "{c:?} sets the timer");
            }
        }
        assert!(may_act_on(&timer, ResourceType::Entity, "service") && !may_act_on(&timer, ResourceType::Entity, "team"));
        // What no automation acts on: another blueprint's entities for an entity event, any
        // entity for a run event, and blueprints.
        let updated =
            AutomationEvent { kind: EventType::EntityUpdated, blueprint: Some("service".into()), property: None, action: None };
        let run_event =
            AutomationEvent { kind: EventType::AnyRunChange, blueprint: None, property: None, action: Some("deploy".into()) };
        assert!(!may_act_on(&updated, ResourceType::Run, ""));
        assert!(!may_act_on(&updated, ResourceType::Entity, "team"));
        assert!(!may_act_on(&run_event, ResourceType::Entity, "service"));
        assert!(!may_act_on(&run_event, ResourceType::Blueprint, "service"));
    }

    #[test]
    fn unpublished_automations_do_not_listen() {
        let mut def = automation(json!({"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}), None);
        let created = change(ResourceType::Entity, "service", None, Some(json!({})));
        assert!(listens(&def, Timestamp::from_millis(0), &created));
        assert!(!listens(&def, Timestamp::from_millis(1), &created), "a change older than the automation");
        def.publish = false;
        assert!(!listens(&def, Timestamp::from_millis(0), &created));
    }

    #[test]
    fn conditions_combine_their_expressions() {
        let programs = ProgramCache::default();
        let event = json!({"diff": {"before": {"properties": {"tier": 1}}, "after": {"properties": {"tier": 2}}}});
        let condition = |combinator: Combinator, expressions: &[&str]| Condition {
            expressions: expressions.iter().map(|e| (*e).to_owned()).collect(),
            combinator,
        };
        let rising = [".diff.before.properties.tier == 1", ".diff.after.properties.tier == 2"];
        assert!(condition_holds(&condition(Combinator::And, &rising), &event, &programs).0);
        let mixed = [".diff.before.properties.tier == 2", ".diff.after.properties.tier == 2"];
        assert!(!condition_holds(&condition(Combinator::And, &mixed), &event, &programs).0);
        assert!(condition_holds(&condition(Combinator::Or, &mixed), &event, &programs).0);
        // Not `true` is not true; an error is reported and does not hold.
        assert!(!condition_holds(&condition(Combinator::And, &[".diff.after.properties.tier"]), &event, &programs).0);
        let (holds, errors) = condition_holds(&condition(Combinator::Or, &["error(\"no\")"]), &event, &programs);
        assert!(!holds);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn timers_follow_the_entity() {
        let watched = vec![("service".to_owned(), "expires".to_owned())];
        let set = change(ResourceType::Entity, "service", None, Some(json!({"properties": {"expires": "2030-01-01T00:00:00Z"}})));
        assert_eq!(timer_deadlines(&set, &watched), vec![("expires".to_owned(), Timestamp::parse("2030-01-01T00:00:00Z"))]);
        let same = change(
            ResourceType::Entity,
            "service",
            Some(json!({"properties": {"expires": "2030-01-01T00:00:00Z"}, "title": "a"})),
            Some(json!({"properties": {"expires": "2030-01-01T00:00:00Z"}, "title": "b"})),
        );
        assert!(timer_deadlines(&same, &watched).is_empty());
        let gone =
            change(ResourceType::Entity, "service", Some(json!({"properties": {"expires": "2030-01-01T00:00:00Z"}})), None);
        assert_eq!(timer_deadlines(&gone, &watched), vec![("expires".to_owned(), None)]);
        assert!(timer_deadlines(&change(ResourceType::Entity, "team", None, Some(json!({}))), &watched).is_empty());
    }

    #[test]
    fn timer_automations_fire_on_their_timer_when_published() {
        let doc = |publish: bool, event: Value| {
            ActionDef::parse(
                json!({
                    "identifier": "expire", "publish": publish,
                    "trigger": {"type": "automation", "event": event},
                    "invocationMethod": {"type": "WEBHOOK", "url": "https://example.invalid"}
                }),
                None,
            )
            .unwrap()
        };
        let timer = json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "expires"});
        let waiting = doc(true, timer.clone());
        assert_eq!(timer_of(&waiting), Some(("service", "expires")));
        assert!(fires_on_timer(&waiting, "service", "expires"));
        assert!(!fires_on_timer(&waiting, "service", "ttl"));
        assert!(!fires_on_timer(&waiting, "team", "expires"));
        assert!(!fires_on_timer(&doc(false, timer), "service", "expires"), "unpublished");
        let on_update = doc(true, json!({"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}));
        assert_eq!(timer_of(&on_update), None);
    }
}
