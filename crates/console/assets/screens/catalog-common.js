// Pieces the catalog screens share: values shown by their property's type, a checkbox, and the
// change history read from the audit log.

import { html, useState, useEffect, Time, Badge, ErrorNote, Empty, Loading, href, Json, takeEarly } from '../ui.js';
import { api, query } from '../api.js';

// -------------------------------------------------------------------------------- values

const AUDIT_FIELDS = ['createdAt', 'createdBy', 'updatedAt', 'updatedBy'];

// A document without the fields the API keeps itself (who changed it and when).
export function withoutAudit(doc) {
  const out = {};
  for (const [k, v] of Object.entries(doc || {})) if (!AUDIT_FIELDS.includes(k)) out[k] = v;
  return out;
}

// JSON on one line, with a space after each `,` and `:`.
function oneLine(value) {
  if (Array.isArray(value)) return `[${value.map(oneLine).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

// JSON indented by two spaces, with short arrays and objects kept on one line.
export function pretty(value, indent = '') {
  const flat = oneLine(value);
  if (value === null || typeof value !== 'object' || flat.length + indent.length <= 80) return flat;
  const inner = `${indent}  `;
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + pretty(v, inner)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pretty(v, inner)}`);
  return `{\n${entries.join(',\n')}\n${indent}}`;
}

// Compact text for any JSON value: strings as they are, the rest as JSON.
export function text(value) {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

const SAFE_URL = /^https?:\/\//i;

// A property's value, shown by its type: links for URLs, times for dates, lists for arrays.
export function Value({ value, property }) {
  if (value === undefined || value === null || value === '') return html`<span class="muted">—</span>`;
  if (typeof value === 'boolean') return html`<${Badge} value=${value} />`;
  if (typeof value === 'string') {
    const format = property?.format;
    if ((format === 'date-time' || format === 'date') && !Number.isNaN(new Date(value).getTime())) return html`<${Time} at=${value} />`;
    if (SAFE_URL.test(value)) {
      return html`<a class="cat-url" href=${value} rel="noopener noreferrer" target="_blank">${value}</a>`;
    }
    if (format === 'email') return html`<a href=${`mailto:${value}`}>${value}</a>`;
    return value;
  }
  if (typeof value === 'number') return value.toLocaleString(undefined, { maximumFractionDigits: 20 });
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) {
    if (value.length === 0) return html`<span class="muted">none</span>`;
    return html`<span class="cat-chips">${value.map((v) => html`<span class="badge">${text(v)}</span>`)}</span>`;
  }
  return html`<code class="cat-inline-json">${JSON.stringify(value)}</code>`;
}

// The name of a property or relation with its title, when it has one.
export function Named({ name, title }) {
  return title && title !== name
    ? html`${title} <code class="muted">${name}</code>`
    : html`<code>${name}</code>`;
}

// A link to an entity's page.
export function entityHref(blueprint, identifier) {
  return href(['catalog', 'entities', blueprint, identifier]);
}

export function blueprintHref(blueprint) {
  return href(['catalog', 'blueprints', blueprint]);
}

// ---------------------------------------------------------------------------------- forms

export function Checkbox({ id, label, checked, onChange, hint }) {
  return html`<div class="cat-check">
    <input type="checkbox" id=${id} checked=${checked} onChange=${(e) => onChange(e.currentTarget.checked)} />
    <label for=${id}>${label}</label>
    ${hint && html`<span class="hint">${hint}</span>`}
  </div>`;
}

// -------------------------------------------------------------------------------- history

// `{path: [before, after]}` for every field that differs; `depth` is how far objects are
// opened (an entity's `properties.x`, a blueprint's `schema.properties.x`): a number, or a
// function of the path that gives the depth to stop at.
export function diffFields(before, after, depth) {
  const changes = [];
  const walk = (a, b, path, level) => {
    const objects = isObject(a) || isObject(b);
    const stop = typeof depth === 'function' ? depth(path) : depth;
    if (objects && level < stop && (isObject(a) || a == null) && (isObject(b) || b == null)) {
      const keys = [...new Set([...Object.keys(a || {}), ...Object.keys(b || {})])];
      for (const key of keys) {
        if (level === 0 && AUDIT_FIELDS.includes(key)) continue;
        walk(a?.[key], b?.[key], path ? `${path}.${key}` : key, level + 1);
      }
      return;
    }
    if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null)) changes.push({ path, before: a, after: b });
  };
  walk(before, after, '', 0);
  return changes;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function Cell({ value }) {
  if (value === undefined || value === null) return html`<span class="muted">—</span>`;
  return html`<code class="cat-inline-json">${text(value)}</code>`;
}

// One change: when, who, what, and its fields before → after.
function Change({ entry, depth }) {
  const trigger = entry.trigger || {};
  const before = entry.diff?.before ?? null;
  const after = entry.diff?.after ?? null;
  const fields = diffFields(before, after, depth);
  const extra = entry.additionalData || {};
  return html`<li class="cat-change">
    <div class="cat-change-head">
      <${Badge} value=${entry.action} />
      <${Time} at=${trigger.at} />
      <span>by <strong>${trigger.by?.userId || 'unknown'}</strong></span>
      <span class="muted">via ${trigger.origin || '—'}</span>
      ${extra.webhookId && html`<span>webhook <a href=${href(['ingestion', 'webhooks', extra.webhookId])}>${extra.webhookId}</a></span>`}
      ${extra.webhookEventId && (extra.webhookId
        ? html`<span>event <a href=${href(['ingestion', 'webhooks', extra.webhookId, 'events', extra.webhookEventId])}>${extra.webhookEventId}</a></span>`
        : html`<span>event <code>${extra.webhookEventId}</code></span>`)}
      ${extra.runId && html`<span>run <a href=${href(['act', 'runs', extra.runId])}>${extra.runId}</a></span>`}
    </div>
    ${fields.length === 0
      ? html`<p class="muted">No field changed.</p>`
      : html`<div class="table-wrap"><table class="cat-diff">
        <caption class="sr-only">Fields changed</caption>
        <thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
        <tbody>${fields.map((f) => html`<tr>
          <td data-label="Field"><code>${f.path}</code></td>
          <td data-label="Before" class="cat-before"><${Cell} value=${f.before} /></td>
          <td data-label="After" class="cat-after"><${Cell} value=${f.after} /></td>
        </tr>`)}</tbody>
      </table></div>`}
    <details><summary>Full change (JSON)</summary><${Json} value=${entry} label=${`Change ${entry.identifier}`} /></details>
  </li>`;
}

const HISTORY_PAGE = 20;

// The audit log's page for `filter` ending at `to` (none: the newest). The history's first page
// needs only names the URL holds, so a screen can start it early (`useEarly`).
export const historyPath = (filter, to) => `/v1/audit-log${query({ ...filter, limit: HISTORY_PAGE, to })}`;

// The audit log's entries for `filter` (e.g. `{entity, blueprint, resources: 'entity'}`),
// newest first, 20 at a time; older ones on request (the audit log pages by time: `to`).
export function History({ filter, depth = 2, what = 'entity', reloadKey }) {
  const [entries, setEntries] = useState([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);
  const filterKey = JSON.stringify(filter);

  const load = async (older) => {
    setLoading(true);
    setError(null);
    try {
      const last = older ? entries[entries.length - 1] : null;
      const seen = new Set(older ? entries.map((e) => e.identifier) : []);
      let to = last?.trigger?.at;
      let fresh = [];
      let full = false;
      // The audit log's `to` is inclusive: entries at the last one's time come again and are
      // dropped; should a whole page share that time, the next read starts a millisecond before.
      for (let tries = 0; tries < 2; tries++) {
        const path = historyPath(filter, to);
        const answer = await takeEarly(path, () => api.get(path));
        const audits = answer.audits || [];
        full = audits.length === HISTORY_PAGE;
        fresh = audits.filter((a) => !seen.has(a.identifier));
        if (fresh.length > 0 || !full || !to) break;
        to = new Date(new Date(to).getTime() - 1).toISOString();
      }
      setEntries(older ? [...entries, ...fresh] : fresh);
      setMore(full);
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    load(false);
  }, [filterKey, reloadKey]);

  return html`<div class="cat-history">
    <${ErrorNote} error=${error} what="Cannot read the audit log" />
    ${entries.length > 0 && html`<ol class="cat-changes">${entries.map((e) => html`<${Change} key=${e.identifier} entry=${e} depth=${depth} />`)}</ol>`}
    ${!loading && !error && entries.length === 0 && html`<${Empty} title=${`No recorded change of this ${what}.`}>
      Changes made through the API, by mappings, actions or automations appear here.<//>`}
    ${loading && html`<${Loading} what="changes" />`}
    ${more && !loading && html`<div class="page-actions"><button type="button" class="secondary" onClick=${() => load(true)}>Show older changes</button></div>`}
  </div>`;
}
