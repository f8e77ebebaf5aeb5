// Delivery → Projects: the organization's projects, and one project with its subscriptions, a
// form to subscribe a URL to event types, and a form to publish a test event.

import {
  html, useState, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, Badge, Field, Input, Select,
  SecretOnce, useLoad, useAction, href, navigate, setParams,
} from '../ui.js';
import { CodeEditor } from '../editor.js';
import { api } from '../api.js';
import { projectsPath, subscriptionsPath, sampleType } from './delivery-api.js';
import { ProjectForm, SubscriptionForm, Confirm, PROJECT_STATUSES } from './delivery-forms.js';

const PAGE_SIZE = 25;

export const projectLink = (project) => href(['delivery', 'projects', project]);
export const subscriptionLink = (project, subscription) => href(['delivery', 'projects', project, 'subscriptions', subscription]);

// One page of an array the API returns whole: `page` (1-based) from the URL.
function pageOf(rows, page) {
  const n = Math.max(1, Number(page) || 1);
  const start = (n - 1) * PAGE_SIZE;
  return { rows: rows.slice(start, start + PAGE_SIZE), page: n, hasNext: start + PAGE_SIZE < rows.length };
}

function ListPager({ paged, total, noun, one }) {
  if (total === 0 && paged.page === 1) return null;
  if (total <= PAGE_SIZE && paged.page === 1) return html`<p class="muted dl-note">${total} ${total === 1 ? one : noun}</p>`;
  return html`<${Pager} hasNext=${paged.hasNext} count=${paged.rows.length} noun=${`of ${total} ${noun}`}
    onNext=${() => setParams({ page: paged.page + 1 })} onFirst=${paged.page > 1 ? () => setParams({ page: '' }) : null} />`;
}

// A search box that filters as one types and keeps the filter in the URL when it changes.
function SearchBox({ label, value, onInput, param = 'q' }) {
  return html`<${Field} label=${label}>${(id) => html`<input id=${id} type="search" value=${value}
    onInput=${(e) => onInput(e.currentTarget.value)} onChange=${(e) => setParams({ [param]: e.currentTarget.value, page: '' })} />`}<//>`;
}

// ------------------------------------------------------------------------------- projects

export function ProjectsList({ query }) {
  const list = useLoad(async () => api.get(await projectsPath()), []);
  const [creating, setCreating] = useState(false);
  const [search, setSearch] = useState(query.q || '');
  const status = query.status || '';
  const create = async (doc) => {
    const project = await api.post(await projectsPath(), doc);
    navigate(['delivery', 'projects', project._id]);
    return project;
  };
  const projects = list.data || [];
  const needle = search.trim().toLowerCase();
  const filtered = projects
    .filter((p) => !needle || p.name.toLowerCase().includes(needle) || p.slug.includes(needle) || p._id === needle)
    .filter((p) => !status || p.status === status)
    .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  const paged = pageOf(filtered, query.page);
  const showForm = creating || (list.data && projects.length === 0);
  const columns = [
    { label: 'Project', render: (p) => html`<a href=${projectLink(p._id)}>${p.name}</a>` },
    { label: 'Slug', render: (p) => html`<code>${p.slug}</code>` },
    { label: 'Status', render: (p) => html`<${Badge} value=${p.status} />` },
    { label: 'Description', render: (p) => p.description || html`<span class="muted">—</span>` },
    { label: 'Created', render: (p) => html`<${Time} at=${p.createdAt} />` },
  ];
  return html`<${Page} title="Projects"
    subtitle="A project holds webhook subscriptions: every event published to it is delivered, signed, to each active subscription whose event types match."
    actions=${list.data && !showForm && html`<button type="button" onClick=${() => setCreating(true)}>New project</button>`}>
    ${showForm && html`<${Section} title="Create project" id="dl-create-project">
      <${ProjectForm} submitLabel="Create project" onSubmit=${create} onCancel=${projects.length > 0 ? () => setCreating(false) : null} />
    <//>`}
    <${Section} title="All projects" id="dl-projects">
      <${ErrorNote} error=${list.error} what="Cannot list the projects" />
      ${!list.data && !list.error && html`<${Loading} what="projects" />`}
      ${list.data && projects.length > 0 && html`<div class="filters">
        <${SearchBox} label="Search projects" value=${search} onInput=${setSearch} />
        <${Select} label="Status" value=${status} onChange=${(v) => setParams({ status: v, page: '' })}
          options=${[['', 'any'], ...PROJECT_STATUSES]} />
      </div>`}
      ${list.data && html`<${Table} columns=${columns} rows=${paged.rows} rowKey=${(p) => p._id} caption="Projects"
        empty=${projects.length === 0
          ? html`<${Empty} title="No projects yet.">Create one with the form above: name it after the product or team whose events it sends, then add a subscription for each URL that should receive them.<//>`
          : html`<${Empty} title="No project matches these filters."><a href=${href(['delivery', 'projects'])} onClick=${() => setSearch('')}>Clear the filters</a> to see all ${projects.length}.<//>`} />
      <${ListPager} paged=${paged} total=${filtered.length} noun="projects" one="project" />`}
    <//>
  <//>`;
}

// ---------------------------------------------------------------------------- one project

function subscriptionState(s) {
  if (s.active) return html`<${Badge} value="active" />`;
  return html`<span class="dl-state"><${Badge} value="disabled" />
    <span class="muted dl-note">${s.disabledReason ? `by Wharf: ${s.disabledReason}` : 'turned off'}</span></span>`;
}

function Events({ events }) {
  return html`<span class="dl-events">${(events || []).map((e) => html`<code>${e}</code>`)}</span>`;
}

// Publishes an event to the project, for trying subscriptions without curl.
function PublishForm({ project, subscriptions }) {
  const [type, setType] = useState(sampleType(subscriptions[0]?.events));
  const [data, setData] = useState('{\n  "message": "A test from the Wharf console"\n}');
  const [id, setId] = useState('');
  const [problem, setProblem] = useState(null);
  const action = useAction(async (doc) => api.post(`${await projectsPath(project)}/events`, doc));
  const submit = (e) => {
    e.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(data || 'null');
    } catch (err) {
      setProblem(`The data is not JSON: ${err.message}`);
      return;
    }
    setProblem(null);
    const doc = { type: type.trim(), data: parsed };
    if (id.trim()) doc.id = id.trim();
    action.run(doc);
  };
  const receipt = action.done;
  return html`<form class="dl-form" onSubmit=${submit}>
    <p class="hint">Publishes an event as <code>POST …/projects/{id}/events</code> does: each active subscription whose event types match gets a signed delivery of <code>{"type", "timestamp", "data"}</code>.</p>
    <${ErrorNote} error=${problem ? null : action.error} what="Cannot publish" />
    ${problem && html`<div class="error" role="alert"><strong>${problem}</strong></div>`}
    ${receipt && html`<div class="notice" role="status">
      Published event <code>${receipt.id}</code> (<code>${receipt.type}</code>):${' '}
      <strong>${receipt.deliveries === 1 ? '1 delivery' : `${receipt.deliveries} deliveries`} queued</strong>.
      ${receipt.deliveries === 0
        ? ' No active subscription of this project matches this event type.'
        : html` Open a subscription below to follow ${receipt.deliveries === 1 ? 'its delivery' : 'their deliveries'}.`}
    </div>`}
    <div class="dl-row">
      <${Input} label="Event type" value=${type} onInput=${setType} required placeholder="invoice.paid"
        hint="Segments of letters, digits, _ and -, joined by dots." />
      <${Input} label="Event id" value=${id} onInput=${setId} placeholder="evt_1"
        hint="Optional: publishing an id already published answers 409, so a retry is safe." />
    </div>
    <${Field} label="Data" hint="Any JSON value: the event's data.">${(fid) => html`<${CodeEditor} id=${fid} label="Data" language="json"
      value=${data} onInput=${setData} rows=${4} />`}<//>
    <div><button type="submit" disabled=${action.busy}>${action.busy ? 'Publishing…' : 'Publish'}</button></div>
  </form>`;
}

export function ProjectPage({ project, query }) {
  const info = useLoad(async () => api.get(await projectsPath(project)), [project]);
  const subs = useLoad(async () => api.get(await subscriptionsPath(project)), [project]);
  const [mode, setMode] = useState(null); // 'create' | 'edit' | 'delete'
  const [created, setCreated] = useState(null);
  const [search, setSearch] = useState(query.q || '');
  const state = query.state || '';
  const remove = useAction(async () => {
    await api.delete(await projectsPath(project));
    navigate(['delivery', 'projects']);
  });
  const createSubscription = async (doc) => {
    const made = await api.post(await subscriptionsPath(project), doc);
    setCreated({ id: made._id, name: made.name, secret: made.secret });
    setMode(null);
    subs.reload();
    return made;
  };
  const save = async (doc) => {
    await api.patch(await projectsPath(project), doc);
    setMode(null);
    info.reload();
  };
  const p = info.data;
  const all = subs.data || [];
  const needle = search.trim().toLowerCase();
  const filtered = all
    .filter((s) => !needle || s.name.toLowerCase().includes(needle) || s.url.toLowerCase().includes(needle)
      || (s.events || []).some((e) => e.toLowerCase().includes(needle)))
    .filter((s) => !state || (state === 'active' ? s.active : !s.active))
    .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  const paged = pageOf(filtered, query.page);
  const showCreate = mode === 'create' || (subs.data && all.length === 0 && mode !== 'edit');
  const columns = [
    { label: 'Subscription', render: (s) => html`<a href=${subscriptionLink(project, s._id)}>${s.name}</a>` },
    { label: 'URL', render: (s) => html`<span class="dl-url">${s.url}</span>` },
    { label: 'Event types', render: (s) => html`<${Events} events=${s.events} />` },
    { label: 'Status', render: subscriptionState },
    { label: 'Created', render: (s) => html`<${Time} at=${s.createdAt} />` },
  ];
  const title = p ? p.name : 'Project';
  return html`<${Page} title=${title}
    subtitle=${p ? `Project ${p.slug} · ${p.status}${p.description ? ` · ${p.description}` : ''}` : null}
    crumbs=${[['Delivery'], ['Projects', href(['delivery', 'projects'])], [title]]}
    actions=${p && html`
      ${subs.data && !showCreate && html`<button type="button" onClick=${() => setMode('create')}>New subscription</button>`}
      <button type="button" class="secondary" onClick=${() => setMode(mode === 'edit' ? null : 'edit')}>Edit project</button>
      <button type="button" class="secondary" onClick=${() => setMode('delete')}>Delete project</button>`}>
    <${ErrorNote} error=${info.error} what="Cannot read the project" />
    ${!p && !info.error && html`<${Loading} what="the project" />`}
    ${created && html`<div class="dl-created">
      <${SecretOnce} secret=${created.secret} what=${`Signing secret of ${created.name}`} onClose=${() => setCreated({ ...created, secret: null })} />
      <p class="notice" role="status">Subscription <strong>${created.name}</strong> created.${' '}
        <a href=${subscriptionLink(project, created.id)}>Open subscription ${created.name}</a></p>
    </div>`}
    ${p && mode === 'delete' && html`<${Confirm} title=${`Delete project ${p.name}?`} confirmLabel="Delete project" danger
      busy=${remove.busy} error=${remove.error} onConfirm=${() => remove.run()} onCancel=${() => setMode(null)}>
      <p>Its ${all.length === 1 ? 'subscription' : `${all.length} subscriptions`}, published events and deliveries are deleted with it. This cannot be undone.</p>
    <//>`}
    ${p && mode === 'edit' && html`<${Section} title="Edit project" id="dl-edit-project">
      <${ProjectForm} initial=${p} submitLabel="Save project" onSubmit=${save} onCancel=${() => setMode(null)} />
    <//>`}
    ${p && showCreate && html`<${Section} title="Create subscription" id="dl-create-subscription">
      <p class="hint">Wharf signs each delivery with Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) and retries failures for about a day. The signing secret is shown once, when the subscription is created.</p>
      <${SubscriptionForm} submitLabel="Create subscription" onSubmit=${createSubscription}
        onCancel=${all.length > 0 ? () => setMode(null) : null} />
    <//>`}
    ${p && html`<${Section} title="Subscriptions" id="dl-subscriptions">
      <${ErrorNote} error=${subs.error} what="Cannot list the subscriptions" />
      ${!subs.data && !subs.error && html`<${Loading} what="subscriptions" />`}
      ${all.length > 0 && html`<div class="filters">
        <${SearchBox} label="Search subscriptions" value=${search} onInput=${setSearch} />
        <${Select} label="Status" value=${state} onChange=${(v) => setParams({ state: v, page: '' })}
          options=${[['', 'any'], ['active', 'active'], ['disabled', 'disabled']]} />
      </div>`}
      ${subs.data && html`<${Table} columns=${columns} rows=${paged.rows} rowKey=${(s) => s._id} caption="Subscriptions"
        empty=${all.length === 0
          ? html`<${Empty} title="No subscriptions yet.">Create one with the form above: a URL and the event types it should receive. Then publish a test message below and follow its delivery.<//>`
          : html`<${Empty} title="No subscription matches these filters."><a href=${projectLink(project)} onClick=${() => setSearch('')}>Clear the filters</a> to see all ${all.length}.<//>`} />
      <${ListPager} paged=${paged} total=${filtered.length} noun="subscriptions" one="subscription" />`}
    <//>`}
    ${p && subs.data && html`<${Section} title="Publish a test message" id="dl-publish">
      <${PublishForm} key=${all.length > 0 ? 'some' : 'none'} project=${project} subscriptions=${all} />
    <//>`}
    ${p && html`<${Section} title="About this project" id="dl-project-about">
      <dl class="props">
        <dt>Id</dt><dd><code>${p._id}</code></dd>
        <dt>Slug</dt><dd><code>${p.slug}</code></dd>
        <dt>Status</dt><dd><${Badge} value=${p.status} /></dd>
        <dt>Description</dt><dd>${p.description || html`<span class="muted">—</span>`}</dd>
        <dt>Created</dt><dd><${Time} at=${p.createdAt} /></dd>
        <dt>Updated</dt><dd><${Time} at=${p.updatedAt} /></dd>
      </dl>
    <//>`}
  <//>`;
}
