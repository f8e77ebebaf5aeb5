// The console's shared pieces: loading hooks, tables that page, times, JSON, badges, forms.
// Screens build on these so that every list pages, filters and links the same way.

import { html, useState, useEffect, useCallback, useRef } from './vendor/preact-htm.mjs';

export { html, useState, useEffect, useCallback, useRef };

// ---------------------------------------------------------------------------------- routing

// The current route: the part of the URL after `#`, split into path and query.
export function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path, params: Object.fromEntries(new URLSearchParams(search)) };
}

export function useRoute() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

// A console link: `href(['catalog', 'blueprints', id], {q: 'x'})` → `#/catalog/blueprints/id?q=x`.
export function href(parts, params) {
  const path = '/' + parts.map((p) => encodeURIComponent(p)).join('/');
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') search.set(k, v);
  const q = search.toString();
  return `#${path}${q ? `?${q}` : ''}`;
}

export function navigate(parts, params) {
  location.hash = href(parts, params);
}

// Replaces the query of the current route (filters, pages), keeping the path.
export function setParams(params) {
  const { path, params: old } = currentRoute();
  const merged = { ...old, ...params };
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(merged)) if (v !== undefined && v !== null && v !== '') search.set(k, v);
  const q = search.toString();
  location.hash = `#${path}${q ? `?${q}` : ''}`;
}

// Matches `/catalog/blueprints/:id` against a path; returns the decoded params or null.
export function match(pattern, path) {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':')) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

// -------------------------------------------------------------------------------- data hooks

// Loads with `load()` when `deps` change. `{data, error, loading, reload}`.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(load)
      .then(
        (data) => mine === generation.current && setState({ data, error: null, loading: false }),
        (error) => mine === generation.current && setState({ data: null, error, loading: false }),
      );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

// Requests started early, by key (the exact path asked for). A part drawn only once something
// else has loaded (a table under the list of blueprints, a history under its entity) asks for
// its data only then; when the URL alone says what it will ask for, the screen starts that
// request at once, so the two go out together rather than one after the other.
const early = new Map();

// Starts `load()` when the screen opens (nothing when `key` is empty), for the part drawn later
// to take with `takeEarly(key, …)`. Only on opening: a part already drawn asks for itself. An
// answer not taken (the part was never drawn) is dropped when the screen closes, never shown later.
export function useEarly(key, load) {
  useEffect(() => {
    if (!key) return undefined;
    const answer = load();
    answer.catch(() => {}); // a failure shows where the answer is taken, not as unhandled
    early.set(key, answer);
    return () => {
      if (early.get(key) === answer) early.delete(key);
    };
  }, []);
}

// The answer started early for `key`, taken once; else `load()` as usual (a reload, a change
// of page or filter, a part drawn again).
export function takeEarly(key, load) {
  const answer = early.get(key);
  early.delete(key);
  return answer || load();
}

// Calls `f` every `ms` while the screen is shown (live statuses).
export function useInterval(f, ms) {
  const saved = useRef(f);
  saved.current = f;
  useEffect(() => {
    if (!ms) return undefined;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

// An action a button starts: `{busy, error, done, run}`; `run` returns what `f` returned.
export function useAction(f) {
  const [state, setState] = useState({ busy: false, error: null, done: null });
  const run = async (...args) => {
    setState({ busy: true, error: null, done: null });
    try {
      const done = await f(...args);
      setState({ busy: false, error: null, done });
      return done;
    } catch (error) {
      setState({ busy: false, error, done: null });
      return undefined;
    }
  };
  return { ...state, run };
}

// ---------------------------------------------------------------------------------- layout

export function Page({ title, subtitle, actions, children, crumbs }) {
  useEffect(() => {
    document.title = `${title} · Wharf`;
  }, [title]);
  return html`<section class="page">
    ${crumbs && html`<nav class="crumbs" aria-label="Breadcrumb">${crumbs.map(
      ([label, to], i) => html`${i > 0 && html`<span aria-hidden="true"> / </span>`}${to ? html`<a href=${to}>${label}</a>` : html`<span>${label}</span>`}`,
    )}</nav>`}
    <header class="page-head">
      <div><h1>${title}</h1>${subtitle && html`<p class="muted">${subtitle}</p>`}</div>
      ${actions && html`<div class="page-actions">${actions}</div>`}
    </header>
    ${children}
  </section>`;
}

export function Section({ title, actions, children, id }) {
  return html`<section class="card" aria-labelledby=${id}>
    <header class="card-head"><h2 id=${id}>${title}</h2>${actions && html`<div class="page-actions">${actions}</div>`}</header>
    ${children}
  </section>`;
}

// The API's message for a failed call, with its code, in an alert region.
export function ErrorNote({ error, what }) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    <strong>${what ? `${what}: ` : ''}${error.message}</strong>
    ${error.code && html` <code class="muted">${error.status ? `${error.status} ` : ''}${error.code}</code>`}
  </div>`;
}

export function Loading({ what }) {
  return html`<p class="muted" role="status">Loading${what ? ` ${what}` : ''}…</p>`;
}

// What to show when a list is empty: what it is and what to do next.
export function Empty({ title, children }) {
  return html`<div class="empty"><p><strong>${title}</strong></p>${children && html`<p>${children}</p>`}</div>`;
}

// A table of `rows`; `columns` are `{label, render(row), className}`. Shows `empty` when none.
export function Table({ columns, rows, empty, caption, rowKey }) {
  if (!rows || rows.length === 0) return empty || html`<${Empty} title="Nothing here yet." />`;
  return html`<div class="table-wrap"><table>
    ${caption && html`<caption class="sr-only">${caption}</caption>`}
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.className}>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map(
      (row, i) => html`<tr key=${rowKey ? rowKey(row) : i}>${columns.map((c) => html`<td class=${c.className} data-label=${c.label}>${c.render(row)}</td>`)}</tr>`,
    )}</tbody>
  </table></div>`;
}

// Paging by cursor: `onNext` when there is more; `onFirst` goes back to the first page.
export function Pager({ hasNext, onNext, onFirst, count, noun = 'items' }) {
  return html`<nav class="pager" aria-label="Pages">
    <span class="muted">${count !== undefined ? `${count} ${noun} shown` : ''}</span>
    ${onFirst && html`<button type="button" class="secondary" onClick=${onFirst}>First page</button>`}
    <button type="button" class="secondary" disabled=${!hasNext} onClick=${onNext}>Next page</button>
  </nav>`;
}

// ------------------------------------------------------------------------------ small parts

// A date as text in the user's locale and zone, in a date and a time `style` ('medium': what
// `Time` shows; 'short' dates the mapping screen's list of events). The same text as
// `date.toLocaleString(undefined, {dateStyle: style, timeStyle: 'medium'})`, but that builds a
// formatter on each call (a table of 50 times paid it 50 times on each drawing): each style's
// formatter is built once, on first use, and kept.
const formatters = new Map();
export function localTime(date, style = 'medium') {
  let formatter = formatters.get(style);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat(undefined, { dateStyle: style, timeStyle: 'medium' });
    formatters.set(style, formatter);
  }
  return formatter.format(date);
}

// A time in the user's zone, the UTC value on hover.
export function Time({ at }) {
  if (!at) return html`<span class="muted">—</span>`;
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return html`<span>${String(at)}</span>`;
  const local = localTime(date);
  return html`<time datetime=${date.toISOString()} title=${`${date.toISOString().replace('T', ' ').replace('Z', ' UTC')}`}>${local}</time>`;
}

const GOOD = ['SUCCESS', 'success', 'succeeded', 'delivered', 'mapped', 'processed', 'ok', 'active', 'enabled', 'COMPLETED'];
const BAD = ['FAILURE', 'failure', 'failed', 'rejected', 'disabled', 'DECLINED', 'dead', 'error', 'errored'];

export function Badge({ value }) {
  const text = value === true ? 'yes' : value === false ? 'no' : String(value ?? '—');
  const tone = GOOD.includes(text) ? 'good' : BAD.includes(text) ? 'bad' : 'neutral';
  return html`<span class=${`badge ${tone}`}>${text}</span>`;
}

// JSON, pretty-printed, in a scrollable block.
export function Json({ value, label }) {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return html`<pre class="json" tabindex="0" aria-label=${label || 'JSON'}>${text}</pre>`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  };
  return html`<button type="button" class="secondary small" onClick=${copy} aria-label=${`${label}: ${text}`}>${copied ? 'Copied' : label}</button>`;
}

// A labelled form field; `hint` explains, `children` is the control (given the id).
let nextId = 0;
export function Field({ label, hint, children, required }) {
  const id = useRef(`f${++nextId}`).current;
  const control = typeof children === 'function' ? children(id) : children;
  return html`<div class="field">
    <label for=${id}>${label}${required && html`<span aria-hidden="true"> *</span>`}</label>
    ${control}
    ${hint && html`<p class="hint">${hint}</p>`}
  </div>`;
}

// A text input bound to a value: `<${Input} label="Name" value=${v} onInput=${setV} />`.
export function Input({ label, hint, value, onInput, type = 'text', required, placeholder, name, autocomplete }) {
  return html`<${Field} label=${label} hint=${hint} required=${required}>${(id) => html`<input
    id=${id} name=${name} type=${type} value=${value ?? ''} required=${required} placeholder=${placeholder}
    autocomplete=${autocomplete} onInput=${(e) => onInput(e.currentTarget.value)} />`}<//>`;
}

export function Select({ label, hint, value, onChange, options, required }) {
  return html`<${Field} label=${label} hint=${hint} required=${required}>${(id) => html`<select
    id=${id} value=${value ?? ''} required=${required} onChange=${(e) => onChange(e.currentTarget.value)}>
    ${options.map((o) => (Array.isArray(o) ? html`<option value=${o[0]}>${o[1]}</option>` : html`<option value=${o}>${o}</option>`))}
  </select>`}<//>`;
}

// A delete that asks first: "Delete <what>" opens a confirmation (the focus moves to its
// "Yes, delete <what>" button) with `question` and `note`; `onDelete()` runs on yes, and its
// error shows there. `children` (what goes, options such as "also delete …") stay above.
export function ConfirmDelete({ what, question, note = 'This cannot be undone.', onDelete, children }) {
  const [asking, setAsking] = useState(false);
  const action = useAction(onDelete);
  const yes = useRef(null);
  const questionId = useRef(`f${++nextId}`).current;
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  return html`<div class=${asking ? 'confirm-delete asking' : 'confirm-delete'}>
    ${children}
    ${asking
      ? html`<div class="notice" role="group" aria-labelledby=${questionId}>
          <p id=${questionId}><strong>${question || `Delete this ${what}?`}</strong> ${note}</p>
          <${ErrorNote} error=${action.error} what="Not deleted" />
          <div class="page-actions">
            <button type="button" class="danger" ref=${yes} disabled=${action.busy} onClick=${() => action.run()}>${action.busy ? 'Deleting…' : `Yes, delete ${what}`}</button>
            <button type="button" class="secondary" onClick=${() => setAsking(false)}>Cancel</button>
          </div>
        </div>`
      : html`<div class="page-actions"><button type="button" class="danger" onClick=${() => setAsking(true)}>Delete ${what}</button></div>`}
  </div>`;
}

// A dialog for a secret shown once (subscription secrets, client secrets).
export function SecretOnce({ secret, what, onClose }) {
  if (!secret) return null;
  return html`<div class="notice" role="alert">
    <p><strong>${what}</strong> — shown this once; Wharf keeps it sealed and will not show it again.</p>
    <p><code class="secret">${secret}</code> <${CopyButton} text=${secret} /></p>
    <button type="button" class="secondary small" onClick=${onClose}>I have saved it</button>
  </div>`;
}

// Parses JSON a user typed; throws an error (code `invalid_json`) whose message says what and
// where it went wrong, for an ErrorNote to show.
export function parseJson(text, what = 'The JSON') {
  try {
    return JSON.parse(text);
  } catch (err) {
    const error = new Error(`${what} does not parse: ${err.message}`);
    error.code = 'invalid_json';
    throw error;
  }
}

// A value as indented JSON (what the JSON editors start from).
export const pretty = (value) => JSON.stringify(value, null, 2);

// A number with thousands separators.
export const num = (n) => (n === undefined || n === null ? '—' : Number(n).toLocaleString());

// ISO time from an `<input type="datetime-local">` value (read in the user's zone).
export function localInputToIso(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}
