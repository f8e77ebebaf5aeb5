// Pieces the Act screens share: run statuses, links to the catalog, a JSON editor that saves
// through the API, the client-side pages of lists the API answers whole.

import { html, useState, Pager, setParams, useAction, parseJson } from '../ui.js';
import { JsonForm } from '../editor.js';

// How often a screen with a run in progress reads it again.
export const LIVE_MS = 2000;

// A run's or node run's status as a badge: done well (good), done badly (bad), going on (live),
// waiting for someone (wait).
const TONES = {
  SUCCESS: 'good', COMPLETED: 'good', success: 'good',
  FAILURE: 'bad', FAILED: 'bad', DECLINED: 'bad', failure: 'bad', error: 'bad', failed: 'bad',
  IN_PROGRESS: 'live', WAITING_FOR_APPROVAL: 'wait', CANCELLED: 'neutral',
};
export function StatusBadge({ value, label }) {
  const text = String(value ?? '—');
  return html`<span class=${`badge ${TONES[text] || 'neutral'}`} title=${label || undefined}>${text}</span>`;
}

// A workflow run's or node run's status: its result once completed, else IN_PROGRESS.
export function resultOf(run) {
  if (!run) return null;
  return run.status === 'COMPLETED' ? run.result || 'COMPLETED' : run.status;
}

// Links to the catalog's screens (blueprints and their entities).
export const blueprintHref = (bp) => `#/catalog/blueprints/${encodeURIComponent(bp)}`;
export const entityHref = (bp, id) => `#/catalog/entities/${encodeURIComponent(bp)}/${encodeURIComponent(id)}`;

export function BlueprintLink({ id }) {
  if (!id) return html`<span class="muted">—</span>`;
  return html`<a href=${blueprintHref(id)}>${id}</a>`;
}

export function EntityLink({ blueprint, id, title }) {
  if (!id) return html`<span class="muted">—</span>`;
  const text = title && title !== id ? `${title} (${id})` : id;
  return blueprint ? html`<a href=${entityHref(blueprint, id)}>${text}</a>` : html`<span>${text}</span>`;
}

// How long from `from` to `to` (or now), in words.
export function duration(from, to) {
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : Date.now();
  if (Number.isNaN(start) || Number.isNaN(end)) return '—';
  const ms = Math.max(0, end - start);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7200000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

// The audit fields an answer carries and a document sent back does not need.
const RESPONSE_ONLY = ['createdAt', 'updatedAt', 'createdBy', 'updatedBy', 'versionIdentifier', 'id'];
export function editable(doc) {
  const copy = { ...(doc || {}) };
  RESPONSE_ONLY.forEach((k) => delete copy[k]);
  return copy;
}

// The shared JSON form holding its own text: `save(doc)` calls the API with the parsed text
// (a parse error and the API's answer, whose message names the path, show under the editor);
// `onSaved(answer)` follows a save. `extra({setText})` gives the buttons beside the submit one.
export function JsonDocForm({ label, hint, initial, submitLabel, onSaved, save, rows = 14, children, extra, autoFocus }) {
  const [text, setText] = useState(initial);
  const action = useAction(async () => save(parseJson(text, label)));
  const submit = async () => {
    const done = await action.run();
    if (done && onSaved) onSaved(done);
  };
  return html`<${JsonForm} label=${label} hint=${hint} value=${text} onInput=${setText} rows=${rows} autoFocus=${autoFocus}
      submitLabel=${submitLabel} busyLabel="Saving…" busy=${action.busy} error=${action.error} onSubmit=${submit}
      extra=${extra && extra({ setText })}>
    ${children}
  <//>`;
}

// Pages of a list the API answers whole: `page` (from 1) lives in the URL.
export const PAGE_SIZE = 25;
export function pageOf(rows, page) {
  const p = Math.max(1, Number(page) || 1);
  return { page: p, rows: rows.slice((p - 1) * PAGE_SIZE, p * PAGE_SIZE), hasNext: rows.length > p * PAGE_SIZE };
}

export function ClientPager({ paged, noun, param = 'page' }) {
  if (!paged.rows.length && paged.page === 1) return null;
  return html`<${Pager} hasNext=${paged.hasNext} count=${paged.rows.length} noun=${noun}
    onNext=${() => setParams({ [param]: paged.page + 1 })}
    onFirst=${paged.page > 1 ? () => setParams({ [param]: '' }) : undefined} />`;
}

// Pages of a list the API pages by `limit`/`offset`: one more row is asked for than shown, to
// know whether a next page exists.
export function OffsetPager({ rows, offset, size = PAGE_SIZE, noun, param = 'offset' }) {
  const off = Number(offset) || 0;
  if (!rows.length && !off) return null;
  return html`<${Pager} hasNext=${rows.length > size} count=${Math.min(rows.length, size)} noun=${noun}
    onNext=${() => setParams({ [param]: off + size })}
    onFirst=${off > 0 ? () => setParams({ [param]: '' }) : undefined} />`;
}

// A labelled read-only list of facts (`[label, value]` pairs; empty values are left out).
export function Props({ items }) {
  return html`<dl class="props">${items
    .filter(([, v]) => v !== undefined && v !== null && v !== '' && v !== false)
    .map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}
