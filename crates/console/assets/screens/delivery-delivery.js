// Delivery → one delivery: its state, every attempt (the request Wharf sent, the answer it
// got), the other deliveries of its event, and Resend. Live while anything is pending.

import {
  html, useState, Page, Section, Table, Empty, ErrorNote, Loading, Time, Badge, Json, CopyButton,
  useLoad, useAction, useInterval, href, num,
} from '../ui.js';
import { api } from '../api.js';
import { projectsPath, subscriptionsPath, findDelivery, prettyBody, duration, OUTCOMES } from './delivery-api.js';
import { projectLink, subscriptionLink } from './delivery-projects.js';
import { deliveryColumns, deliveryLink, LastResult } from './delivery-subscription.js';

const LIVE_MS = 3000;
const EXCERPT = 4000;

function HeaderList({ headers, label }) {
  const entries = Array.isArray(headers) ? headers : Object.entries(headers || {});
  if (entries.length === 0) return html`<p class="muted dl-note">No headers.</p>`;
  return html`<ul class="dl-kv" aria-label=${label}>${entries.map(([k, v, note]) => html`<li><code>${k}: ${v}</code>${note && html` <span class="muted dl-note">${note}</span>`}</li>`)}</ul>`;
}

// A body, pretty-printed when JSON, cut at EXCERPT characters unless asked for whole.
function Body({ text, label }) {
  const [whole, setWhole] = useState(false);
  const pretty = prettyBody(text);
  if (pretty === null) return html`<p class="muted dl-note">Empty body.</p>`;
  const cut = !whole && pretty.length > EXCERPT;
  return html`<div class="dl-body">
    <${Json} value=${cut ? `${pretty.slice(0, EXCERPT)}\n…` : pretty} label=${label} />
    ${cut && html`<button type="button" class="secondary small" onClick=${() => setWhole(true)}>Show the whole body (${num(pretty.length)} characters)</button>`}
  </div>`;
}

function Attempt({ attempt, n, delivery, subscription }) {
  const ok = attempt.outcome === 'success';
  const seconds = Math.floor(new Date(attempt.attemptedAt).getTime() / 1000);
  const custom = Object.entries(subscription?.headers || {}).map(([k, v]) => [k, v, v === '[redacted]' ? '(secret)' : '']);
  const sent = [
    ...custom,
    ['content-type', 'application/json'],
    ['webhook-id', delivery?.eventId || '—', '(the event id)'],
    ['webhook-timestamp', Number.isFinite(seconds) ? String(seconds) : '—'],
    ['webhook-signature', 'v1,…', '(made at each attempt with the signing secret; not kept)'],
  ];
  const id = `dl-attempt-${n}`;
  return html`<article class="dl-attempt" aria-labelledby=${id}>
    <header class="card-head">
      <h3 id=${id}>Attempt ${n}</h3>
      <span class="dl-state"><span class=${`badge ${ok ? 'good' : 'bad'}`}>${OUTCOMES[attempt.outcome] || attempt.outcome || 'unknown'}</span>
        <${Time} at=${attempt.attemptedAt} /></span>
    </header>
    <dl class="props">
      <dt>Status code</dt><dd>${attempt.statusCode !== null && attempt.statusCode !== undefined ? html`<strong>${attempt.statusCode}</strong>` : html`<span class="muted">no answer</span>`}</dd>
      <dt>Duration</dt><dd>${duration(attempt.durationMs)}</dd>
      ${attempt.error && html`<dt>Error</dt><dd class="dl-bad">${attempt.error}</dd>`}
      <dt>Attempt id</dt><dd><code>${attempt.id}</code></dd>
    </dl>
    <div class="grid2">
      <section class="dl-exchange" aria-label=${`Request of attempt ${n}`}>
        <h4>Request</h4>
        <p><code class="dl-url">POST ${attempt.url}</code></p>
        <${HeaderList} headers=${sent} label=${`Request headers of attempt ${n}`} />
        ${delivery && html`<${Body} text=${JSON.stringify(delivery.payload)} label=${`Request body of attempt ${n}`} />`}
      </section>
      <section class="dl-exchange" aria-label=${`Response of attempt ${n}`}>
        <h4>Response</h4>
        ${attempt.statusCode === null || attempt.statusCode === undefined
          ? html`<p class="muted">No response${attempt.error ? `: ${attempt.error}` : '.'}</p>`
          : html`<p><strong>HTTP ${attempt.statusCode}</strong></p>
            <${HeaderList} headers=${attempt.responseHeaders} label=${`Response headers of attempt ${n}`} />
            <${Body} text=${attempt.responseBody} label=${`Response body of attempt ${n}`} />
            <p class="hint">Wharf keeps the first 64 KiB of each response body.</p>`}
      </section>
    </div>
  </article>`;
}

export function DeliveryPage({ project, subscription, delivery }) {
  const proj = useLoad(async () => api.get(await projectsPath(project)), [project]);
  const sub = useLoad(async () => api.get(await subscriptionsPath(project, subscription)), [project, subscription]);
  const state = useLoad(async () => {
    const base = await subscriptionsPath(project, subscription);
    const [attempts, found] = await Promise.all([
      api.get(`${base}/deliveries/${encodeURIComponent(delivery)}/attempts`),
      findDelivery(project, subscription, delivery),
    ]);
    return { attempts, ...found };
  }, [project, subscription, delivery]);
  const resend = useAction(async () => {
    const made = await api.post(`${await subscriptionsPath(project, subscription)}/deliveries/${encodeURIComponent(delivery)}/resend`);
    state.reload();
    return made;
  });
  const d = state.data?.delivery;
  const sameEvent = state.data?.sameEvent || [];
  const pending = d?.status === 'pending' || sameEvent.some((x) => x.status === 'pending');
  useInterval(() => state.reload(), pending ? LIVE_MS : 0);
  const projectName = proj.data?.name || 'Project';
  const subName = sub.data?.name || 'Subscription';
  const attempts = state.data?.attempts || [];
  return html`<div class="dl-page"><${Page} title=${`Delivery ${delivery}`} subtitle=${d ? `Event ${d.eventType} to ${sub.data?.url || 'the subscription'}` : null}
    crumbs=${[['Delivery'], ['Projects', href(['delivery', 'projects'])], [projectName, projectLink(project)], [subName, subscriptionLink(project, subscription)], [delivery]]}
    actions=${state.data && html`<button type="button" disabled=${resend.busy} onClick=${() => resend.run()}>${resend.busy ? 'Resending…' : 'Resend'}</button>`}>
    <${ErrorNote} error=${state.error} what="Cannot read the delivery" />
    <${ErrorNote} error=${resend.error} what="Cannot resend" />
    ${resend.done && html`<p class="notice" role="status">Sent again as a new delivery:${' '}
      <a href=${deliveryLink(project, subscription, resend.done.id)}>${resend.done.id}</a> (one attempt, no retries, same webhook-id).</p>`}
    ${!state.data && !state.error && html`<${Loading} what="the delivery" />`}
    ${pending && html`<p class="hint" role="status">Pending: this page refreshes every 3 seconds.</p>`}
    ${state.data && html`<${Section} title="Summary" id="dl-delivery-summary"
      actions=${html`<button type="button" class="secondary small" onClick=${state.reload}>Refresh</button>`}>
      ${d ? html`<dl class="props">
          <dt>Status</dt><dd><${Badge} value=${d.status} />${d.manual ? html` <span class="muted dl-note">a resend: one attempt, no retries</span>` : ''}</dd>
          <dt>Event type</dt><dd><code>${d.eventType}</code></dd>
          <dt>Event id</dt><dd><code>${d.eventId}</code> <${CopyButton} text=${d.eventId} label="Copy" /> <span class="muted dl-note">sent as webhook-id</span></dd>
          <dt>Attempts</dt><dd>${num(d.attempts)}</dd>
          <dt>Last result</dt><dd><${LastResult} delivery=${d} /></dd>
          ${d.status === 'pending' && html`<dt>Next attempt</dt><dd><${Time} at=${d.nextAttemptAt} /></dd>`}
          <dt>Created</dt><dd><${Time} at=${d.createdAt} /></dd>
          <dt>Updated</dt><dd><${Time} at=${d.updatedAt} /></dd>
        </dl>`
        : html`<p class="muted">The delivery was not found.</p>`}
    <//>`}
    ${state.data && html`<${Section} title="Attempts" id="dl-attempts">
      ${attempts.length > 0 && html`<p class="hint">Oldest first. Each request is a POST of the same body, the event as published, signed anew: the headers shown are the subscription's (secret values redacted) and Wharf's own.</p>`}
      ${attempts.length === 0
        ? html`<${Empty} title="No attempt yet.">${d?.status === 'pending'
            ? html`The first is due ${html`<${Time} at=${d.nextAttemptAt} />`}; this page shows it when it is made.`
            : 'Wharf made no attempt: the subscription was inactive when this delivery was due.'}<//>`
        : attempts.map((a, i) => html`<${Attempt} key=${a.id} attempt=${a} n=${i + 1} delivery=${d} subscription=${sub.data} />`)}
    <//>`}
    ${state.data && html`<${Section} title="Deliveries of this event" id="dl-same-event">
      <p class="hint">This delivery and its resends (newest first): each resend is a new delivery of the same event.</p>
      <${Table} columns=${deliveryColumns(project, subscription, delivery)} rows=${sameEvent} rowKey=${(x) => x.id} caption="Deliveries of this event"
        empty=${html`<${Empty} title="No other delivery of this event.">Resend makes one.<//>`} />
    <//>`}
  <//></div>`;
}
