// Ingestion: webhooks that receive events from tools (GitHub, …), the mappings that turn each
// event into catalog entities (with a live test), and each webhook's event log and replay.
//
// Routes: #/ingestion/webhooks, #/ingestion/webhooks/:webhook (URL, security, mapping editor,
// live test), #/ingestion/webhooks/:webhook/events (event log, replay range) and
// #/ingestion/webhooks/:webhook/events/:event (one event).

import {
  html, useState, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, Badge, CopyButton, useLoad, useAction,
  setParams, num, pretty, parseJson,
} from '../ui.js';
import { api } from '../api.js';
import { JsonForm } from '../editor.js';
import { EXAMPLE_WEBHOOK, webhookHref, eventsHref, blueprintHref, webhooksHref } from './ingestion-common.js';
import { WebhookDetail } from './ingestion-webhook.js';
import { Events, EventDetail } from './ingestion-events.js';

const PAGE_SIZE = 25;

// What a tool would send: a line to try the URL with.
function curlLine(url) {
  return `curl -X POST '${url}' -H 'content-type: application/json' -H 'x-github-event: pull_request' -d '{"pull_request": {"id": 1, "title": "Hello"}}'`;
}

// The notice shown once a webhook is created: where to send events.
function Created({ webhook, onClose }) {
  return html`<div class="notice ing-created" role="status">
    <p><strong>Webhook “${webhook.title}” created.</strong> Point your tool (GitHub: Settings → Webhooks, content type <code>application/json</code>) at its ingest URL:</p>
    <p class="ing-url"><code id="created-url">${webhook.url}</code> <${CopyButton} text=${webhook.url} label="Copy URL" /></p>
    <p class="hint">Or try it from a shell: <code class="ing-wrap">${curlLine(webhook.url)}</code></p>
    <p class="page-actions">
      <a href=${webhookHref(webhook.identifier)}>Open the webhook and its mappings</a>
      <a href=${eventsHref(webhook.identifier)}>Event log</a>
      <button type="button" class="secondary small" onClick=${onClose}>Dismiss</button>
    </p>
  </div>`;
}

// Create webhook: the whole document as JSON (Port's shape), POST /v1/webhooks.
function CreateWebhook({ blueprints, onCreated, onCancel }) {
  const [text, setText] = useState(pretty(EXAMPLE_WEBHOOK));
  const create = useAction(() => api.post('/v1/webhooks', parseJson(text, 'The webhook')));
  const submit = async () => {
    const answer = await create.run();
    if (answer && answer.integration) onCreated(answer.integration);
  };
  const names = (blueprints || []).map((b) => b.identifier);
  return html`<${Section} title="Create webhook" id="create-webhook">
    <${JsonForm} id="webhook-json" label="Webhook (JSON)" value=${text} onInput=${setText} rows=${16}
      submitLabel="Create webhook" busyLabel="Creating…" busy=${create.busy} error=${create.error}
      what="The webhook was not created" onSubmit=${submit}
      hint=${html`The webhook in Port’s shape: <code>identifier</code> (optional), <code>title</code>, <code>mappings</code> (every value is a jq expression over <code>.body</code>, <code>.headers</code> and <code>.queryParams</code>) and <code>security</code>. The example maps GitHub pull requests to the blueprint <code>pullRequest</code>; ${names.length
          ? html`your blueprints are ${names.slice(0, 12).map((n, i) => html`${i ? ', ' : ''}<code>${n}</code>`)}${names.length > 12 ? ', …' : ''}.`
          : html`you have no blueprint yet: create one in <a href="#/catalog/blueprints">Catalog → Blueprints</a> first.`} To check GitHub’s signatures add to <code>security</code>: <code>"secret"</code>, <code>"signatureHeaderName": "x-hub-signature-256"</code>, <code>"signatureAlgorithm": "sha256"</code>, <code>"signaturePrefix": "sha256="</code>.`}
      extra=${html`
        <button type="button" class="secondary" onClick=${() => setText(pretty(EXAMPLE_WEBHOOK))}>Reset to the example</button>
        <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>`} />
  <//>`;
}

function blueprintsOf(webhook) {
  return [...new Set((webhook.mappings || []).map((m) => m.blueprint))];
}

export function Webhooks({ query }) {
  const list = useLoad(() => api.get('/v1/webhooks').then((a) => a.integrations || []), []);
  const blueprints = useLoad(() => api.get('/v1/blueprints').then((a) => a.blueprints || []), []);
  const [creating, setCreating] = useState(query.create === '1');
  const [created, setCreated] = useState(null);
  const [search, setSearch] = useState(query.q || '');
  const q = (query.q || '').trim().toLowerCase();
  const page = Math.max(0, Number(query.page) || 0);
  const all = list.data || [];
  const shown = q
    ? all.filter((w) => [w.identifier, w.title, w.description, ...blueprintsOf(w)].some((t) => String(t || '').toLowerCase().includes(q)))
    : all;
  const rows = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  const columns = [
    {
      label: 'Title',
      render: (w) => html`<a href=${webhookHref(w.identifier)}>${w.title}</a>${w.description && html`<div class="muted ing-sub">${w.description}</div>`}`,
    },
    { label: 'Identifier', render: (w) => html`<code>${w.identifier}</code>` },
    { label: 'Enabled', render: (w) => html`<${Badge} value=${w.enabled ? 'enabled' : 'disabled'} />` },
    { label: 'Mappings', className: 'num', render: (w) => num((w.mappings || []).length) },
    {
      label: 'Blueprints',
      render: (w) => {
        const names = blueprintsOf(w);
        return names.length ? names.map((b, i) => html`${i ? ', ' : ''}<a href=${blueprintHref(b)}>${b}</a>`) : html`<span class="muted">none</span>`;
      },
    },
    { label: 'Integration type', render: (w) => w.integrationType || 'custom' },
    { label: 'Updated', render: (w) => html`<${Time} at=${w.updatedAt} />` },
    { label: 'Events', render: (w) => html`<a href=${eventsHref(w.identifier)} aria-label=${`Event log of ${w.title}`}>Event log</a>` },
  ];
  const onCreated = (webhook) => {
    setCreated(webhook);
    setCreating(false);
    list.reload();
  };
  const applySearch = (e) => {
    e.preventDefault();
    setParams({ q: search.trim(), page: '' });
  };
  return html`<${Page} title="Webhooks" crumbs=${[['Ingestion', null], ['Webhooks', null]]}
    subtitle="Ingestion webhooks: each has a URL that tools send events to, and mappings that turn each event into entities."
    actions=${!creating && html`<button type="button" onClick=${() => { setCreating(true); setCreated(null); }}>Create webhook</button>`}>
    ${created && html`<${Created} webhook=${created} onClose=${() => setCreated(null)} />`}
    ${creating && html`<${CreateWebhook} blueprints=${blueprints.data} onCreated=${onCreated} onCancel=${() => setCreating(false)} />`}
    <${Section} title="All webhooks" id="webhooks-list">
      ${all.length > 0 && html`<form class="filters" role="search" onSubmit=${applySearch}>
        <div class="field"><label for="webhook-search">Search webhooks</label>
          <input id="webhook-search" type="search" value=${search} placeholder="title, identifier or blueprint"
            onInput=${(e) => setSearch(e.currentTarget.value)} /></div>
        <button type="submit" class="secondary">Search</button>
        ${q && html`<button type="button" class="secondary" onClick=${() => { setSearch(''); setParams({ q: '', page: '' }); }}>Clear search</button>`}
      </form>`}
      <${ErrorNote} error=${list.error} what="Cannot list webhooks" />
      ${list.loading && !list.data && html`<${Loading} what="webhooks" />`}
      ${list.data && html`<${Table} caption="Webhooks" columns=${columns} rows=${rows} rowKey=${(w) => w.identifier}
        empty=${q
          ? html`<${Empty} title=${`No webhook matches “${query.q}”.`}>Try another word, or <a href=${webhooksHref()}>show every webhook</a>.<//>`
          : html`<${Empty} title="No webhooks yet.">Choose <strong>Create webhook</strong> to get a URL to point GitHub (or any tool)
              at, with mappings that turn each event into entities. A mapping writes entities of a blueprint: create one in <a href="#/catalog/blueprints">Catalog → Blueprints</a> first.<//>`} />
        ${shown.length > PAGE_SIZE && html`<${Pager} count=${rows.length} noun=${`of ${num(shown.length)} webhooks`}
          hasNext=${(page + 1) * PAGE_SIZE < shown.length} onNext=${() => setParams({ page: String(page + 1) })}
          onFirst=${page > 0 ? () => setParams({ page: '' }) : null} />`}`}
    <//>
  <//>`;
}

function IngestionHome() {
  return html`<${Webhooks} query=${{}} />`;
}

export const routes = [
  { path: '/ingestion', view: IngestionHome },
  { path: '/ingestion/webhooks', view: Webhooks },
  { path: '/ingestion/webhooks/:webhook', view: WebhookDetail },
  { path: '/ingestion/webhooks/:webhook/events', view: Events },
  { path: '/ingestion/webhooks/:webhook/events/:event', view: EventDetail },
];
