// Catalog → Entities: one blueprint's entities, a page at a time, filtered with Port's search
// rules (a text filter on identifier and title, and rules on properties, relations and the
// entity's own fields); a form to create an entity.
//
// Without filters the table reads `GET /v1/blueprints/{bp}/entities?limit=&from=` (the API's
// cursor). With filters it asks `POST /v1/blueprints/{bp}/entities/search` for one page
// (`limit`), and follows the search's own cursor (`from` = the answer's `next`).

import {
  html, useState, useEffect, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, useLoad, useAction,
  useEarly, takeEarly, href, navigate, setParams, parseJson,
} from '../ui.js';
import { api, seg, query } from '../api.js';
import { JsonForm } from '../editor.js';
import { Value, pretty, entityHref, blueprintHref } from './catalog-common.js';
import {
  ruleFields, operatorsFor, OPERATORS, NO_VALUE, LIST_VALUE, RANGE_VALUE, DATE_PRESETS, parseRules, encodeRules,
  searchBody, relationTargets, blueprintProperties,
} from './catalog-search.js';

const SIZES = ['50', '100'];
const SHOWN_PROPERTIES = 4;
const SHOWN_RELATIONS = 2;

const pageSize = (params) => (SIZES.includes(params.size) ? Number(params.size) : 50);

// A page of the plain list (no search): `size` entities from the cursor `from`.
const listPath = (blueprint, size, from) => `/v1/blueprints/${seg(blueprint)}/entities${query({ limit: size, from })}`;

// An example entity of `blueprint` that its schema accepts: its required properties with
// values of their type (the first of an enum), and its required relations left to fill.
export function exampleEntity(blueprint) {
  const properties = blueprint?.schema?.properties || {};
  const required = blueprint?.schema?.required || [];
  const names = required.length > 0 ? required : Object.keys(properties).slice(0, 1);
  const sample = (p) => {
    if (!p) return '';
    if (Array.isArray(p.enum) && p.enum.length) return p.enum[0];
    if (p.default !== undefined) return p.default;
    switch (p.type) {
      case 'number': return 0;
      case 'boolean': return false;
      case 'array': return [];
      case 'object': return {};
      default:
        if (p.format === 'date-time') return new Date().toISOString();
        if (p.format === 'url') return 'https://example.com';
        if (p.format === 'email') return 'someone@example.com';
        return '';
    }
  };
  const doc = { identifier: `new-${blueprint?.identifier || 'entity'}`, title: `New ${blueprint?.title || blueprint?.identifier || 'entity'}`, properties: {}, relations: {} };
  for (const name of names) doc.properties[name] = sample(properties[name]);
  for (const [name, relation] of Object.entries(blueprint?.relations || {})) {
    if (relation.required) doc.relations[name] = relation.many ? [] : '';
  }
  return pretty(doc);
}

function valueHint(op, kind) {
  if (LIST_VALUE.has(op)) return 'Values separated by commas.';
  if (RANGE_VALUE.has(op)) return `A preset (${DATE_PRESETS.join(', ')}) or FROM/TO dates, e.g. 2026-01-01/2026-02-01.`;
  if (kind === 'date') return 'An ISO 8601 date, e.g. 2026-01-31T00:00:00Z.';
  if (kind === 'boolean') return 'true or false.';
  if (kind === 'relation' || kind === 'manyRelation') return 'The related entity’s identifier.';
  return '';
}

// One rule of the builder: field, operator, value; the labels name the rule's number.
function RuleRow({ index, rule, fields, onChange, onRemove }) {
  const field = fields.find((f) => f.key === rule.field);
  const ops = operatorsFor(field?.kind);
  const id = (part) => `cat-rule-${index}-${part}`;
  const n = index + 1;
  const set = (change) => {
    const next = { ...rule, ...change };
    if (change.field) {
      const kind = fields.find((f) => f.key === change.field)?.kind;
      if (!operatorsFor(kind).includes(next.op)) next.op = operatorsFor(kind)[0];
    }
    onChange(next);
  };
  const hint = valueHint(rule.op, field?.kind);
  return html`<fieldset class="cat-rule">
    <legend class="sr-only">Rule ${n}</legend>
    <div class="field"><label for=${id('field')}><span class="sr-only">Rule ${n} </span>Property</label>
      <select id=${id('field')} value=${rule.field} onChange=${(e) => set({ field: e.currentTarget.value })}>
        ${!field && html`<option value=${rule.field}>${rule.field || 'Pick a field'}</option>`}
        ${fields.map((f) => html`<option value=${f.key}>${f.label}</option>`)}
      </select></div>
    <div class="field"><label for=${id('op')}><span class="sr-only">Rule ${n} </span>Operator</label>
      <select id=${id('op')} value=${rule.op} onChange=${(e) => set({ op: e.currentTarget.value })}>
        ${!ops.includes(rule.op) && html`<option value=${rule.op}>${OPERATORS[rule.op] || rule.op}</option>`}
        ${ops.map((op) => html`<option value=${op}>${OPERATORS[op]}</option>`)}
      </select></div>
    ${!NO_VALUE.has(rule.op) && html`<div class="field cat-rule-value"><label for=${id('value')}><span class="sr-only">Rule ${n} </span>Value</label>
      ${field?.kind === 'boolean' && !LIST_VALUE.has(rule.op)
        ? html`<select id=${id('value')} value=${rule.value} onChange=${(e) => set({ value: e.currentTarget.value })}>
            <option value="">Pick one</option><option value="true">true</option><option value="false">false</option></select>`
        : html`<input id=${id('value')} value=${rule.value} aria-describedby=${hint ? id('hint') : undefined}
            onInput=${(e) => set({ value: e.currentTarget.value })} />`}
      ${hint && html`<p class="hint" id=${id('hint')}>${hint}</p>`}</div>`}
    <button type="button" class="secondary small" onClick=${onRemove}>Remove rule ${n}</button>
  </fieldset>`;
}

function Filters({ blueprint, params }) {
  const fields = ruleFields(blueprint);
  const [text, setText] = useState(params.q || '');
  const [rules, setRules] = useState(parseRules(params.rules));
  useEffect(() => {
    setText(params.q || '');
    setRules(parseRules(params.rules));
  }, [params.q, params.rules, blueprint.identifier]);
  const apply = (e) => {
    e.preventDefault();
    setParams({ q: text.trim(), rules: encodeRules(rules), from: '' });
  };
  const addRule = () => {
    const first = fields.find((f) => !f.key.startsWith('$')) || fields[0];
    setRules([...rules, { field: first.key, op: operatorsFor(first.kind)[0], value: '' }]);
  };
  const active = params.q || params.rules;
  return html`<form class="cat-filters" role="search" aria-label="Filter entities" onSubmit=${apply}>
    <div class="field cat-text-filter"><label for="cat-entity-text">Search</label>
      <input id="cat-entity-text" type="search" value=${text} placeholder="identifier or title contains…"
        aria-describedby="cat-entity-text-hint" onInput=${(e) => setText(e.currentTarget.value)} />
      <p class="hint" id="cat-entity-text-hint">Entities whose identifier or title contains this text (case-sensitive).</p></div>
    ${rules.map((rule, i) => html`<${RuleRow} key=${i} index=${i} rule=${rule} fields=${fields}
      onChange=${(r) => setRules(rules.map((old, j) => (j === i ? r : old)))}
      onRemove=${() => setRules(rules.filter((_, j) => j !== i))} />`)}
    <div class="page-actions">
      <button type="button" class="secondary" onClick=${addRule}>Add rule</button>
      <button type="submit">Apply filters</button>
      ${active && html`<button type="button" class="secondary" onClick=${() => setParams({ q: '', rules: '', from: '' })}>Clear filters</button>`}
    </div>
  </form>`;
}

function EntityTable({ blueprint, params }) {
  const size = pageSize(params);
  const fields = ruleFields(blueprint);
  const body = searchBody({ text: params.q, rules: parseRules(params.rules) }, fields);
  const bodyKey = JSON.stringify(body);
  const { data, error, loading } = useLoad(async () => {
    if (!body) {
      const path = listPath(blueprint.identifier, size, params.from);
      const answer = await takeEarly(path, () => api.get(path));
      return { rows: answer.entities || [], next: answer.next || null, searched: false };
    }
    const page = { query: body, limit: size, ...(params.from ? { from: params.from } : {}) };
    const answer = await api.post(`/v1/blueprints/${seg(blueprint.identifier)}/entities/search`, page);
    return { rows: answer.entities || [], next: answer.next || null, searched: true };
  }, [blueprint.identifier, bodyKey, params.from, size]);

  const properties = blueprintProperties(blueprint).slice(0, SHOWN_PROPERTIES);
  const relations = Object.entries(blueprint.relations || {}).slice(0, SHOWN_RELATIONS);
  const columns = [
    { label: 'Identifier', render: (e) => html`<a href=${entityHref(blueprint.identifier, e.identifier)}>${e.identifier}</a>` },
    { label: 'Title', render: (e) => e.title || html`<span class="muted">—</span>` },
    ...properties.map(([name, p]) => ({ label: p.title || name, render: (e) => html`<${Value} value=${e.properties?.[name]} property=${p} />` })),
    ...relations.map(([name, r]) => ({ label: r.title || name, render: (e) => {
      const ids = relationTargets(e.relations?.[name]);
      return ids.length === 0 ? html`<span class="muted">—</span>`
        : html`<span class="cat-chips">${ids.map((id) => html`<a href=${entityHref(r.target, id)}>${id}</a>`)}</span>`;
    } })),
    { label: 'Updated', render: (e) => html`<${Time} at=${e.updatedAt} />` },
  ];
  const filtered = !!body;
  const paged = !!params.from;
  const next = data?.next;
  const onNext = () => setParams({ from: next });
  return html`<div class="cat-results" aria-live="polite" aria-busy=${loading ? 'true' : 'false'}>
    <${ErrorNote} error=${error} what="Cannot read the entities" />
    ${loading && html`<${Loading} what="entities" />`}
    ${data && html`
      <${Table} columns=${columns} rows=${data.rows} rowKey=${(e) => e.identifier} caption=${`Entities of ${blueprint.identifier}`}
        empty=${filtered
          ? html`<${Empty} title="No entity matches these filters.">Change the search text or the rules, or press <strong>Clear filters</strong>.<//>`
          : paged
            ? html`<${Empty} title="No more entities.">Go back to the <a href=${href(['catalog', 'entities'], { blueprint: blueprint.identifier })}>first page</a>.<//>`
            : html`<${Empty} title=${`No ${blueprint.title || blueprint.identifier} entities yet.`}>Create one with the <strong>Create entity</strong> form below, map them from an ingestion webhook, or POST them to <code>/v1/blueprints/${blueprint.identifier}/entities</code>.<//>`} />
      ${(data.rows.length > 0 || paged) && html`<div class="cat-pager">
        <${Pager} hasNext=${!!next} onNext=${onNext} count=${data.rows.length} noun=${data.rows.length === 1 ? 'entity' : 'entities'}
          onFirst=${paged ? () => setParams({ from: '' }) : null} />
        <div class="field cat-size"><label for="cat-page-size">Per page</label>
          <select id="cat-page-size" value=${String(size)} onChange=${(e) => setParams({ size: e.currentTarget.value, from: '' })}>
            ${SIZES.map((s) => html`<option value=${s}>${s}</option>`)}</select></div>
      </div>`}`}
  </div>`;
}

function CreateEntity({ blueprint }) {
  const [source, setSource] = useState(() => exampleEntity(blueprint));
  const create = useAction(async () => {
    const doc = parseJson(source, 'The entity');
    const answer = await api.post(`/v1/blueprints/${seg(blueprint.identifier)}/entities`, doc);
    navigate(['catalog', 'entities', blueprint.identifier, answer.entity.identifier]);
    return answer;
  });
  return html`<${Section} title="Create entity" id="cat-create-entity">
    <p class="muted cat-lead">A new <a href=${blueprintHref(blueprint.identifier)}>${blueprint.title || blueprint.identifier}</a> entity:
      its properties must match the blueprint's schema, and each relation names an existing entity of its target blueprint.</p>
    <${JsonForm} id="cat-entity-new" label="New entity JSON" value=${source} onInput=${setSource} rows=${4}
      hint="Port's entity document: identifier, title, icon, team [..], properties {..}, relations {name: identifier or [identifiers]}."
      submitLabel="Create entity" busy=${create.busy} error=${create.error} what="Not created" onSubmit=${() => create.run()} />
  <//>`;
}

export function Entities({ query: params }) {
  // The table asks for its page only once the blueprints are in, but the plain list of a
  // blueprint the URL names needs nothing from them: that request goes out with theirs.
  const plain = params.blueprint && !params.q && !params.rules;
  const firstPage = plain ? listPath(params.blueprint, pageSize(params), params.from) : '';
  useEarly(firstPage, () => api.get(firstPage));
  const { data, error, loading } = useLoad(() => api.get('/v1/blueprints'), []);
  const blueprints = data?.blueprints || [];
  const chosen = blueprints.find((bp) => bp.identifier === params.blueprint) || (params.blueprint ? null : blueprints[0]);
  const pick = (value) => setParams({ blueprint: value, q: '', rules: '', from: '' });
  const crumbs = [['Catalog'], ['Entities']];
  return html`<${Page} title=${chosen ? `Entities: ${chosen.title || chosen.identifier}` : 'Entities'} crumbs=${crumbs}
      subtitle="A blueprint's entities, filtered with Port's search rules, 50 or 100 at a time."
      actions=${chosen && html`<a href=${blueprintHref(chosen.identifier)}>Blueprint ${chosen.identifier}</a>`}>
    <${ErrorNote} error=${error} what="Cannot list blueprints" />
    ${loading && !data && html`<${Loading} what="blueprints" />`}
    ${data && blueprints.length === 0 && html`<${Section} title="No blueprints yet" id="cat-no-blueprints">
      <${Empty} title="Entities belong to a blueprint, and there is none yet.">Create a blueprint first in <a href=${href(['catalog', 'blueprints'])}>Catalog → Blueprints</a>, then come back to add its entities.<//>
    <//>`}
    ${blueprints.length > 0 && html`<${Section} title="Entities" id="cat-entities">
      <div class="filters">
        <div class="field"><label for="cat-entity-blueprint">Blueprint</label>
          <select id="cat-entity-blueprint" value=${chosen ? chosen.identifier : params.blueprint} onChange=${(e) => pick(e.currentTarget.value)}>
            ${!chosen && html`<option value=${params.blueprint}>${params.blueprint} (no such blueprint)</option>`}
            ${blueprints.map((bp) => html`<option value=${bp.identifier}>${bp.title && bp.title !== bp.identifier ? `${bp.title} (${bp.identifier})` : bp.identifier}</option>`)}
          </select></div>
      </div>
      ${!chosen && html`<${Empty} title=${`There is no blueprint ${params.blueprint}.`}>Pick one of the blueprints above.<//>`}
      ${chosen && html`<${Filters} key=${chosen.identifier} blueprint=${chosen} params=${params} />
        <${EntityTable} key=${chosen.identifier} blueprint=${chosen} params=${params} />`}
    <//>
    ${chosen && html`<${CreateEntity} key=${chosen.identifier} blueprint=${chosen} />`}`}
  <//>`;
}
