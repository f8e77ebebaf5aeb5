//! Turning rows into domain types. Stored JSON that does not parse is reported as corrupt
//! data, never unwrapped.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef};
use wharf_core::entity::Entity;
use wharf_core::time::Timestamp;

use crate::{Error, Result};

pub(crate) const ENTITY_COLUMNS: &str =
    "blueprint, identifier, title, icon, team, properties, relations, created_at, created_by, updated_at, updated_by";

pub(crate) const BLUEPRINT_COLUMNS: &str = "definition, created_at, created_by, updated_at, updated_by";

pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| Error::Corrupt { what, detail: err.to_string() })
}

/// Stored JSON that one unreadable row must not make every list fail on (an entity's
/// properties, a change's diff): on an error it is logged and `fallback` stands in for it.
/// Writes refuse documents too deep to read back, so only rows stored before they did (or
/// damaged since) take this path.
pub(crate) fn json_or<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
    whose: impl FnOnce() -> String,
    fallback: impl FnOnce(&serde_json::Error) -> T,
) -> T {
    serde_json::from_str(text).unwrap_or_else(|err| {
        tracing::warn!(what, whose = %whose(), error = %err, "stored JSON cannot be read; shown without it");
        fallback(&err)
    })
}

/// A change's `diff.before`/`diff.after` as stored, or, when it cannot be read, a marker
/// saying so (`{"$unreadable": "…"}`) so that the audit log and the router go on.
pub(crate) fn diff_json(text: &str, whose: impl FnOnce() -> String) -> Value {
    json_or(
        text,
        "change diff",
        whose,
        |err| serde_json::json!({"$unreadable": format!("the stored document cannot be read: {err}")}),
    )
}

pub(crate) fn to_text(value: &impl serde::Serialize) -> String {
    // Values built from JSON documents always serialize.
    serde_json::to_string(value).expect("JSON values serialize")
}

/// One row's columns by name, from either driver: sqlx's rows and the writer thread's
/// rusqlite rows (implemented in `sqlite/write_tx.rs`), so that a type read on both paths is
/// built by one function.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String>;
    fn optional_text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
    fn optional_int(&self, name: &str) -> Result<Option<i64>>;
}

impl Columns for AnyRow {
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.try_get(name)?)
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.try_get(name)?)
    }

    fn int(&self, name: &str) -> Result<i64> {
        Ok(self.try_get(name)?)
    }

    fn optional_int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.try_get(name)?)
    }
}

fn audited(row: &impl Columns) -> Result<Audited> {
    Ok(Audited {
        created_at: Timestamp::from_millis(row.int("created_at")?),
        created_by: row.text("created_by")?,
        updated_at: Timestamp::from_millis(row.int("updated_at")?),
        updated_by: row.text("updated_by")?,
    })
}

/// An entity row. A JSON column that cannot be read (nested too deeply, say) reads as empty,
/// logged: the entity stays listed, searchable, replaceable and deletable, and a write
/// stores readable columns again.
pub(crate) fn entity(row: &impl Columns) -> Result<Entity> {
    let identifier = row.text("identifier")?;
    let blueprint = row.text("blueprint")?;
    let whose = || format!("entity `{identifier}` of blueprint `{blueprint}`");
    let team = json_or(&row.text("team")?, "entity team", whose, |_| Vec::new());
    let properties = json_or(&row.text("properties")?, "entity properties", whose, |_| Map::new());
    let relations = json_or(&row.text("relations")?, "entity relations", whose, |_| Map::new());
    Ok(Entity {
        title: row.optional_text("title")?,
        icon: row.optional_text("icon")?,
        team,
        properties,
        relations,
        audited: audited(row)?,
        identifier,
        blueprint,
    })
}

pub(crate) fn blueprint(row: &impl Columns) -> Result<Blueprint> {
    let def: BlueprintDef = json(&row.text("definition")?, "blueprint definition")?;
    Ok(Blueprint { def, audited: audited(row)? })
}

/// Bound values one statement takes at most. SQLite finds a parameter's name by a linear scan
/// (`sqlite3_bind_parameter_name`, which sqlx calls for every parameter), so binding costs
/// grow with the square of a statement's parameters: a 1,000-value insert spent more time
/// there than in writing its rows. Past about a hundred values, more rows per statement cost
/// more than the statements they save.
pub(crate) const MAX_VALUES: usize = 128;

/// How many rows of `values_per_row` values one multi-row statement takes (or ids one `IN`
/// list takes, with 1).
pub(crate) const fn rows_per_statement(values_per_row: usize) -> usize {
    let rows = MAX_VALUES / values_per_row;
    if rows == 0 { 1 } else { rows }
}

/// `$start, $start+1, …` placeholders for `count` values.
pub(crate) fn placeholders(start: usize, count: usize) -> String {
    (start..start + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}
