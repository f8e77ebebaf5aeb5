// Delivery → a subscription: its details, edit, enable/disable, secret rotation, recovery of
// failed deliveries, and its deliveries (filtered by status, paged, live while any is pending).

import {
  html, useState, useEffect, useRef, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, Badge, Field, Select, SecretOnce,
  useLoad, useAction, useInterval, useEarly, takeEarly, href, navigate, setParams, localInputToIso, num,
} from '../ui.js';
import { api, query as qs } from '../api.js';
import { projectsPath, subscriptionsPath, getPage, toLocalInput } from './delivery-api.js';
import { SubscriptionForm, Confirm, NumberField } from './delivery-forms.js';
import { projectLink, subscriptionLink } from './delivery-projects.js';

const LIVE_MS = 3000;
const DELIVERIES_PAGE = 50;
export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'];

export const deliveryLink = (project, subscription, delivery) =>
  href(['delivery', 'projects', project, 'subscriptions', subscription, 'deliveries', delivery]);

// The last answer of a delivery: its status code, or its error.
export function LastResult({ delivery }) {
  if (delivery.lastStatusCode !== undefined && delivery.lastStatusCode !== null) {
    const ok = delivery.lastStatusCode >= 200 && delivery.lastStatusCode < 300;
    return html`<span class=${ok ? '' : 'dl-bad'}>HTTP ${delivery.lastStatusCode}</span>`;
  }
  if (delivery.lastError) return html`<span class="dl-bad dl-error-text">${delivery.lastError}</span>`;
  return html`<span class="muted">—</span>`;
}

// The columns of a list of deliveries (here, and on a delivery's page for its event).
export function deliveryColumns(project, subscription, current) {
  return [
    { label: 'Delivery', render: (d) => html`<span class="dl-id"><a href=${deliveryLink(project, subscription, d.id)}>${d.id}</a>${d.id === current ? html` <span class="muted dl-note">(this one)</span>` : ''}${d.manual ? html` <span class="badge">resend</span>` : ''}</span>` },
    { label: 'Status', render: (d) => html`<${Badge} value=${d.status} />` },
    { label: 'Event type', render: (d) => html`<code>${d.eventType}</code>` },
    { label: 'Created', render: (d) => html`<${Time} at=${d.createdAt} />` },
    { label: 'Attempts', className: 'dl-num', render: (d) => num(d.attempts) },
    { label: 'Next attempt', render: (d) => (d.status === 'pending' ? html`<${Time} at=${d.nextAttemptAt} />` : html`<span class="muted">—</span>`) },
    { label: 'Last result', render: (d) => html`<${LastResult} delivery=${d} />` },
  ];
}

// Whether a subscription is active, or who turned it off and why.
function StateNote({ subscription }) {
  if (subscription.active) return html`<${Badge} value="active" />`;
  return html`<span class="dl-state"><${Badge} value="disabled" />
    <span>${subscription.disabledReason ? `Disabled by Wharf: ${subscription.disabledReason}` : 'Turned off: nothing is delivered until it is enabled.'}</span></span>`;
}

// The page of deliveries the URL asks for (status filter, cursor): `load()` asks for it, and
// `key` names it for `useEarly` (its path without the organization's id, known only once asked).
function deliveriesPage(project, subscription, query) {
  const status = DELIVERY_STATUSES.includes(query.status) ? query.status : '';
  const cursor = query.cursor || '';
  const rest = `/deliveries${qs({ status, cursor, limit: DELIVERIES_PAGE })}`;
  return {
    status,
    cursor,
    key: `subscription ${project}/${subscription}${rest}`,
    load: async () => getPage(`${await subscriptionsPath(project, subscription)}${rest}`),
  };
}

function Deliveries({ project, subscription, query, version, onLoaded }) {
  const { status, cursor, key, load } = deliveriesPage(project, subscription, query);
  const list = useLoad(() => takeEarly(key, load), [project, subscription, status, cursor, version]);
  const items = list.data?.items || [];
  const pending = items.some((d) => d.status === 'pending');
  // Each new reading of the deliveries reads the subscription again too: Wharf may have
  // disabled it (410 Gone, or days of failures) meanwhile.
  const first = useRef(true);
  useEffect(() => {
    if (!list.data) return;
    if (first.current) first.current = false;
    else onLoaded();
  }, [list.data]);
  useInterval(() => list.reload(), pending ? LIVE_MS : 0);
  return html`<${Section} title="Deliveries" id="dl-deliveries"
    actions=${html`<button type="button" class="secondary small" onClick=${list.reload}>Refresh</button>`}>
    <div class="filters">
      <${Select} label="Status" value=${status} onChange=${(v) => setParams({ status: v, cursor: '' })}
        options=${[['', 'all'], ...DELIVERY_STATUSES]} />
      ${pending && html`<p class="hint" role="status">Some deliveries are pending: this list refreshes every 3 seconds.</p>`}
    </div>
    <${ErrorNote} error=${list.error} what="Cannot list the deliveries" />
    ${!list.data && !list.error && html`<${Loading} what="deliveries" />`}
    ${list.data && html`<${Table} columns=${deliveryColumns(project, subscription)} rows=${items} rowKey=${(d) => d.id} caption="Deliveries"
      empty=${status || cursor
        ? html`<${Empty} title=${status ? `No ${status} deliveries${cursor ? ' on this page' : ''}.` : 'No more deliveries.'}>
            <a href=${subscriptionLink(project, subscription)}>Show all deliveries</a> from the newest.<//>`
        : html`<${Empty} title="No deliveries yet.">Publish an event whose type matches this subscription's event types (the project's <a href=${projectLink(project)}>Publish a test message</a> form does it) and its delivery shows here.<//>`} />
    ${(items.length > 0 || cursor) && html`<${Pager} hasNext=${Boolean(list.data.next)} count=${items.length} noun=${items.length === 1 ? 'delivery' : 'deliveries'}
      onNext=${() => setParams({ cursor: list.data.next })} onFirst=${cursor ? () => setParams({ cursor: '' }) : null} />`}`}
  <//>`;
}

function Recover({ project, subscription, onDone }) {
  const [since, setSince] = useState(toLocalInput(new Date(Date.now() - 24 * 3600 * 1000)));
  const [until, setUntil] = useState('');
  const action = useAction(async () => {
    const doc = { since: localInputToIso(since) };
    if (until) doc.until = localInputToIso(until);
    const answer = await api.post(`${await subscriptionsPath(project, subscription)}/recover`, doc);
    onDone();
    return answer;
  });
  const submit = (e) => {
    e.preventDefault();
    action.run();
  };
  return html`<${Section} title="Recover failed deliveries" id="dl-recover">
    <p class="hint">Sends again, with the full retry schedule, every event whose deliveries created in this window all failed (after an outage of the receiver, say).</p>
    <form class="filters" onSubmit=${submit}>
      <${Field} label="Since" required>${(id) => html`<input id=${id} type="datetime-local" required value=${since}
        onInput=${(e) => setSince(e.currentTarget.value)} />`}<//>
      <${Field} label="Until (optional)">${(id) => html`<input id=${id} type="datetime-local" value=${until}
        onInput=${(e) => setUntil(e.currentTarget.value)} />`}<//>
      <button type="submit" disabled=${action.busy || !since}>${action.busy ? 'Recovering…' : 'Recover'}</button>
    </form>
    <${ErrorNote} error=${action.error} what="Cannot recover" />
    ${action.done && html`<p class="notice" role="status">${action.done.recovered === 1 ? '1 event' : `${num(action.done.recovered)} events`} queued again.</p>`}
  <//>`;
}

export function SubscriptionPage({ project, subscription, query }) {
  // The deliveries are drawn once the subscription is in, but need only the URL's names: their
  // first page goes out with the subscription's request, not after it.
  const deliveries = deliveriesPage(project, subscription, query);
  useEarly(deliveries.key, deliveries.load);
  const proj = useLoad(async () => api.get(await projectsPath(project)), [project]);
  const sub = useLoad(async () => api.get(await subscriptionsPath(project, subscription)), [project, subscription]);
  const [mode, setMode] = useState(null); // 'edit' | 'rotate' | 'delete'
  const [graceHours, setGraceHours] = useState('24');
  const [secret, setSecret] = useState(null);
  const [version, setVersion] = useState(0);
  const s = sub.data;
  const toggle = useAction(async () => {
    await api.patch(await subscriptionsPath(project, subscription), { active: !s.active });
    sub.reload();
  });
  const rotate = useAction(async () => {
    const hours = Number(graceHours);
    const doc = Number.isFinite(hours) && graceHours !== '' ? { gracePeriodSeconds: Math.round(hours * 3600) } : {};
    const answer = await api.post(`${await subscriptionsPath(project, subscription)}/secret/rotate`, doc);
    setSecret(answer.key);
    setMode(null);
  });
  const remove = useAction(async () => {
    await api.delete(await subscriptionsPath(project, subscription));
    navigate(['delivery', 'projects', project]);
  });
  const save = async (doc) => {
    await api.patch(await subscriptionsPath(project, subscription), doc);
    setMode(null);
    sub.reload();
  };
  const projectName = proj.data?.name || 'Project';
  const title = s ? s.name : 'Subscription';
  const headers = Object.entries(s?.headers || {});
  return html`<${Page} title=${title} subtitle=${s ? s.url : null}
    crumbs=${[['Delivery'], ['Projects', href(['delivery', 'projects'])], [projectName, projectLink(project)], [title]]}
    actions=${s && html`
      <button type="button" class="secondary" onClick=${() => setMode(mode === 'edit' ? null : 'edit')}>Edit</button>
      <button type="button" class="secondary" disabled=${toggle.busy} onClick=${() => toggle.run()}>${s.active ? 'Disable' : 'Enable'}</button>
      <button type="button" class="secondary" onClick=${() => setMode('rotate')}>Rotate secret</button>
      <button type="button" class="secondary" onClick=${() => setMode('delete')}>Delete subscription</button>`}>
    <${ErrorNote} error=${sub.error} what="Cannot read the subscription" />
    <${ErrorNote} error=${toggle.error} what=${s?.active ? 'Cannot disable' : 'Cannot enable'} />
    ${!s && !sub.error && html`<${Loading} what="the subscription" />`}
    ${s && !s.active && s.disabledReason && html`<div class="error" role="status">
      <strong>Wharf disabled this subscription:</strong> ${s.disabledReason}. Its deliveries stop until you enable it; then use Recover to send again what failed.
    </div>`}
    <${SecretOnce} secret=${secret} what=${`New signing secret of ${title}`} onClose=${() => setSecret(null)} />
    ${s && mode === 'rotate' && html`<${Confirm} title="Rotate the signing secret?" confirmLabel="Rotate now"
      busy=${rotate.busy} error=${rotate.error} onConfirm=${() => rotate.run()} onCancel=${() => setMode(null)}>
      <p>Wharf makes a new secret and shows it once. Until the grace period ends, deliveries carry signatures by both the old and the new secret, so receivers can switch over.</p>
      <${NumberField} label="Old secret keeps signing for (hours)" value=${graceHours} onInput=${setGraceHours} min="0" max="168"
        hint="0 to 168 hours (a week); 24 by default." />
    <//>`}
    ${s && mode === 'delete' && html`<${Confirm} title=${`Delete subscription ${s.name}?`} confirmLabel="Delete subscription" danger
      busy=${remove.busy} error=${remove.error} onConfirm=${() => remove.run()} onCancel=${() => setMode(null)}>
      <p>Its deliveries and their attempts are deleted with it; nothing more is sent to ${s.url}. This cannot be undone.</p>
    <//>`}
    ${s && mode === 'edit' && html`<${Section} title="Edit subscription" id="dl-edit-subscription">
      <${SubscriptionForm} initial=${s} submitLabel="Save subscription" onSubmit=${save} onCancel=${() => setMode(null)} />
    <//>`}
    ${s && html`<${Section} title="Details" id="dl-subscription-details">
      <dl class="props">
        <dt>Status</dt><dd><${StateNote} subscription=${s} /></dd>
        <dt>URL</dt><dd><code>${s.url}</code></dd>
        <dt>Event types</dt><dd class="dl-events">${(s.events || []).map((e) => html`<code>${e}</code>`)}</dd>
        <dt>Headers</dt><dd>${headers.length === 0
          ? html`<span class="muted">none</span>`
          : html`<ul class="dl-kv">${headers.map(([k, v]) => html`<li><code>${k}: ${v}</code></li>`)}</ul>`}</dd>
        <dt>Id</dt><dd><code>${s._id}</code></dd>
        <dt>Created</dt><dd><${Time} at=${s.createdAt} /></dd>
        <dt>Updated</dt><dd><${Time} at=${s.updatedAt} /></dd>
      </dl>
    <//>`}
    ${s && html`<${Recover} project=${project} subscription=${subscription} onDone=${() => setVersion(version + 1)} />`}
    ${s && html`<${Deliveries} project=${project} subscription=${subscription} query=${query} version=${version} onLoaded=${sub.reload} />`}
  <//>`;
}
