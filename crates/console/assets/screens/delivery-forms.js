// The delivery screens' forms: a project (create and edit), a subscription (create and edit,
// with its headers as rows), and the confirmation step the risky buttons ask for.

import { html, useState, useEffect, useRef, Field, Input, Select, ErrorNote, useAction } from '../ui.js';
import { parseEvents, slugOf } from './delivery-api.js';

export const PROJECT_STATUSES = ['draft', 'active', 'archived'];

// A project's fields. `initial` is the project when editing; `onSubmit(doc)` returns a promise.
export function ProjectForm({ initial, onSubmit, submitLabel, onCancel }) {
  const [name, setName] = useState(initial?.name || '');
  const [slug, setSlug] = useState(initial?.slug || '');
  const [slugEdited, setSlugEdited] = useState(Boolean(initial));
  const [description, setDescription] = useState(initial?.description || '');
  const [status, setStatus] = useState(initial?.status || 'draft');
  const action = useAction(onSubmit);
  const changeName = (value) => {
    setName(value);
    if (!slugEdited) setSlug(slugOf(value));
  };
  const submit = (e) => {
    e.preventDefault();
    const doc = { name: name.trim(), slug: slug.trim(), status };
    if (description.trim() || initial?.description) doc.description = description.trim();
    action.run(doc);
  };
  return html`<form class="dl-form" onSubmit=${submit}>
    <${ErrorNote} error=${action.error} what=${initial ? 'Cannot save the project' : 'Cannot create the project'} />
    <div class="dl-row">
      <${Input} label="Name" value=${name} onInput=${changeName} required hint="2 to 100 characters, e.g. Billing." />
      <${Input} label="Slug" value=${slug} required hint="Lowercase letters, digits and dashes; unique in the organization."
        onInput=${(v) => { setSlug(v); setSlugEdited(true); }} />
      <${Select} label="Status" value=${status} onChange=${setStatus} options=${PROJECT_STATUSES} />
    </div>
    <${Input} label="Description" value=${description} onInput=${setDescription} hint="Optional, up to 255 characters." />
    <div class="page-actions">
      <button type="submit" disabled=${action.busy}>${action.busy ? 'Saving…' : submitLabel}</button>
      ${onCancel && html`<button type="button" class="secondary" onClick=${onCancel}>Cancel</button>`}
    </div>
  </form>`;
}

const REDACTED = '[redacted]';

// Header rows from a subscription: secret unless named in `headersNotSecret`.
function headerRows(subscription) {
  const clear = new Set((subscription?.headersNotSecret || []).map((h) => h.toLowerCase()));
  return Object.entries(subscription?.headers || {}).map(([name, value]) => ({ name, value, secret: !clear.has(name.toLowerCase()) }));
}

// A subscription's fields: name, URL, event types, headers (rows of name, value and whether
// the value is a secret) and active. `initial` is the subscription when editing.
export function SubscriptionForm({ initial, onSubmit, submitLabel, onCancel }) {
  const [name, setName] = useState(initial?.name || '');
  const [url, setUrl] = useState(initial?.url || '');
  const [events, setEvents] = useState((initial?.events || []).join(', '));
  const [headers, setHeaders] = useState(headerRows(initial));
  const [active, setActive] = useState(initial ? Boolean(initial.active) : true);
  const [problem, setProblem] = useState(null);
  const action = useAction(onSubmit);
  const setRow = (i, change) => setHeaders(headers.map((row, j) => (j === i ? { ...row, ...change } : row)));
  const submit = (e) => {
    e.preventDefault();
    const types = parseEvents(events);
    if (types.length === 0) {
      setProblem('Name at least one event type (a type such as invoice.paid, or a pattern such as invoice.*).');
      return;
    }
    const rows = headers.filter((row) => row.name.trim() || row.value);
    const missing = rows.find((row) => !row.name.trim());
    if (missing) {
      setProblem('Every header needs a name (remove the rows you do not need).');
      return;
    }
    setProblem(null);
    const doc = {
      name: name.trim(),
      url: url.trim(),
      events: types,
      headers: Object.fromEntries(rows.map((row) => [row.name.trim(), row.value])),
      headersNotSecret: rows.filter((row) => !row.secret).map((row) => row.name.trim()),
      active,
    };
    action.run(doc);
  };
  return html`<form class="dl-form" onSubmit=${submit}>
    <${ErrorNote} error=${problem ? null : action.error} what=${initial ? 'Cannot save the subscription' : 'Cannot create the subscription'} />
    ${problem && html`<div class="error" role="alert"><strong>${problem}</strong></div>`}
    <div class="dl-row">
      <${Input} label="Name" value=${name} onInput=${setName} required hint="Up to 100 characters, e.g. Invoices to ERP." />
      <${Input} label="URL" type="url" value=${url} onInput=${setUrl} required placeholder="https://example.com/webhooks"
        hint="http:// or https://. Wharf refuses private addresses unless the server allows them (--allow-network)." />
    </div>
    <${Input} label="Event types" value=${events} onInput=${setEvents} required placeholder="invoice.paid, invoice.*"
      hint="Separated by commas or spaces. * matches one segment (invoice.*); a lone * matches every event. Entity changes are published as entity.<blueprint>.created, .updated and .deleted; runs as run.<action>.created and .updated." />
    <fieldset class="dl-headers">
      <legend>Headers</legend>
      <p class="hint">Sent with every delivery (not the webhook-* signature headers Wharf adds). Secret values are sealed at rest and shown as ${REDACTED}${initial ? html`; leave ${REDACTED} to keep the stored value` : ''}.</p>
      ${headers.map((row, i) => html`<div class="dl-header-row" key=${i}>
        <${Input} label=${`Header ${i + 1} name`} value=${row.name} onInput=${(v) => setRow(i, { name: v })} placeholder="authorization" />
        <${Input} label=${`Header ${i + 1} value`} value=${row.value} onInput=${(v) => setRow(i, { value: v })} />
        <label class="dl-check"><input type="checkbox" checked=${row.secret}
          onChange=${(e) => setRow(i, { secret: e.currentTarget.checked })} /> Secret<span class="sr-only"> (header ${i + 1})</span></label>
        <button type="button" class="secondary small" onClick=${() => setHeaders(headers.filter((_, j) => j !== i))}
          aria-label=${`Remove header ${i + 1}`}>Remove</button>
      </div>`)}
      <div><button type="button" class="secondary small" onClick=${() => setHeaders([...headers, { name: '', value: '', secret: true }])}>Add header</button></div>
    </fieldset>
    <label class="dl-check"><input type="checkbox" checked=${active} onChange=${(e) => setActive(e.currentTarget.checked)} />
      Active (deliver matching events to this URL)</label>
    <div class="page-actions">
      <button type="submit" disabled=${action.busy}>${action.busy ? 'Saving…' : submitLabel}</button>
      ${onCancel && html`<button type="button" class="secondary" onClick=${onCancel}>Cancel</button>`}
    </div>
  </form>`;
}

// A confirmation in place of a risky button: says what will happen, then `confirmLabel` runs
// `onConfirm`; `children` may hold extra fields.
export function Confirm({ title, children, confirmLabel, onConfirm, onCancel, busy, error, danger }) {
  const box = useRef(null);
  useEffect(() => box.current?.focus(), []);
  return html`<div class="notice dl-confirm" role="group" aria-label=${title} tabindex="-1" ref=${box}>
    <p><strong>${title}</strong></p>
    ${children}
    <${ErrorNote} error=${error} />
    <div class="page-actions">
      <button type="button" class=${danger ? 'danger' : ''} disabled=${busy} onClick=${onConfirm}>${busy ? 'Working…' : confirmLabel}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
  </div>`;
}

// A labelled number field.
export function NumberField({ label, value, onInput, min, max, hint }) {
  return html`<${Field} label=${label} hint=${hint}>${(id) => html`<input id=${id} type="number" min=${min} max=${max}
    value=${value} onInput=${(e) => onInput(e.currentTarget.value)} />`}<//>`;
}
