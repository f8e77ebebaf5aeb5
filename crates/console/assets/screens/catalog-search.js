// The catalog's search rules: the fields a rule can compare, the operators each kind of field
// takes (Port's), rules kept in the URL as text, and the search body built from them. Pure
// functions, no view: the entity table, the relations of an entity and the tests use them.

// Rules read each entity's own fields through these names (Port's `$` meta properties).
export const META_FIELDS = [
  ['$identifier', 'Identifier', 'string'],
  ['$title', 'Title', 'string'],
  ['$team', 'Team', 'array'],
  ['$createdAt', 'Created at', 'date'],
  ['$updatedAt', 'Updated at', 'date'],
  ['$createdBy', 'Created by', 'string'],
  ['$updatedBy', 'Updated by', 'string'],
];

// A relation's field key: `relation:owner` (property identifiers cannot hold a `:`).
export const RELATION_PREFIX = 'relation:';

// Port's operators, in the order the rule builder offers them, with the words it shows.
export const OPERATORS = {
  '=': '=',
  '!=': '!=',
  '>': '>',
  '>=': '>=',
  '<': '<',
  '<=': '<=',
  contains: 'contains',
  doesNotContains: 'does not contain',
  containsAny: 'contains any of',
  beginsWith: 'begins with',
  endsWith: 'ends with',
  in: 'in',
  notIn: 'not in',
  between: 'between',
  notBetween: 'not between',
  isEmpty: 'is empty',
  isNotEmpty: 'is not empty',
  exists: 'exists',
};

const BY_KIND = {
  string: ['=', '!=', 'contains', 'doesNotContains', 'beginsWith', 'endsWith', 'in', 'notIn', '>', '<', 'isEmpty', 'isNotEmpty'],
  number: ['=', '!=', '>', '>=', '<', '<=', 'in', 'notIn', 'isEmpty', 'isNotEmpty'],
  boolean: ['=', '!=', 'isEmpty', 'isNotEmpty'],
  date: ['>', '>=', '<', '<=', 'between', 'notBetween', '=', 'isEmpty', 'isNotEmpty'],
  array: ['contains', 'doesNotContains', 'containsAny', 'isEmpty', 'isNotEmpty'],
  object: ['=', '!=', 'isEmpty', 'isNotEmpty', 'exists'],
  relation: ['=', '!=', 'in', 'notIn', 'isEmpty', 'isNotEmpty'],
  manyRelation: ['=', 'contains', 'doesNotContains', 'containsAny', 'isEmpty', 'isNotEmpty'],
};

// Operators that take no value; ones that take a list (comma-separated in the form).
export const NO_VALUE = new Set(['isEmpty', 'isNotEmpty', 'exists']);
export const LIST_VALUE = new Set(['in', 'notIn', 'containsAny']);
export const RANGE_VALUE = new Set(['between', 'notBetween']);
export const DATE_PRESETS = ['today', 'tomorrow', 'yesterday', 'lastWeek', 'last2Weeks', 'lastMonth', 'last3Months', 'last6Months', 'last12Months'];

// The kind of a blueprint property, for its operators and how a typed value is read.
export function propertyKind(property) {
  if (!property) return 'string';
  if (property.type === 'string' && (property.format === 'date-time' || property.format === 'date')) return 'date';
  if (['number', 'boolean', 'array', 'object'].includes(property.type)) return property.type;
  return 'string';
}

// A blueprint's properties as its entities are answered: the schema's, then its mirror and
// calculation properties (values the API computes when it reads an entity), each name once:
// `[[name, definition, computed]]`, `computed` being '', 'mirror' or 'calculation'.
export function blueprintProperties(blueprint) {
  const properties = Object.entries(blueprint?.schema?.properties || {}).map(([name, p]) => [name, p, '']);
  const seen = new Set(properties.map(([name]) => name));
  for (const [computed, defs] of [['mirror', blueprint?.mirrorProperties], ['calculation', blueprint?.calculationProperties]]) {
    for (const [name, def] of Object.entries(defs || {})) {
      if (!seen.has(name)) {
        seen.add(name);
        properties.push([name, def || {}, computed]);
      }
    }
  }
  return properties;
}

// Every field a rule on `blueprint`'s entities can compare: `[{key, label, kind}]` (computed
// properties too: a search computes them).
export function ruleFields(blueprint) {
  const fields = META_FIELDS.map(([key, label, kind]) => ({ key, label: `${label} (${key})`, kind }));
  for (const [name, property] of blueprintProperties(blueprint)) {
    fields.push({ key: name, label: property.title && property.title !== name ? `${property.title} (${name})` : name, kind: propertyKind(property) });
  }
  for (const [name, relation] of Object.entries(blueprint?.relations || {})) {
    fields.push({
      key: RELATION_PREFIX + name,
      label: `Relation: ${relation.title && relation.title !== name ? `${relation.title} (${name})` : name}`,
      kind: relation.many ? 'manyRelation' : 'relation',
    });
  }
  return fields;
}

export function operatorsFor(kind) {
  return BY_KIND[kind] || BY_KIND.string;
}

// A typed value for a rule, read from what the form holds (text).
function typedScalar(text, kind) {
  const trimmed = text.trim();
  if (kind === 'number' && trimmed !== '' && !Number.isNaN(Number(trimmed))) return Number(trimmed);
  if (kind === 'boolean' && (trimmed === 'true' || trimmed === 'false')) return trimmed === 'true';
  return kind === 'number' || kind === 'boolean' ? trimmed : text;
}

// A date range: a preset name, or `FROM/TO` (either side may be empty).
function rangeValue(text) {
  const trimmed = text.trim();
  if (DATE_PRESETS.includes(trimmed)) return { preset: trimmed };
  const [from, to] = trimmed.split('/').map((s) => s.trim());
  const range = {};
  if (from) range.from = from;
  if (to) range.to = to;
  return range;
}

// One rule of the form (`{field, op, value}`, all text) → one rule of Port's query.
export function toSearchRule(rule, fields) {
  const field = fields.find((f) => f.key === rule.field) || { key: rule.field, kind: 'string' };
  const target = field.key.startsWith(RELATION_PREFIX)
    ? { relation: field.key.slice(RELATION_PREFIX.length) }
    : { property: field.key };
  const out = { ...target, operator: rule.op };
  if (NO_VALUE.has(rule.op)) return out;
  const text = rule.value ?? '';
  if (LIST_VALUE.has(rule.op)) {
    out.value = text.split(',').map((s) => s.trim()).filter(Boolean).map((v) => typedScalar(v, field.kind));
  } else if (RANGE_VALUE.has(rule.op)) {
    out.value = rangeValue(text);
  } else {
    out.value = typedScalar(text, field.kind);
  }
  return out;
}

// The text filter: identifier or title contains the text.
export function textRule(text) {
  return {
    combinator: 'or',
    rules: [
      { property: '$identifier', operator: 'contains', value: text },
      { property: '$title', operator: 'contains', value: text },
    ],
  };
}

// The rules of the entity table, as the URL keeps them: `[{field, op, value}]` ↔ JSON text.
export function parseRules(text) {
  if (!text) return [];
  try {
    const rules = JSON.parse(text);
    if (!Array.isArray(rules)) return [];
    return rules
      .filter((r) => r && typeof r.f === 'string' && typeof r.o === 'string')
      .map((r) => ({ field: r.f, op: r.o, value: typeof r.v === 'string' ? r.v : '' }));
  } catch {
    return [];
  }
}

export function encodeRules(rules) {
  const kept = rules.filter((r) => r.field && r.op);
  return kept.length ? JSON.stringify(kept.map((r) => ({ f: r.field, o: r.op, ...(NO_VALUE.has(r.op) ? {} : { v: r.value ?? '' }) }))) : '';
}

// The query of the entity table's search: the text filter and the rules, or `null` when
// nothing filters (the table then reads the blueprint's list, `GET …/entities?limit=`). Either
// way the table pages with the `next` its request answers.
export function searchBody({ text, rules }, fields) {
  const all = [];
  if (text && text.trim()) all.push(textRule(text.trim()));
  for (const rule of rules || []) if (rule.field && rule.op) all.push(toSearchRule(rule, fields));
  if (all.length === 0) return null;
  return { combinator: 'and', rules: all };
}

// The identifiers a relation value names (one, many, or none).
export function relationTargets(value) {
  if (typeof value === 'string') return value ? [value] : [];
  if (Array.isArray(value)) return value.filter((v) => typeof v === 'string');
  return [];
}

// Relations of other blueprints (or this one) whose target is `identifier`:
// `[{blueprint, relation, title, many, required}]`.
export function relationsInto(identifier, blueprints) {
  const out = [];
  for (const bp of blueprints || []) {
    for (const [name, relation] of Object.entries(bp.relations || {})) {
      if (relation.target === identifier) {
        out.push({ blueprint: bp.identifier, blueprintTitle: bp.title, relation: name, title: relation.title, many: !!relation.many, required: !!relation.required });
      }
    }
  }
  return out;
}
