//! Entity search: Port's `{combinator, rules}` queries, parsed and evaluated.
//!
//! Evaluation is pure: `relatedTo` rules need the graph of relations, which the engine walks
//! and hands in as [`RelatedTo::matches`] before calling [`Query::select`].
//!
//! One search is one unit of work with one budget ([`SEARCH_LIMITS`]): the engine reads the
//! candidates in pages and each page is matched by [`Query::select`], which spends what the
//! search has left ([`SearchSpend`]); the `relatedTo` walk spends the same budget.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use wharf_jq::{Exceeded, Limits};

use crate::Error;
use crate::entity::Entity;
use crate::json::{MAX_DEPTH, depth, type_name};
use crate::projection::Projection;
use crate::time::Timestamp;

const CODE: &str = "invalid_search_query";
const BUDGET_CODE: &str = "search_budget_exceeded";

/// The budget of one search (SPEC §12): 1 M steps, 1 s, 64 MiB allocated. A step is one rule
/// (or group) evaluated on one entity, or one entity a `relatedTo` rule reaches; the memory is
/// what matching allocates, the matches the search keeps included. The stack is not the
/// search's concern (its recursion is bounded by [`MAX_GROUP_DEPTH`]).
pub const SEARCH_LIMITS: Limits = Limits { steps: 1_000_000, time: Duration::from_secs(1), stack: 1 << 20, memory: 64 << 20 };

/// What one search has spent of [`SEARCH_LIMITS`] so far, over every page of candidates it
/// matched and every relation it walked. The engine keeps it across its store reads (a
/// thread-local budget cannot live across an `.await`) and hands in the time left, which it
/// measures from the search's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchSpend {
    /// Rules evaluated and entities reached.
    pub steps: u64,
    /// Bytes kept: the matches so far and the entities the `relatedTo` walks reached.
    pub memory: usize,
}

impl SearchSpend {
    /// What is left of the budget, as the limits of the next part of the search.
    fn limits_left(&self, time_left: Duration) -> Limits {
        Limits {
            steps: SEARCH_LIMITS.steps.saturating_sub(self.steps),
            time: time_left,
            stack: SEARCH_LIMITS.stack,
            memory: SEARCH_LIMITS.memory.saturating_sub(self.memory),
        }
    }

    /// Spends `steps` and `bytes` that the engine counted itself (the entities a `relatedTo`
    /// walk reached and what it keeps of them); the error names the limit crossed.
    pub fn charge(&mut self, steps: u64, bytes: usize, time_left: Duration) -> Result<(), Error> {
        self.steps = self.steps.saturating_add(steps);
        self.memory = self.memory.saturating_add(bytes);
        if self.steps > SEARCH_LIMITS.steps {
            Err(budget_exceeded(Exceeded::Steps))
        } else if self.memory > SEARCH_LIMITS.memory {
            Err(budget_exceeded(Exceeded::Memory))
        } else if time_left.is_zero() {
            Err(budget_exceeded(Exceeded::Time))
        } else {
            Ok(())
        }
    }
}

/// The error of a search that crossed its budget: which limit, and how to narrow the query.
pub fn budget_exceeded(which: Exceeded) -> Error {
    let limit = match which {
        Exceeded::Steps => format!(
            "more than {} steps: one per rule evaluated on each entity, one per entity a `relatedTo` rule reaches",
            SEARCH_LIMITS.steps
        ),
        Exceeded::Time => format!("longer than {} s", SEARCH_LIMITS.time.as_secs()),
        Exceeded::Memory => format!("more than {} MiB allocated, its matches included", SEARCH_LIMITS.memory >> 20),
        Exceeded::Stack => "rules nested too deeply".to_owned(),
    };
    Error::invalid(
        BUDGET_CODE,
        format!(
            "the search exceeded its budget ({limit}); narrow the query: search one blueprint (its own search route, or a \
             `$blueprint` rule), add rules that match fewer entities, or follow fewer relations"
        ),
    )
}
const DAY_MS: i64 = 86_400_000;

/// How many groups a query may nest, the query itself included. Parsing, matching and
/// resolving `relatedTo` rules recurse once per group, so this bounds their stack; Port's
/// query builder nests a few.
pub const MAX_GROUP_DEPTH: usize = 32;

/// What [`Query::candidates`] narrows a search to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// The entities with these identifiers (of the blueprints searched).
    Identifiers(Vec<String>),
    /// The entities whose relation `relation` holds `target` (alone or in a list).
    PointingAt { relation: String, target: String },
}

/// How a group's rules combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combinator {
    And,
    Or,
}

/// A search query: rules combined with `and` or `or`; groups nest.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub combinator: Combinator,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Group(Query),
    Compare { field: Field, op: Op, value: Value },
    RelatedTo(RelatedTo),
}

/// What a comparison rule reads from an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Identifier,
    Title,
    Icon,
    Blueprint,
    Team,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
    Property(String),
    Relation(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Contains,
    DoesNotContain,
    ContainsAny,
    BeginsWith,
    DoesNotBeginWith,
    EndsWith,
    DoesNotEndWith,
    IsEmpty,
    IsNotEmpty,
    Exists,
    Between,
    NotBetween,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            ">" => Self::Gt,
            ">=" => Self::Gte,
            "<" => Self::Lt,
            "<=" => Self::Lte,
            "in" => Self::In,
            "notIn" => Self::NotIn,
            "contains" => Self::Contains,
            "doesNotContains" | "doesNotContain" => Self::DoesNotContain,
            "containsAny" => Self::ContainsAny,
            "beginsWith" => Self::BeginsWith,
            "doesNotBeginsWith" | "doesNotBeginWith" => Self::DoesNotBeginWith,
            "endsWith" => Self::EndsWith,
            "doesNotEndsWith" | "doesNotEndWith" => Self::DoesNotEndWith,
            "isEmpty" => Self::IsEmpty,
            "isNotEmpty" => Self::IsNotEmpty,
            "exists" => Self::Exists,
            "between" => Self::Between,
            "notBetween" => Self::NotBetween,
            _ => return None,
        })
    }

    fn needs_value(self) -> bool {
        !matches!(self, Self::IsEmpty | Self::IsNotEmpty | Self::Exists)
    }
}

/// Which way a `relatedTo` rule follows relations from the named entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Entities the named ones point at, directly or through others.
    Upstream,
    /// Entities that point at the named ones, directly or through others.
    Downstream,
    /// Either way (Port's behaviour when `direction` is omitted).
    Both,
}

/// `{"operator": "relatedTo", "blueprint", "value", "direction"?, "required"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedTo {
    pub blueprint: String,
    pub identifiers: Vec<String>,
    pub direction: Direction,
    /// Follow only relations marked `required`.
    pub required: bool,
    /// The `(blueprint, identifier)` pairs related to the named entities, filled in by the
    /// engine; `None` matches nothing.
    pub matches: Option<HashSet<(String, String)>>,
}

impl Query {
    /// Reads a query document.
    pub fn parse(value: &Value) -> Result<Self, Error> {
        parse_group(value, "query", 1)
    }

    /// A query that matches every entity.
    pub fn all() -> Self {
        Self { combinator: Combinator::And, rules: Vec::new() }
    }

    /// Whether `entity` matches. `now` anchors date presets such as `lastWeek`. Outside a
    /// budget nothing is charged; inside one (as [`Query::select`] runs it), every rule costs
    /// a step and once the budget is crossed nothing matches.
    pub fn matches(&self, entity: &Entity, now: Timestamp) -> bool {
        self.matches_charged(entity, now, &mut 0).unwrap_or(false)
    }

    /// The candidates that match, cloned, under what is left of the search's budget: one step
    /// per rule evaluated on each candidate; the time and memory (the clones kept included)
    /// are checked as it goes. The error names the limit the search crossed.
    pub fn select(
        &self,
        candidates: &[Entity],
        now: Timestamp,
        spent: &mut SearchSpend,
        time_left: Duration,
    ) -> Result<Vec<Entity>, Error> {
        let limits = spent.limits_left(time_left);
        let run = wharf_jq::with_budget(limits, || {
            let allocated_before = wharf_jq::allocated();
            let mut steps = 0;
            let mut kept = Vec::new();
            for entity in candidates {
                match self.matches_charged(entity, now, &mut steps) {
                    Ok(true) => {
                        kept.push(entity.clone());
                        if wharf_jq::poll().is_err() {
                            break;
                        }
                    }
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
            let allocated = wharf_jq::allocated().saturating_sub(allocated_before);
            (kept, steps, allocated)
        });
        if let Some(which) = run.exceeded {
            return Err(budget_exceeded(which));
        }
        let (kept, steps, allocated) = run.value;
        // Invariant: `steps` counts exactly what `matches_charged` charged, so the next page's
        // budget starts from what this one left.
        spent.steps = spent.steps.saturating_add(steps);
        spent.memory = spent.memory.saturating_add(usize::try_from(allocated).unwrap_or(0));
        Ok(kept)
    }

    /// Whether `entity` matches, charging one step per rule evaluated (counted in `steps`).
    fn matches_charged(&self, entity: &Entity, now: Timestamp, steps: &mut u64) -> Result<bool, Exceeded> {
        for rule in &self.rules {
            let hit = rule.matches_charged(entity, now, steps)?;
            match self.combinator {
                Combinator::And if !hit => return Ok(false),
                Combinator::Or if hit => return Ok(true),
                _ => {}
            }
        }
        Ok(match self.combinator {
            Combinator::And => true,
            Combinator::Or => self.rules.is_empty(),
        })
    }

    /// The blueprints every match must belong to, when the top level requires
    /// `$blueprint = X` or `$blueprint in [...]`: lets the store read only those.
    pub fn blueprint_scope(&self) -> Option<Vec<String>> {
        if self.combinator == Combinator::Or && self.rules.len() > 1 {
            return None;
        }
        self.rules.iter().find_map(|rule| match rule {
            Rule::Compare { field: Field::Blueprint, op: Op::Eq, value: Value::String(bp) } => Some(vec![bp.clone()]),
            Rule::Compare { field: Field::Blueprint, op: Op::In, value: Value::Array(bps) } => {
                Some(bps.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            }
            _ => None,
        })
    }

    /// The entities this query can only match among, when a rule its top level requires names
    /// them: `$identifier` `=` or `in` (the identifiers named), or a relation `=` an identifier
    /// (the entities whose relation points at it). Lets the engine read those entities instead
    /// of every page of the blueprint; the whole query is still evaluated on each. Only string
    /// values name anything: an identifier or a relation target is a string, and a string
    /// never equals a value of another type.
    pub fn candidates(&self) -> Option<Candidates> {
        if self.combinator == Combinator::Or && self.rules.len() > 1 {
            return None;
        }
        self.rules.iter().find_map(|rule| match rule {
            Rule::Compare { field: Field::Identifier, op: Op::Eq, value: Value::String(id) } => {
                Some(Candidates::Identifiers(vec![id.clone()]))
            }
            Rule::Compare { field: Field::Identifier, op: Op::In, value: Value::Array(ids) } => {
                Some(Candidates::Identifiers(ids.iter().filter_map(Value::as_str).map(str::to_owned).collect()))
            }
            Rule::Compare { field: Field::Relation(relation), op: Op::Eq, value: Value::String(target) } => {
                Some(Candidates::PointingAt { relation: relation.clone(), target: target.clone() })
            }
            _ => None,
        })
    }

    /// The properties the query's comparisons read, each once.
    pub fn properties(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut pending: Vec<&Query> = vec![self];
        while let Some(query) = pending.pop() {
            for rule in &query.rules {
                match rule {
                    Rule::Compare { field: Field::Property(name), .. } if !out.contains(&name.as_str()) => out.push(name),
                    Rule::Group(group) => pending.push(group),
                    _ => {}
                }
            }
        }
        out
    }

    /// Every `relatedTo` rule, for the engine to resolve.
    pub fn related_rules_mut(&mut self) -> Vec<&mut RelatedTo> {
        let mut out = Vec::new();
        for rule in &mut self.rules {
            match rule {
                Rule::RelatedTo(related) => out.push(related),
                Rule::Group(group) => out.extend(group.related_rules_mut()),
                Rule::Compare { .. } => {}
            }
        }
        out
    }
}

/// The most matches one page of a search answers (Port's `limit`: 1 to 1,000).
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// A search request's body, as Port's search routes take it: the query (`{"query": {…}}`, or
/// `{combinator, rules}` at the top level, or neither: every entity), the page (`limit`, and
/// `from`, the `next` of the page before) and what each match keeps (`include`, `exclude`).
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub page: SearchPage,
    pub projection: Projection,
}

/// Which matches one answer holds: those after `after` in the search's order (blueprint, then
/// identifier), at most `limit` of them (`None`: every match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub limit: Option<usize>,
    pub after: Option<(String, String)>,
}

impl SearchRequest {
    /// Reads a search body. A body that is not an object searches every entity, whole.
    pub fn parse(body: &Value) -> Result<Self, Error> {
        let query = match body.get("query") {
            Some(query) => Query::parse(query)?,
            None if body.get("combinator").is_some() => Query::parse(body)?,
            None => Query::all(),
        };
        let limit = match body.get("limit") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64() {
                Some(limit @ 1..) if limit as usize <= MAX_SEARCH_LIMIT => Some(limit as usize),
                _ => {
                    return Err(Error::invalid(
                        "invalid_request",
                        format!("`limit` must be a whole number from 1 to {MAX_SEARCH_LIMIT}, not {value}"),
                    ));
                }
            },
        };
        let after = match body.get("from") {
            None | Some(Value::Null) => None,
            Some(Value::String(cursor)) => Some(decode_cursor(cursor)?),
            Some(other) => {
                return Err(Error::invalid("invalid_request", format!("`from` must be a string, not {}", type_name(other))));
            }
        };
        let projection = Projection::from_body(body.get("include"), body.get("exclude"))?;
        Ok(Self { query, page: SearchPage { limit, after }, projection })
    }
}

/// The `next` of a page whose last match is `entity`: where the next page starts. Opaque to
/// clients; it names the last match's blueprint and identifier.
pub fn cursor_after(entity: &Entity) -> String {
    let position = serde_json::to_vec(&(&entity.blueprint, &entity.identifier)).expect("two strings serialize");
    URL_SAFE_NO_PAD.encode(position)
}

fn decode_cursor(cursor: &str) -> Result<(String, String), Error> {
    URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|bytes| serde_json::from_slice::<(String, String)>(&bytes).ok()).ok_or_else(
        || {
            Error::invalid(
                "invalid_request",
                "`from` is not the `next` of an earlier page of a search; send the `next` as it was answered",
            )
        },
    )
}

impl Rule {
    fn matches_charged(&self, entity: &Entity, now: Timestamp, steps: &mut u64) -> Result<bool, Exceeded> {
        wharf_jq::charge_steps(1)?;
        *steps += 1;
        Ok(match self {
            Self::Group(query) => query.matches_charged(entity, now, steps)?,
            Self::RelatedTo(related) => {
                related.matches.as_ref().is_some_and(|set| set.contains(&(entity.blueprint.clone(), entity.identifier.clone())))
            }
            Self::Compare { field, op, value } => compare(&read(entity, field), *op, value, now),
        })
    }
}

fn parse_group(value: &Value, path: &str, level: usize) -> Result<Query, Error> {
    if level > MAX_GROUP_DEPTH {
        return Err(Error::invalid(CODE, format!("`{path}` nests more than {MAX_GROUP_DEPTH} groups of rules")));
    }
    let Value::Object(doc) = value else {
        return Err(Error::invalid(
            CODE,
            format!("`{path}` must be an object with `combinator` and `rules`, not {}", type_name(value)),
        ));
    };
    let combinator = match doc.get("combinator").and_then(Value::as_str) {
        Some("and") => Combinator::And,
        Some("or") => Combinator::Or,
        _ => return Err(Error::invalid(CODE, format!("`{path}.combinator` must be \"and\" or \"or\""))),
    };
    let Some(Value::Array(rules)) = doc.get("rules") else {
        return Err(Error::invalid(CODE, format!("`{path}.rules` must be an array")));
    };
    let rules = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| parse_rule(rule, &format!("{path}.rules[{i}]"), level))
        .collect::<Result<_, _>>()?;
    Ok(Query { combinator, rules })
}

fn parse_rule(value: &Value, path: &str, level: usize) -> Result<Rule, Error> {
    let Value::Object(doc) = value else {
        return Err(Error::invalid(CODE, format!("`{path}` must be an object, not {}", type_name(value))));
    };
    if doc.contains_key("combinator") {
        return parse_group(value, path, level + 1).map(Rule::Group);
    }
    let operator = doc
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(CODE, format!("`{path}.operator` is missing")))?;
    if operator == "relatedTo" {
        return parse_related(doc, path).map(Rule::RelatedTo);
    }
    let op = Op::parse(operator)
        .ok_or_else(|| Error::invalid(CODE, format!("`{path}.operator` `{operator}` is not a search operator")))?;
    let field = match (doc.get("property").and_then(Value::as_str), doc.get("relation").and_then(Value::as_str)) {
        (Some(property), _) => parse_field(property),
        (None, Some(relation)) => Field::Relation(relation.to_owned()),
        (None, None) => return Err(Error::invalid(CODE, format!("`{path}` needs a `property` (or `relation`) to compare"))),
    };
    // Comparisons recurse through a value as deep as the shallower side; a value that deep
    // could not be stored either (a mapping's query values come from jq).
    if let Some(value) = doc.get("value")
        && depth(value) >= MAX_DEPTH
    {
        return Err(Error::invalid(CODE, format!("`{path}.value` nests {MAX_DEPTH} or more arrays or objects")));
    }
    let value = doc.get("value").cloned().unwrap_or(Value::Null);
    if op.needs_value() && !doc.contains_key("value") {
        return Err(Error::invalid(CODE, format!("`{path}.value` is missing for operator `{operator}`")));
    }
    if matches!(op, Op::In | Op::NotIn | Op::ContainsAny) && !value.is_array() {
        return Err(Error::invalid(CODE, format!("`{path}.value` must be an array for operator `{operator}`")));
    }
    if matches!(op, Op::Between | Op::NotBetween) {
        date_range(&value, Timestamp::from_millis(0)).ok_or_else(|| {
            Error::invalid(CODE, format!("`{path}.value` must be {{\"from\", \"to\"}} dates or {{\"preset\"}} for `{operator}`"))
        })?;
    }
    Ok(Rule::Compare { field, op, value })
}

fn parse_field(name: &str) -> Field {
    match name {
        "$identifier" => Field::Identifier,
        "$title" => Field::Title,
        "$icon" => Field::Icon,
        "$blueprint" => Field::Blueprint,
        "$team" => Field::Team,
        "$createdAt" => Field::CreatedAt,
        "$updatedAt" => Field::UpdatedAt,
        "$createdBy" => Field::CreatedBy,
        "$updatedBy" => Field::UpdatedBy,
        other => Field::Property(other.to_owned()),
    }
}

fn parse_related(doc: &Map<String, Value>, path: &str) -> Result<RelatedTo, Error> {
    let blueprint = doc
        .get("blueprint")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(CODE, format!("`{path}.blueprint` is required for `relatedTo`")))?;
    let identifiers = match doc.get("value") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => {
            ids.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => return Err(Error::invalid(CODE, format!("`{path}.value` must be an identifier or an array of identifiers"))),
    };
    let direction = match doc.get("direction").and_then(Value::as_str) {
        None => Direction::Both,
        Some("upstream") => Direction::Upstream,
        Some("downstream") => Direction::Downstream,
        Some(other) => {
            return Err(Error::invalid(CODE, format!("`{path}.direction` `{other}` must be \"upstream\" or \"downstream\"")));
        }
    };
    let required = doc.get("required").and_then(Value::as_bool).unwrap_or(false);
    Ok(RelatedTo { blueprint: blueprint.to_owned(), identifiers, direction, required, matches: None })
}

/// The field's value; properties and relations are borrowed (a rule evaluated on every
/// candidate must not copy a large property each time).
fn read<'e>(entity: &'e Entity, field: &Field) -> Cow<'e, Value> {
    Cow::Owned(match field {
        Field::Identifier => Value::String(entity.identifier.clone()),
        Field::Title => entity.title.clone().map_or(Value::Null, Value::String),
        Field::Icon => entity.icon.clone().map_or(Value::Null, Value::String),
        Field::Blueprint => Value::String(entity.blueprint.clone()),
        Field::Team => Value::Array(entity.team.iter().cloned().map(Value::String).collect()),
        Field::CreatedAt => Value::String(entity.audited.created_at.to_iso()),
        Field::UpdatedAt => Value::String(entity.audited.updated_at.to_iso()),
        Field::CreatedBy => Value::String(entity.audited.created_by.clone()),
        Field::UpdatedBy => Value::String(entity.audited.updated_by.clone()),
        Field::Property(name) => return entity.properties.get(name).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
        Field::Relation(name) => return entity.relations.get(name).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
    })
}

fn compare(actual: &Value, op: Op, expected: &Value, now: Timestamp) -> bool {
    match op {
        Op::Eq => equals(actual, expected),
        Op::Ne => !equals(actual, expected),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => order(actual, expected).is_some_and(|ord| match op {
            Op::Gt => ord.is_gt(),
            Op::Gte => ord.is_ge(),
            Op::Lt => ord.is_lt(),
            _ => ord.is_le(),
        }),
        Op::In => in_list(actual, expected),
        Op::NotIn => !in_list(actual, expected),
        Op::Contains => contains(actual, expected),
        Op::DoesNotContain => !contains(actual, expected),
        Op::ContainsAny => expected.as_array().is_some_and(|wanted| wanted.iter().any(|w| contains(actual, w))),
        Op::BeginsWith => text_test(actual, expected, |a, e| a.starts_with(e)),
        Op::DoesNotBeginWith => !text_test(actual, expected, |a, e| a.starts_with(e)),
        Op::EndsWith => text_test(actual, expected, |a, e| a.ends_with(e)),
        Op::DoesNotEndWith => !text_test(actual, expected, |a, e| a.ends_with(e)),
        Op::IsEmpty => is_empty(actual),
        Op::IsNotEmpty => !is_empty(actual),
        Op::Exists => !actual.is_null(),
        Op::Between => within(actual, expected, now),
        Op::NotBetween => !within(actual, expected, now),
    }
}

/// Equality; an array-valued field (team, many relations, arrays) equals a scalar it holds.
fn equals(actual: &Value, expected: &Value) -> bool {
    if actual == expected || numbers_equal(actual, expected) {
        return true;
    }
    match (actual, expected) {
        (Value::Array(items), scalar) if !scalar.is_array() => items.iter().any(|item| item == scalar),
        _ => false,
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

fn in_list(actual: &Value, list: &Value) -> bool {
    list.as_array().is_some_and(|list| list.iter().any(|candidate| equals(actual, candidate)))
}

fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
        (Value::Array(items), wanted) => items.iter().any(|item| item == wanted),
        _ => false,
    }
}

fn text_test(actual: &Value, expected: &Value, test: impl Fn(&str, &str) -> bool) -> bool {
    matches!((actual, expected), (Value::String(a), Value::String(e)) if test(a, e))
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Orders numbers numerically, dates chronologically, other strings lexically.
fn order(actual: &Value, expected: &Value) -> Option<std::cmp::Ordering> {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => match (Timestamp::parse(a), Timestamp::parse(b)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(a.cmp(b)),
        },
        _ => None,
    }
}

fn within(actual: &Value, range: &Value, now: Timestamp) -> bool {
    let Some(at) = actual.as_str().and_then(Timestamp::parse) else { return false };
    date_range(range, now).is_some_and(|(from, to)| from <= at && at <= to)
}

/// `{"from", "to"}` (either may be omitted) or `{"preset"}`, relative to `now`.
fn date_range(range: &Value, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    if let Some(preset) = range.get("preset").and_then(Value::as_str) {
        let start_of_today = Timestamp::from_millis(now.millis() - now.millis().rem_euclid(DAY_MS));
        let days_back = |days: i64| (now.plus_millis(-days * DAY_MS), now);
        return Some(match preset {
            "today" => (start_of_today, start_of_today.plus_millis(DAY_MS - 1)),
            "tomorrow" => (start_of_today.plus_millis(DAY_MS), start_of_today.plus_millis(2 * DAY_MS - 1)),
            "yesterday" => (start_of_today.plus_millis(-DAY_MS), start_of_today.plus_millis(-1)),
            "lastWeek" => days_back(7),
            "last2Weeks" => days_back(14),
            "lastMonth" => days_back(30),
            "last3Months" => days_back(90),
            "last6Months" => days_back(180),
            "last12Months" => days_back(365),
            _ => return None,
        });
    }
    let bound = |key: &str, default: i64| match range.get(key) {
        None | Some(Value::Null) => Some(Timestamp::from_millis(default)),
        Some(value) => value.as_str().and_then(Timestamp::parse),
    };
    if range.get("from").is_none() && range.get("to").is_none() {
        return None;
    }
    Some((bound("from", i64::MIN)?, bound("to", i64::MAX)?))
}

/// The unit tests count allocations as the server does, so the memory limit holds in them.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: wharf_jq::CountingAlloc<std::alloc::System> = wharf_jq::CountingAlloc(std::alloc::System);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::Audited;
    use serde_json::json;

    fn entity(id: &str, props: Value) -> Entity {
        Entity {
            identifier: id.to_owned(),
            title: Some(format!("The {id}")),
            icon: None,
            blueprint: "service".to_owned(),
            team: vec!["core".to_owned()],
            properties: props.as_object().cloned().unwrap_or_default(),
            relations: Map::new(),
            audited: Audited::new("me", Timestamp::parse("2024-06-01T00:00:00Z").unwrap()),
        }
    }

    fn q(doc: Value) -> Query {
        Query::parse(&doc).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::parse("2024-06-05T12:00:00Z").unwrap()
    }

    #[test]
    fn comparisons() {
        let e = entity(
            "api",
            json!({"stars": 5, "lang": "rust", "tags": ["a", "b"], "deployed": "2024-06-04T00:00:00Z", "empty": ""}),
        );
        let cases = [
            (json!({"property": "stars", "operator": ">", "value": 4}), true),
            (json!({"property": "stars", "operator": "<=", "value": 4}), false),
            (json!({"property": "lang", "operator": "=", "value": "rust"}), true),
            (json!({"property": "lang", "operator": "!=", "value": "rust"}), false),
            (json!({"property": "lang", "operator": "in", "value": ["go", "rust"]}), true),
            (json!({"property": "lang", "operator": "notIn", "value": ["go"]}), true),
            (json!({"property": "tags", "operator": "contains", "value": "b"}), true),
            (json!({"property": "tags", "operator": "containsAny", "value": ["x", "a"]}), true),
            (json!({"property": "lang", "operator": "contains", "value": "us"}), true),
            (json!({"property": "lang", "operator": "beginsWith", "value": "ru"}), true),
            (json!({"property": "lang", "operator": "endsWith", "value": "ru"}), false),
            (json!({"property": "empty", "operator": "isEmpty"}), true),
            (json!({"property": "missing", "operator": "isEmpty"}), true),
            (json!({"property": "lang", "operator": "exists"}), true),
            (json!({"property": "missing", "operator": "exists"}), false),
            (json!({"property": "$team", "operator": "=", "value": "core"}), true),
            (json!({"property": "$identifier", "operator": "=", "value": "api"}), true),
            (
                json!({"property": "deployed", "operator": "between", "value": {"from": "2024-06-01T00:00:00Z", "to": "2024-06-05T00:00:00Z"}}),
                true,
            ),
            (json!({"property": "deployed", "operator": "between", "value": {"preset": "lastWeek"}}), true),
            (json!({"property": "deployed", "operator": "between", "value": {"preset": "today"}}), false),
            (json!({"property": "$createdAt", "operator": "<", "value": "2024-06-02T00:00:00Z"}), true),
        ];
        for (rule, expected) in cases {
            let query = q(json!({"combinator": "and", "rules": [rule.clone()]}));
            assert_eq!(query.matches(&e, now()), expected, "{rule}");
        }
    }

    #[test]
    fn groups_nest_and_combine() {
        let e = entity("api", json!({"stars": 5}));
        let query = q(json!({"combinator": "or", "rules": [
            {"property": "stars", "operator": "=", "value": 1},
            {"combinator": "and", "rules": [
                {"property": "stars", "operator": "=", "value": 5},
                {"property": "$blueprint", "operator": "=", "value": "service"}
            ]}
        ]}));
        assert!(query.matches(&e, now()));
        assert!(q(json!({"combinator": "or", "rules": []})).matches(&e, now()));
    }

    #[test]
    fn blueprint_scope_and_related_rules() {
        let mut query = q(json!({"combinator": "and", "rules": [
            {"property": "$blueprint", "operator": "=", "value": "service"},
            {"operator": "relatedTo", "blueprint": "team", "value": "core", "direction": "upstream"}
        ]}));
        assert_eq!(query.blueprint_scope(), Some(vec!["service".to_owned()]));
        let e = entity("api", json!({}));
        assert!(!query.matches(&e, now()), "an unresolved relatedTo matches nothing");
        query.related_rules_mut()[0].matches = Some(HashSet::from([("service".to_owned(), "api".to_owned())]));
        assert!(query.matches(&e, now()));
    }

    fn nested_value(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    /// `levels` groups, each the only rule of the one above, around one rule.
    fn nested_groups(levels: usize) -> Value {
        let rule = json!({"property": "stars", "operator": "=", "value": 5});
        (0..levels).fold(rule, |inner, _| json!({"combinator": "and", "rules": [inner]}))
    }

    #[test]
    fn nesting_is_bounded_and_deep_values_compare() {
        let e = entity("api", json!({"stars": 5, "deep": nested_value(100)}));
        assert!(q(nested_groups(MAX_GROUP_DEPTH)).matches(&e, now()));
        let err = Query::parse(&nested_groups(200)).unwrap_err();
        assert!(err.message.contains("rules[0].rules[0]"), "{}", err.message);
        let same = q(json!({"combinator": "and", "rules": [{"property": "deep", "operator": "=", "value": nested_value(100)}]}));
        assert!(same.matches(&e, now()));
        let other =
            q(json!({"combinator": "and", "rules": [{"property": "deep", "operator": "in", "value": [nested_value(101)]}]}));
        assert!(!other.matches(&e, now()));
    }

    #[test]
    fn parse_errors_name_the_path() {
        for (doc, part) in [
            (json!([]), "`query` must be an object"),
            (json!({"combinator": "xor", "rules": []}), "combinator"),
            (json!({"combinator": "and", "rules": [{"property": "a", "operator": "~"}]}), "rules[0].operator"),
            (json!({"combinator": "and", "rules": [{"property": "a", "operator": "in", "value": 1}]}), "must be an array"),
            (json!({"combinator": "and", "rules": [{"combinator": "and", "rules": [{"operator": "="}]}]}), "rules[0].rules[0]"),
            (
                json!({"combinator": "and", "rules": [{"property": "d", "operator": "between", "value": {"preset": "someday"}}]}),
                "preset",
            ),
            (json!({"combinator": "and", "rules": [{"operator": "relatedTo", "value": "x"}]}), "blueprint"),
            (
                json!({"combinator": "and", "rules": [{"property": "a", "operator": "=", "value": nested_value(MAX_DEPTH)}]}),
                "`query.rules[0].value` nests 128",
            ),
            (nested_groups(MAX_GROUP_DEPTH + 1), "nests more than 32 groups"),
        ] {
            let err = Query::parse(&doc).unwrap_err();
            assert!(err.message.contains(part), "{doc}: {}", err.message);
        }
    }

    fn budget_message(err: &Error) -> &str {
        assert_eq!((err.kind, err.code), (crate::ErrorKind::Unprocessable, "search_budget_exceeded"), "{}", err.message);
        &err.message
    }

    #[test]
    fn a_search_spends_one_budget_of_steps_over_its_pages() {
        let page: Vec<Entity> = (0..1_000).map(|i| entity(&format!("e{i}"), json!({"stars": i}))).collect();
        // `or` of rules that never match: every rule is evaluated on every entity.
        let rules: Vec<Value> = (0..100).map(|_| json!({"property": "missing", "operator": "exists"})).collect();
        let query = q(json!({"combinator": "or", "rules": rules}));
        let mut spent = SearchSpend::default();
        for _ in 0..9 {
            assert_eq!(query.select(&page, now(), &mut spent, Duration::from_secs(60)).unwrap(), vec![]);
        }
        assert_eq!(spent.steps, 900_000, "one step per rule per entity");
        // The tenth page fits exactly; one more rule evaluation crosses the budget.
        assert!(query.select(&page, now(), &mut spent, Duration::from_secs(60)).is_ok());
        let err = query.select(&page[..1], now(), &mut spent, Duration::from_secs(60)).unwrap_err();
        assert!(budget_message(&err).contains("more than 1000000 steps"), "{}", err.message);
        assert!(err.message.contains("narrow the query"), "{}", err.message);

        // A cheap search on the same candidates keeps what matches.
        let cheap = q(json!({"combinator": "and", "rules": [{"property": "stars", "operator": "<", "value": 3}]}));
        let found = cheap.select(&page, now(), &mut SearchSpend::default(), Duration::from_secs(60)).unwrap();
        assert_eq!(found.iter().map(|e| e.identifier.as_str()).collect::<Vec<_>>(), ["e0", "e1", "e2"]);
    }

    #[test]
    fn a_search_past_its_time_or_memory_fails_naming_the_limit() {
        let page: Vec<Entity> = (0..2_000).map(|i| entity(&format!("e{i}"), json!({}))).collect();
        let all = Query::all();
        let err = q(json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "exists"}]}))
            .select(&page, now(), &mut SearchSpend::default(), Duration::ZERO)
            .unwrap_err();
        assert!(budget_message(&err).contains("longer than 1 s"), "{}", err.message);

        // Matches are kept, so they count: 40 entities of 1 MiB fit, the next 40 do not.
        let big: Vec<Entity> = (0..40).map(|i| entity(&format!("b{i}"), json!({"blob": "x".repeat(1 << 20)}))).collect();
        let mut spent = SearchSpend::default();
        assert_eq!(all.select(&big, now(), &mut spent, Duration::from_secs(60)).unwrap().len(), 40);
        assert!(spent.memory >= 40 << 20, "{spent:?}");
        let err = all.select(&big, now(), &mut spent, Duration::from_secs(60)).unwrap_err();
        assert!(budget_message(&err).contains("more than 64 MiB allocated"), "{}", err.message);

        // What the engine counts itself (a `relatedTo` walk) spends the same budget.
        let mut spent = SearchSpend { steps: SEARCH_LIMITS.steps - 1, memory: 0 };
        assert!(spent.charge(1, 10, Duration::from_secs(1)).is_ok());
        assert!(budget_message(&spent.charge(1, 0, Duration::from_secs(1)).unwrap_err()).contains("steps"));
        assert!(budget_message(&SearchSpend::default().charge(0, 0, Duration::ZERO).unwrap_err()).contains("1 s"));
    }

    #[test]
    fn a_search_body_names_its_query_page_and_projection() {
        let whole = SearchRequest::parse(&json!({"combinator": "and", "rules": []})).unwrap();
        assert_eq!((whole.page.clone(), whole.projection.keeps_everything()), (SearchPage::default(), true));
        assert_eq!(SearchRequest::parse(&json!("not an object")).unwrap().page, SearchPage::default());

        let svc = entity("svc/1", json!({}));
        let next = cursor_after(&svc);
        let request = SearchRequest::parse(&json!({
            "query": {"combinator": "or", "rules": []}, "limit": 2, "from": next, "include": ["identifier"]
        }))
        .unwrap();
        assert_eq!(request.query.combinator, Combinator::Or);
        assert_eq!(request.page, SearchPage { limit: Some(2), after: Some((svc.blueprint.clone(), "svc/1".into())) });
        assert_eq!(request.projection.apply(svc.to_json()), json!({"identifier": "svc/1"}));
    }

    #[test]
    fn a_bad_page_is_refused_naming_the_field() {
        let message = |body: Value| SearchRequest::parse(&body).unwrap_err().message;
        for limit in [json!(0), json!(1001), json!(2.5), json!(-1), json!("10")] {
            assert!(message(json!({"limit": limit})).contains("`limit` must be a whole number from 1 to 1000"), "{limit}");
        }
        assert!(message(json!({"from": 3})).contains("`from` must be a string"));
        for cursor in ["not base64!", "aGVsbG8", ""] {
            assert!(message(json!({"from": cursor})).contains("`from` is not the `next`"), "{cursor}");
        }
        assert!(message(json!({"exclude": "title"})).contains("`exclude` must be an array"));
        assert!(message(json!({"query": {"rules": []}})).contains("combinator"));
    }

    #[test]
    fn a_query_names_its_candidates_only_when_every_match_must_be_among_them() {
        let ids = |ids: &[&str]| Some(Candidates::Identifiers(ids.iter().map(|s| s.to_string()).collect()));
        let rule =
            |property: &str, operator: &str, value: Value| json!({"property": property, "operator": operator, "value": value});
        let and = |rules: Vec<Value>| q(json!({"combinator": "and", "rules": rules}));
        let or = |rules: Vec<Value>| q(json!({"combinator": "or", "rules": rules}));

        assert_eq!(and(vec![rule("$identifier", "=", json!("api")), rule("stars", ">", json!(3))]).candidates(), ids(&["api"]));
        assert_eq!(or(vec![rule("$identifier", "in", json!(["a", 5, "b"]))]).candidates(), ids(&["a", "b"]));
        assert_eq!(
            and(vec![json!({"relation": "owner", "operator": "=", "value": "core"})]).candidates(),
            Some(Candidates::PointingAt { relation: "owner".into(), target: "core".into() })
        );
        // Not narrowed: an `or` of several rules, a rule inside a group, other operators and
        // values that are not strings.
        assert_eq!(or(vec![rule("$identifier", "=", json!("a")), rule("stars", ">", json!(3))]).candidates(), None);
        assert_eq!(and(vec![json!({"combinator": "and", "rules": [rule("$identifier", "=", json!("a"))]})]).candidates(), None);
        assert_eq!(and(vec![rule("$identifier", "contains", json!("a"))]).candidates(), None);
        assert_eq!(and(vec![rule("$identifier", "=", json!(5))]).candidates(), None);
        assert_eq!(and(vec![json!({"relation": "owner", "operator": "in", "value": ["core"]})]).candidates(), None);
        assert_eq!(and(vec![]).candidates(), None);
    }
}
