//! Applying what the mappings of one event ask for to the catalog, inside the caller's
//! transaction: an entity that fails (schema, missing search match) is recorded as an error
//! without undoing the others.

use serde_json::{Map, Value, json};
use wharf_core::Error as DomainError;
use wharf_core::change::Trigger;
use wharf_core::entity::{EntityInput, WriteMode};
use wharf_core::mapping::{EntityOperation, EntityOutcome, ItemError, MappedAction, MappedEntity, Target};
use wharf_core::search::{Query, SearchPage};
use wharf_store::CatalogTx;

use crate::catalog::{BlueprintCache, WriteOptions, delete_entity_in, write_entity_in};
use crate::{Catalog, Error, Result};

/// Port: a relation found by a search query takes at most this many matches.
const MAX_RELATION_MATCHES: usize = 100;

/// What applying an event's entities did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub outcomes: Vec<EntityOutcome>,
    pub errors: Vec<ItemError>,
    /// For dry runs: each entity as it would be written.
    pub previews: Vec<Value>,
}

/// Applies `entities` in order. Domain failures become [`ItemError`]s; a store failure is
/// returned (the caller rolls back and retries the whole event later).
pub(crate) async fn apply(
    catalog: &Catalog,
    tx: &mut impl CatalogTx,
    blueprints: &mut BlueprintCache,
    trigger: &Trigger,
    entities: &[MappedEntity],
    dry_run: bool,
) -> Result<Applied> {
    let mut applied = Applied::default();
    for entity in entities {
        // Every domain rule is checked before an entity's first write (`write_entity_in`,
        // `delete_entity_in`), so a refused entity leaves the transaction as it was and the
        // others go on.
        match apply_one(catalog, tx, blueprints, trigger, entity, dry_run).await {
            Ok((outcome, preview)) => {
                applied.outcomes.push(outcome);
                if dry_run {
                    applied.previews.push(preview);
                }
            }
            Err(Error::Domain(err)) => {
                let error = ItemError { mapping: entity.mapping, item: entity.item, expression: None, message: err.message };
                applied.errors.push(error);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(applied)
}

async fn apply_one(
    catalog: &Catalog,
    tx: &mut impl CatalogTx,
    blueprints: &mut BlueprintCache,
    trigger: &Trigger,
    mapped: &MappedEntity,
    dry_run: bool,
) -> Result<(EntityOutcome, Value)> {
    let org = &trigger.org_id;
    let blueprint = &mapped.blueprint;
    let identifier = match &mapped.identifier {
        Target::Identifier(id) => id.clone(),
        Target::Query(query) => find_one(catalog, org, blueprint, query).await?,
    };
    let outcome = |operation| EntityOutcome {
        blueprint: blueprint.clone(),
        identifier: identifier.clone(),
        operation,
        mapping: mapped.mapping,
        item: mapped.item,
    };
    match &mapped.action {
        MappedAction::Delete { delete_dependents } => {
            let operation = if dry_run {
                if tx.entity(org, blueprint, &identifier).await?.is_some() {
                    EntityOperation::Deleted
                } else {
                    EntityOperation::Absent
                }
            } else if delete_entity_in(tx, trigger, blueprint, &identifier, *delete_dependents).await? {
                EntityOperation::Deleted
            } else {
                EntityOperation::Absent
            };
            let preview = json!({"blueprint": blueprint, "identifier": identifier, "operation": operation});
            Ok((outcome(operation), preview))
        }
        MappedAction::Upsert { doc, relation_queries } => {
            let mut doc = doc.clone();
            if !relation_queries.is_empty() {
                let bp = blueprints.get(tx, org, blueprint).await?;
                let relations = doc.entry("relations").or_insert_with(|| Value::Object(Map::new()));
                for (name, query) in relation_queries {
                    let relation = bp.relation(name).ok_or_else(|| {
                        DomainError::invalid("invalid_entity", format!("blueprint `{blueprint}` has no relation `{name}`"))
                    })?;
                    let at_most = if relation.many { MAX_RELATION_MATCHES } else { 1 };
                    let (found, more) = find(catalog, org, &relation.target, query, at_most).await?;
                    if more {
                        return Err(too_many(name, at_most));
                    }
                    let value = if relation.many {
                        Value::Array(found.into_iter().map(Value::String).collect())
                    } else {
                        found.into_iter().next().map_or(Value::Null, Value::String)
                    };
                    relations[name.as_str()] = value;
                }
            }
            let input = EntityInput::parse(&Value::Object(doc), blueprint)?;
            let options = WriteOptions { create_missing_related_entities: true, validation_only: dry_run };
            let write =
                write_entity_in(tx, blueprints, trigger, blueprint, &identifier, input, WriteMode::UpsertMerge, options).await?;
            let operation = match (write.created, write.changed) {
                (true, _) => EntityOperation::Created,
                (false, true) => EntityOperation::Updated,
                (false, false) => EntityOperation::Unchanged,
            };
            let mut preview = write.entity.to_json();
            if let Value::Object(fields) = &mut preview {
                fields.insert("operation".into(), json!(operation));
            }
            Ok((outcome(operation), preview))
        }
    }
}

fn too_many(relation: &str, at_most: usize) -> Error {
    let what = if at_most == 1 { "more than one entity".to_owned() } else { format!("more than {at_most} entities") };
    DomainError::invalid(
        "search_matches_too_many",
        format!("the search query of relation `{relation}` matched {what}; a single relation takes one, a many relation at most {MAX_RELATION_MATCHES}"),
    )
    .into()
}

/// Identifiers of at most `at_most` entities of `blueprint` matching a mapping's search
/// query, and whether more match: the search stops one match past them. Each lookup is one
/// search with its own budget (`SEARCH_LIMITS`, as `Catalog::search` spends it): it runs after
/// the mapping, on the async path, where the event's jq budget (a thread-local one) cannot
/// follow it. Crossing it fails the item with the search's reason.
async fn find(catalog: &Catalog, org: &str, blueprint: &str, query: &Value, at_most: usize) -> Result<(Vec<String>, bool)> {
    let query = Query::parse(query)?;
    let page = SearchPage { limit: Some(at_most), after: None };
    let (found, next) = catalog.search(org, Some(blueprint), query, &page).await?;
    Ok((found.into_iter().map(|e| e.identifier).collect(), next.is_some()))
}

/// The one entity a search-query identifier names; none or several is an error (Port: "must
/// match exactly one existing entity"; nothing is created).
async fn find_one(catalog: &Catalog, org: &str, blueprint: &str, query: &Value) -> Result<String> {
    let (mut found, more) = find(catalog, org, blueprint, query, 1).await?;
    match (found.pop(), more) {
        (Some(one), false) => Ok(one),
        (None, _) => Err(DomainError::invalid(
            "entity_not_found",
            format!("the identifier search query matched no entity of blueprint `{blueprint}`; nothing was written"),
        )
        .into()),
        (Some(_), true) => Err(DomainError::invalid(
            "search_matches_too_many",
            format!(
                "the identifier search query matched more than one entity of blueprint `{blueprint}`; it must match exactly one"
            ),
        )
        .into()),
    }
}
