// The mapping editor and its live test. The editor holds each mapping's fields (every one a
// jq expression, highlighted); the test runs POST /v1/webhooks/{id}/test with the mappings as
// edited (not saved) on a stored event or a pasted request, and shows what each field gives
// for each entity that would be written. Errors are shown on the fields their path names.

import { html, useState, useEffect, useRef, Empty, ErrorNote, Json, useLoad, takeEarly, num, pretty, parseJson, localTime } from '../ui.js';
import { useMemo } from '../vendor/preact-htm.mjs';
import { api, seg, query as apiQuery } from '../api.js';
import { CodeEditor, Highlighted } from '../editor.js';
import {
  EXAMPLE_REQUEST, EventStatus, pathsInMessage, eventHref, entityHref, blueprintHref,
} from './ingestion-common.js';
import { ResultErrors } from './ingestion-events.js';

const DEBOUNCE_MS = 700;
const LATEST_EVENTS = 20;
const QUERY_TEMPLATE = pretty({ combinator: "'and'", rules: [{ property: "'$identifier'", operator: "'='", value: '.body.id | tostring' }] });

// The latest events the live test offers. They need only the webhook's identifier, so its page
// can start this request early (`useEarly`).
export const latestEventsPath = (webhook) => `/v1/webhooks/${seg(webhook)}/events${apiQuery({ limit: LATEST_EVENTS })}`;

// ------------------------------------------------------------------------- the editor model

let keys = 0;
const nextKey = () => `k${++keys}`;

function operationChoice(raw) {
  const type = raw && typeof raw === 'object' ? raw.type : raw;
  if (type !== 'delete') return 'create';
  return raw && typeof raw === 'object' && raw.deleteDependents === false ? 'delete-keep' : 'delete';
}

// A field that is a jq expression or a search query (JSON whose strings are jq).
function sourceModel(value) {
  if (value && typeof value === 'object') return { kind: 'query', jq: '', query: pretty(value) };
  return { kind: 'jq', jq: value ?? '', query: QUERY_TEMPLATE };
}

function mappingModel(m) {
  const entity = m.entity || {};
  return {
    key: nextKey(),
    blueprint: m.blueprint || '',
    operationRaw: m.operation,
    operation: operationChoice(m.operation),
    filter: m.filter ?? '',
    itemsToParse: m.itemsToParse ?? '',
    identifier: sourceModel(entity.identifier),
    title: entity.title ?? '',
    team: entity.team ?? '',
    icon: entity.icon ?? '',
    properties: Object.entries(entity.properties || {}).map(([name, text]) => ({ key: nextKey(), name, text: String(text ?? '') })),
    relations: Object.entries(entity.relations || {}).map(([name, value]) => ({ key: nextKey(), name, ...sourceModel(value) })),
  };
}

function newMapping(blueprint) {
  return mappingModel({ blueprint, entity: { identifier: '.body.id | tostring', title: '', properties: {} } });
}

function operationValue(m) {
  if (operationChoice(m.operationRaw) === m.operation && m.operationRaw !== undefined) return m.operationRaw;
  if (m.operation === 'delete') return 'delete';
  if (m.operation === 'delete-keep') return { type: 'delete', deleteDependents: false };
  return undefined;
}

function sourceValue(source, path, errors) {
  if (source.kind === 'jq') return source.jq;
  try {
    return parseJson(source.query, `\`${path}\` (a search query)`);
  } catch (err) {
    errors.push({ path, message: err.message });
    return undefined;
  }
}

// The mappings as the API takes them, and what is wrong before sending them.
export function buildDocs(models) {
  const errors = [];
  const docs = models.map((m, i) => {
    const path = `mappings[${i}]`;
    const doc = { blueprint: m.blueprint.trim() };
    const operation = operationValue(m);
    if (operation !== undefined) doc.operation = operation;
    if (m.filter.trim()) doc.filter = m.filter;
    if (m.itemsToParse.trim()) doc.itemsToParse = m.itemsToParse;
    const entity = { identifier: sourceValue(m.identifier, `${path}.entity.identifier`, errors) };
    if (m.operation === 'create') {
      for (const field of ['title', 'icon', 'team']) if (m[field].trim()) entity[field] = m[field];
      const named = (rows, what, each) => {
        const out = {};
        rows.forEach((row, j) => {
          const name = row.name.trim();
          const empty = row.kind === 'query' ? false : !(row.text ?? row.jq ?? '').trim();
          if (!name && empty) return;
          if (!name) {
            errors.push({ path: `${path}.entity.${what}`, message: `${what === 'properties' ? 'Property' : 'Relation'} ${j + 1} has no name.` });
            return;
          }
          if (Object.prototype.hasOwnProperty.call(out, name)) {
            errors.push({ path: `${path}.entity.${what}.${name}`, message: `\`${name}\` is mapped twice in mapping ${i + 1}.` });
          }
          out[name] = each(row, `${path}.entity.${what}.${name}`);
        });
        return out;
      };
      const properties = named(m.properties, 'properties', (row) => row.text);
      if (Object.keys(properties).length) entity.properties = properties;
      const relations = named(m.relations, 'relations', (row, p) => sourceValue(row, p, errors));
      if (Object.keys(relations).length) entity.relations = relations;
    }
    doc.entity = entity;
    return doc;
  });
  return { docs, errors };
}

// ---------------------------------------------------------------- errors placed on fields

// Which field of the editor a path names (`mappings[0].entity.properties.x` → that row).
function fieldOf(path, models) {
  const m = /^mappings\[(\d+)\](?:\.(.*))?$/.exec(path);
  if (!m) return null;
  const i = Number(m[1]);
  const rest = m[2] || '';
  const model = models[i];
  if (!model) return null;
  const simple = { blueprint: 'blueprint', operation: 'operation', filter: 'filter', itemsToParse: 'itemsToParse' };
  const head = rest.split(/[.[]/)[0];
  if (simple[head]) return `${i}:${simple[head]}`;
  const entity = /^entity\.(identifier|title|team|icon)(?:[.[]|$)/.exec(rest);
  if (entity) return `${i}:${entity[1]}`;
  for (const what of ['properties', 'relations']) {
    if (!rest.startsWith(`entity.${what}.`)) continue;
    const after = rest.slice(`entity.${what}.`.length);
    const row = model[what].find((r) => r.name.trim() && (after === r.name.trim() || after.startsWith(`${r.name.trim()}.`) || after.startsWith(`${r.name.trim()}[`)));
    if (row) return `${i}:${what}:${row.key}`;
  }
  return `${i}:mapping`;
}

// {fieldKey: [message]} from every source of errors, each message once.
function placeErrors(sources, models) {
  const placed = {};
  for (const { path, message } of sources) {
    const field = fieldOf(path, models);
    if (!field) continue;
    const list = (placed[field] ||= []);
    if (!list.includes(message)) list.push(message);
  }
  return placed;
}

// --------------------------------------------------------------------------- editor parts

function FieldErrors({ id, errors }) {
  if (!errors || !errors.length) return null;
  return html`<ul class="ing-field-errors" id=${id}>${errors.map((m, i) => html`<li key=${i}>${m}</li>`)}</ul>`;
}

function JqField({ id, label, value, onInput, errors, hint, rows = 1, language = 'jq' }) {
  const described = [hint && `${id}-hint`, errors && errors.length && `${id}-errors`].filter(Boolean).join(' ') || undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <${CodeEditor} id=${id} language=${language} value=${value} onInput=${onInput} rows=${rows} describedBy=${described}
      invalid=${!!(errors && errors.length)} />
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    <${FieldErrors} id=${`${id}-errors`} errors=${errors} />
  </div>`;
}

// A jq expression or a search query (identifier, relations).
function SourceField({ id, label, source, onChange, errors, kindLabel }) {
  return html`<div class="ing-source">
    <div class="field ing-kind"><label for=${`${id}-kind`}>${kindLabel}</label>
      <select id=${`${id}-kind`} value=${source.kind} onChange=${(e) => onChange({ ...source, kind: e.currentTarget.value })}>
        <option value="jq">jq expression</option>
        <option value="query">search query</option>
      </select></div>
    ${source.kind === 'jq'
      ? html`<${JqField} id=${id} label=${label} value=${source.jq} onInput=${(jq) => onChange({ ...source, jq })} errors=${errors} />`
      : html`<${JqField} id=${id} label=${label} language="json" rows=${4} value=${source.query}
          onInput=${(query) => onChange({ ...source, query })} errors=${errors}
          hint="A search query that must match one entity; each string in it is jq, so quote literal text: 'and'." />`}
  </div>`;
}

function MappingFields({ index, model, count, blueprints, errors, onChange, onRemove, onMove }) {
  const id = (name) => `m${index}-${name}`;
  const set = (patch) => onChange({ ...model, ...patch });
  const blueprint = blueprints.find((b) => b.identifier === model.blueprint);
  const propertyNames = blueprint ? Object.keys((blueprint.schema && blueprint.schema.properties) || {}) : [];
  const relationNames = blueprint ? Object.keys(blueprint.relations || {}) : [];
  const options = [...new Set([...blueprints.map((b) => b.identifier), model.blueprint].filter(Boolean))];
  const rowsOf = (what) => model[what];
  const setRow = (what, key, patch) => set({ [what]: rowsOf(what).map((r) => (r.key === key ? { ...r, ...patch } : r)) });
  const removeRow = (what, key) => set({ [what]: rowsOf(what).filter((r) => r.key !== key) });
  const err = (field) => errors[`${index}:${field}`];
  const isDelete = model.operation !== 'create';
  return html`<fieldset class="ing-mapping">
    <legend>Mapping ${index + 1}${model.blueprint ? ` · ${model.blueprint}` : ''}</legend>
    <div class="page-actions ing-mapping-actions">
      <button type="button" class="secondary small" disabled=${index === 0} onClick=${() => onMove(-1)}
        aria-label=${`Move up mapping ${index + 1}`}>Move up</button>
      <button type="button" class="secondary small" disabled=${index === count - 1} onClick=${() => onMove(1)}
        aria-label=${`Move down mapping ${index + 1}`}>Move down</button>
      <button type="button" class="secondary small" onClick=${onRemove} aria-label=${`Remove mapping ${index + 1}`}>Remove mapping</button>
    </div>
    <${FieldErrors} id=${id('errors')} errors=${err('mapping')} />
    <div class="ing-pair">
      <div class="field"><label for=${id('blueprint')}>Blueprint</label>
        <select id=${id('blueprint')} value=${model.blueprint} aria-invalid=${err('blueprint') ? 'true' : undefined}
          aria-describedby=${err('blueprint') ? `${id('blueprint')}-errors` : undefined}
          onChange=${(e) => set({ blueprint: e.currentTarget.value })}>
          ${!model.blueprint && html`<option value="">Choose a blueprint</option>`}
          ${options.map((b) => html`<option value=${b}>${b}</option>`)}
        </select>
        ${model.blueprint && html`<p class="hint"><a href=${blueprintHref(model.blueprint)}>Open blueprint ${model.blueprint}</a></p>`}
        <${FieldErrors} id=${`${id('blueprint')}-errors`} errors=${err('blueprint')} /></div>
      <div class="field"><label for=${id('operation')}>Operation</label>
        <select id=${id('operation')} value=${model.operation} onChange=${(e) => set({ operation: e.currentTarget.value })}>
          <option value="create">create or update (upsert)</option>
          <option value="delete">delete (and its dependents)</option>
          <option value="delete-keep">delete (keep its dependents)</option>
        </select>
        <${FieldErrors} id=${`${id('operation')}-errors`} errors=${err('operation')} /></div>
    </div>
    <${JqField} id=${id('filter')} label="Filter" value=${model.filter} onInput=${(filter) => set({ filter })} errors=${err('filter')}
      hint="Maps the event only when this is true; empty maps every event." />
    <${JqField} id=${id('items')} label="Items to parse" value=${model.itemsToParse} errors=${err('itemsToParse')}
      onInput=${(itemsToParse) => set({ itemsToParse })}
      hint="An array: one entity per element, read as .item (at most 500). Empty: one entity per event." />
    <${SourceField} id=${id('identifier')} label="Identifier" kindLabel="Identifier kind" source=${model.identifier}
      onChange=${(identifier) => set({ identifier })} errors=${err('identifier')} />
    ${isDelete
      ? html`<p class="hint">A delete mapping has only an identifier: the other fields are left out.</p>`
      : html`
        <${JqField} id=${id('title')} label="Title" value=${model.title} onInput=${(title) => set({ title })} errors=${err('title')} />
        <div class="ing-pair">
          <${JqField} id=${id('team')} label="Team" value=${model.team} onInput=${(team) => set({ team })} errors=${err('team')} />
          <${JqField} id=${id('icon')} label="Icon" value=${model.icon} onInput=${(icon) => set({ icon })} errors=${err('icon')} />
        </div>
        <div class="ing-rows" role="group" aria-labelledby=${id('props-title')}>
          <h3 id=${id('props-title')}>Properties</h3>
          ${model.properties.length === 0 && html`<p class="muted">No properties mapped.</p>`}
          ${model.properties.map((row, j) => html`<div class="ing-row" key=${row.key}>
            <div class="ing-row-head">
              <div class="field ing-name"><label for=${id(`p${j}-name`)}>Property name</label>
                <input id=${id(`p${j}-name`)} value=${row.name} list=${id('props-list')} autocomplete="off" spellcheck="false"
                  onInput=${(e) => setRow('properties', row.key, { name: e.currentTarget.value })} /></div>
              <button type="button" class="secondary small" onClick=${() => removeRow('properties', row.key)}
                aria-label=${`Remove property ${row.name.trim() || j + 1}`}>Remove</button>
            </div>
            <${JqField} id=${id(`p${j}-value`)} label=${`properties.${row.name.trim() || `(property ${j + 1})`}`} value=${row.text}
              onInput=${(text) => setRow('properties', row.key, { text })} errors=${err(`properties:${row.key}`)} />
          </div>`)}
          <datalist id=${id('props-list')}>${propertyNames.map((p) => html`<option value=${p} />`)}</datalist>
          <div><button type="button" class="secondary small"
            onClick=${() => set({ properties: [...model.properties, { key: nextKey(), name: '', text: '' }] })}>Add property</button></div>
        </div>
        <div class="ing-rows" role="group" aria-labelledby=${id('rels-title')}>
          <h3 id=${id('rels-title')}>Relations</h3>
          ${model.relations.length === 0 && html`<p class="muted">No relations mapped.</p>`}
          ${model.relations.map((row, j) => html`<div class="ing-row" key=${row.key}>
            <div class="ing-row-head">
              <div class="field ing-name"><label for=${id(`r${j}-name`)}>Relation name</label>
                <input id=${id(`r${j}-name`)} value=${row.name} list=${id('rels-list')} autocomplete="off" spellcheck="false"
                  onInput=${(e) => setRow('relations', row.key, { name: e.currentTarget.value })} /></div>
              <button type="button" class="secondary small" onClick=${() => removeRow('relations', row.key)}
                aria-label=${`Remove relation ${row.name.trim() || j + 1}`}>Remove</button>
            </div>
            <${SourceField} id=${id(`r${j}-value`)} label=${`relations.${row.name.trim() || `(relation ${j + 1})`}`}
              kindLabel="Relation kind" source=${row} onChange=${(source) => setRow('relations', row.key, source)}
              errors=${err(`relations:${row.key}`)} />
          </div>`)}
          <datalist id=${id('rels-list')}>${relationNames.map((p) => html`<option value=${p} />`)}</datalist>
          <div><button type="button" class="secondary small"
            onClick=${() => set({ relations: [...model.relations, { key: nextKey(), name: '', ...sourceModel('') }] })}>Add relation</button></div>
        </div>`}
  </fieldset>`;
}

// ------------------------------------------------------------------------------ live test

// Which mapping wrote each entity: the API lists them in mapping order (then item order)
// without the mapping's index, so each is matched to the next mapping of its blueprint.
function attribute(entities, docs) {
  let at = 0;
  return entities.map((entity) => {
    while (at < docs.length && docs[at].blueprint !== entity.blueprint) at++;
    if (at >= docs.length) return { index: null, ambiguous: false };
    const ambiguous = docs.slice(at + 1).some((d) => d.blueprint === entity.blueprint);
    return { index: at, ambiguous };
  });
}

const show = (value) => (value === undefined ? '(not set)' : JSON.stringify(value));

function EntityResult({ entity, doc, attribution, webhook }) {
  const mapping = doc && doc.entity ? doc.entity : {};
  const rows = [];
  const expr = (value) => (typeof value === 'string' ? { text: value, language: 'jq' } : { text: JSON.stringify(value), language: 'json' });
  if (doc) rows.push({ field: 'identifier', ...expr(mapping.identifier), value: entity.identifier });
  else rows.push({ field: 'identifier', text: '', language: 'jq', value: entity.identifier });
  for (const field of ['title', 'team', 'icon']) {
    if (mapping[field] !== undefined) rows.push({ field, ...expr(mapping[field]), value: entity[field] });
  }
  for (const [name, code] of Object.entries(mapping.properties || {})) {
    rows.push({ field: `properties.${name}`, ...expr(code), value: (entity.properties || {})[name] });
  }
  for (const [name, code] of Object.entries(mapping.relations || {})) {
    rows.push({ field: `relations.${name}`, ...expr(code), value: (entity.relations || {})[name] });
  }
  const op = entity.operation;
  const exists = ['updated', 'unchanged', 'deleted'].includes(op);
  const from = attribution.index === null
    ? 'a mapping'
    : `mapping ${attribution.index + 1}${attribution.ambiguous ? ` (or a later mapping of ${entity.blueprint})` : ''}`;
  return html`<article class="ing-entity" aria-label=${`${entity.blueprint} ${entity.identifier}`}>
    <h3><span class=${`badge ${op === 'created' ? 'good' : op === 'deleted' ? 'bad' : 'neutral'}`}>${op === 'created'
      ? 'would be created' : op === 'updated' ? 'would be updated' : op === 'unchanged' ? 'unchanged'
      : op === 'deleted' ? 'would be deleted' : op === 'absent' ? 'absent: nothing to delete' : op}</span>
      ${' '}<code>${entity.blueprint}</code> / <code>${entity.identifier}</code></h3>
    <p class="muted ing-sub">from ${from}${exists && html` · <a href=${entityHref(entity.blueprint, entity.identifier)}>Open the entity</a>`}</p>
    <div class="table-wrap"><table class="ing-eval">
      <caption class="sr-only">What each field evaluates to for ${entity.identifier}</caption>
      <thead><tr><th scope="col">Field</th><th scope="col">Expression</th><th scope="col">Value</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.field}>
        <td data-label="Field"><code>${r.field}</code></td>
        <td data-label="Expression"><code class="ing-code"><${Highlighted} text=${r.text} language=${r.language} /></code></td>
        <td data-label="Value"><code class="ing-value">${show(r.value)}</code></td>
      </tr>`)}</tbody>
    </table></div>
    ${op !== 'deleted' && op !== 'absent' && html`<details class="ing-details"><summary>The entity as it would be written</summary>
      <${Json} value=${entity} label=${`Entity ${entity.identifier} as it would be written`} /></details>`}
  </article>`;
}

function TestResult({ run, webhook }) {
  const { answer, docs } = run;
  const entities = answer.entities || [];
  const attributions = attribute(entities, docs);
  const count = (op) => entities.filter((e) => e.operation === op).length;
  const parts = [
    ['created', 'would be created'], ['updated', 'would be updated'], ['unchanged', 'unchanged'],
    ['deleted', 'would be deleted'], ['absent', 'absent'],
  ].filter(([op]) => count(op)).map(([op, words]) => `${count(op)} ${words}`);
  return html`<div class="ing-result">
    <p class="ing-status"><strong>Result:</strong> <${EventStatus} status=${answer.status} />
      <span id="test-summary">${entities.length
        ? ` ${num(entities.length)} ${entities.length === 1 ? 'entity' : 'entities'}: ${parts.join(', ')}.`
        : answer.status === 'FILTERED' ? ' No mapping’s filter matched this event: nothing would be written.' : ' No entity would be written.'}</span></p>
    ${answer.truncatedItems > 0 && html`<p class="notice">${num(answer.truncatedItems)} items past the first 500 of <code>itemsToParse</code> would not be mapped.</p>`}
    ${entities.map((entity, i) => html`<${EntityResult} key=${i} entity=${entity} webhook=${webhook}
      doc=${attributions[i].index === null ? null : docs[attributions[i].index]} attribution=${attributions[i]} />`)}
    <h3>Errors</h3>
    <${ResultErrors} errors=${answer.errors} />
    ${answer.logs && html`<h3>Logs</h3><${Json} value=${answer.logs} label="What debug and stderr wrote" />`}
  </div>`;
}

function optionLabel(e) {
  const when = new Date(e.receivedAt);
  const time = Number.isNaN(when.getTime()) ? e.receivedAt : localTime(when, 'short');
  return `${time} · ${e.status} · ${e.requestId || e.id}`;
}

function LiveTest({ webhook, built, initialEvent, onErrors }) {
  const id = webhook.identifier;
  const events = useLoad(() => {
    const path = latestEventsPath(id);
    return takeEarly(path, () => api.get(path)).then((a) => (a.events || []).filter((e) => e.status !== 'REJECTED'));
  }, [id]);
  const [picked, setPicked] = useState(initialEvent || null);
  const [paste, setPaste] = useState({
    body: pretty(EXAMPLE_REQUEST.body), headers: pretty(EXAMPLE_REQUEST.headers), queryParams: pretty(EXAMPLE_REQUEST.queryParams),
  });
  const [auto, setAuto] = useState(true);
  const [run, setRun] = useState({ busy: false });
  const [copyError, setCopyError] = useState(null);
  const generation = useRef(0);
  const list = events.data || [];
  // Until the user picks, the newest stored event (or a pasted request when there is none).
  const source = picked || (events.loading && !events.data ? null : list.length ? list[0].id : 'paste');
  const options = list.map((e) => [e.id, optionLabel(e)]);
  if (source && source !== 'paste' && !options.some(([v]) => v === source)) options.unshift([source, `Event ${source}`]);

  const request = () => {
    if (built.errors.length) return { error: built.errors.map((e) => e.message).join(' ') };
    if (source === 'paste') {
      const doc = { mappings: built.docs };
      for (const [key, what] of [['body', 'The body'], ['headers', 'The headers'], ['queryParams', 'The query parameters']]) {
        try {
          doc[key] = parseJson(paste[key], what);
        } catch (err) {
          return { error: err.message };
        }
      }
      return { doc };
    }
    return { doc: { eventId: source, mappings: built.docs } };
  };

  const test = async () => {
    if (!source) return;
    const mine = ++generation.current;
    const { doc, error } = request();
    if (error) {
      setRun({ busy: false, local: error });
      return;
    }
    setRun((r) => ({ ...r, busy: true }));
    try {
      const answer = await api.post(`/v1/webhooks/${seg(id)}/test`, doc);
      if (mine === generation.current) setRun({ busy: false, answer, docs: doc.mappings });
    } catch (error) {
      if (mine === generation.current) setRun({ busy: false, error, docs: doc.mappings });
    }
  };

  const key = JSON.stringify([built.docs, built.errors, source, source === 'paste' ? paste : null]);
  const first = useRef(true);
  useEffect(() => {
    if (!auto || !source) return undefined;
    const wait = first.current ? 0 : DEBOUNCE_MS;
    first.current = false;
    const timer = setTimeout(test, wait);
    return () => clearTimeout(timer);
  }, [key, auto]);

  // Errors with a path go onto the editor's fields.
  useEffect(() => {
    const found = [];
    if (run.error) found.push(...pathsInMessage(run.error.message));
    for (const err of (run.answer && run.answer.errors) || []) {
      const item = err.item !== undefined && err.item !== null ? `item ${err.item + 1}: ` : '';
      found.push({ path: err.expression || `mappings[${err.mapping ?? 0}]`, message: `Live test: ${item}${err.message}` });
    }
    onErrors(found);
  }, [run]);

  const copyIntoPaste = async () => {
    setCopyError(null);
    try {
      const { event } = await api.get(`/v1/webhooks/${seg(id)}/events/${seg(source)}`);
      const r = event.request || {};
      setPaste({ body: pretty(r.body ?? null), headers: pretty(r.headers || {}), queryParams: pretty(r.queryParams || {}) });
      setPicked('paste');
    } catch (err) {
      setCopyError(err);
    }
  };

  return html`<section class="card ing-test" id="live-test" aria-labelledby="live-test-title">
    <header class="card-head"><h2 id="live-test-title">Live test</h2>
      <span class="muted ing-sub" role="status">${run.busy ? 'Testing…' : ''}</span></header>
    <p class="hint">Runs the mappings <strong>as edited, unsaved</strong> on an event, writing nothing.</p>
    <div class="field"><label for="test-source">Test with</label>
      <select id="test-source" value=${source || ''} onChange=${(e) => setPicked(e.currentTarget.value)} disabled=${!source}>
        ${!source && html`<option value="">Loading events…</option>`}
        ${options.map(([v, label]) => html`<option value=${v}>${label}</option>`)}
        <option value="paste">A request I paste</option>
      </select>
      <p class="hint">${list.length
        ? `The latest ${list.length} stored events (REJECTED ones kept no request). Older ones: open them from the event log.`
        : 'No stored events yet: paste a request, or send one to the ingest URL.'}</p>
    </div>
    <${ErrorNote} error=${events.error} what="Cannot list the latest events" />
    ${source && source !== 'paste' && html`<p class="page-actions">
      <a href=${eventHref(id, source)}>Open this event</a>
      <button type="button" class="secondary small" onClick=${copyIntoPaste}>Edit as a pasted request</button>
      <button type="button" class="secondary small" onClick=${() => events.reload()}>Reload events</button></p>
      <${ErrorNote} error=${copyError} what="Cannot read the event" />`}
    ${source === 'paste' && html`<details class="ing-details" open>
      <summary>The request to test with</summary>
      <div class="ing-form">
      <${JqField} id="test-body" label="Body (JSON)" language="json" rows=${8} value=${paste.body}
        onInput=${(body) => setPaste((p) => ({ ...p, body }))} />
      <${JqField} id="test-headers" label="Headers (JSON object)" language="json" rows=${3} value=${paste.headers}
        onInput=${(headers) => setPaste((p) => ({ ...p, headers }))} hint="Header names in lower case, values strings." />
      <${JqField} id="test-query" label="Query parameters (JSON object)" language="json" rows=${1} value=${paste.queryParams}
        onInput=${(queryParams) => setPaste((p) => ({ ...p, queryParams }))} />
      </div></details>`}
    <div class="page-actions">
      <button type="button" onClick=${test} disabled=${!source || run.busy}>Run test</button>
      <label class="ing-check"><input type="checkbox" id="test-auto" checked=${auto} onChange=${(e) => setAuto(e.currentTarget.checked)} />
        Run as I edit</label>
    </div>
    <div aria-live="polite">
      ${run.local && html`<div class="error" role="alert"><strong>${run.local}</strong></div>`}
      <${ErrorNote} error=${run.error} what="The test could not run" />
      ${run.answer && !run.local && !run.error && html`<${TestResult} run=${run} webhook=${id} />`}
      ${!run.answer && !run.error && !run.local && !run.busy && html`<p class="muted">${auto ? 'The result appears here.' : 'Choose Run test to see what the mappings make of the event.'}</p>`}
    </div>
  </section>`;
}

// ------------------------------------------------------------------------------ workbench

export function MappingWorkbench({ webhook, blueprints, initialEvent, onSaved }) {
  const [models, setModels] = useState(() => (webhook.mappings || []).map(mappingModel));
  const [baseline, setBaseline] = useState(() => JSON.stringify(buildDocs((webhook.mappings || []).map(mappingModel)).docs));
  const [save, setSave] = useState({ busy: false, error: null, saved: false });
  const [testErrors, setTestErrors] = useState([]);
  const built = useMemo(() => buildDocs(models), [models]);
  const dirty = JSON.stringify(built.docs) !== baseline;
  const errors = placeErrors(
    [...built.errors, ...(save.error ? pathsInMessage(save.error.message) : []), ...testErrors],
    models,
  );
  const update = (next) => {
    setModels(next);
    if (save.error || save.saved) setSave({ busy: false, error: null, saved: false });
  };
  const change = (i, model) => update(models.map((m, j) => (j === i ? model : m)));
  const remove = (i) => update(models.filter((_, j) => j !== i));
  const move = (i, by) => {
    const next = [...models];
    const [m] = next.splice(i, 1);
    next.splice(i + by, 0, m);
    update(next);
  };
  const add = () => update([...models, newMapping(blueprints[0] ? blueprints[0].identifier : '')]);
  const discard = () => update((webhook.mappings || []).map(mappingModel));
  const submit = async (e) => {
    e.preventDefault();
    if (built.errors.length) {
      setSave({ busy: false, error: null, saved: false, local: built.errors.map((x) => x.message).join(' ') });
      return;
    }
    setSave({ busy: true, error: null, saved: false });
    try {
      const answer = await api.patch(`/v1/webhooks/${seg(webhook.identifier)}`, { mappings: built.docs });
      setBaseline(JSON.stringify(buildDocs((answer.integration.mappings || []).map(mappingModel)).docs));
      setSave({ busy: false, error: null, saved: true });
      onSaved(answer.integration);
    } catch (error) {
      setSave({ busy: false, error, saved: false });
    }
  };
  return html`<div class="grid2 ing-workbench">
    <section class="card" aria-labelledby="mappings-title">
      <header class="card-head"><h2 id="mappings-title">Mappings</h2>
        <span role="status">${dirty ? html`<span class="badge ing-warn">Unsaved changes</span>` : html`<span class="muted ing-sub">Saved</span>`}</span>
        <a class="ing-phone-only" href="#live-test" onClick=${(e) => { e.preventDefault(); document.getElementById('live-test')?.scrollIntoView(); }}>Go to the live test</a></header>
      <p class="hint">Mappings run in order on every event. Each value is a jq expression over <code>.body</code>, <code>.headers</code> and <code>.queryParams</code> (and <code>.item</code> with items to parse).</p>
      <form class="ing-form" onSubmit=${submit} aria-labelledby="mappings-title">
        ${models.length === 0 && html`<${Empty} title="No mappings: events are stored but nothing is written.">Choose <strong>Add mapping</strong> to turn events into entities of a blueprint${blueprints.length ? '' : html` (create one in <a href="#/catalog/blueprints">Catalog → Blueprints</a> first)`}.<//>`}
        ${models.map((model, i) => html`<${MappingFields} key=${model.key} index=${i} model=${model} count=${models.length}
          blueprints=${blueprints} errors=${errors} onChange=${(m) => change(i, m)} onRemove=${() => remove(i)}
          onMove=${(by) => move(i, by)} />`)}
        <div><button type="button" class="secondary" onClick=${add}>Add mapping</button></div>
        ${save.local && html`<div class="error" role="alert"><strong>${save.local}</strong></div>`}
        <${ErrorNote} error=${save.error} what="The mappings were not saved" />
        <div class="page-actions ing-savebar">
          <button type="submit" disabled=${save.busy || !dirty}>${save.busy ? 'Saving…' : 'Save mappings'}</button>
          ${dirty && html`<button type="button" class="secondary" onClick=${discard}>Discard changes</button>`}
          ${save.saved && !dirty && html`<span class="muted" role="status">Mappings saved.</span>`}
        </div>
      </form>
    </section>
    <${LiveTest} webhook=${webhook} built=${built} initialEvent=${initialEvent} onErrors=${setTestErrors} />
  </div>`;
}
