// A webhook's event log (filters and cursor paging in the URL, replay of a range) and one
// event: the request as received, what the mapping wrote, its errors, replay.

import {
  html, useState, useEffect, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, Json, useLoad, useAction, useInterval,
  setParams, num, localInputToIso,
} from '../ui.js';
import { api, query as apiQuery, seg } from '../api.js';
import {
  STATUSES, STATUS_MEANING, EventStatus, isoToLocalInput, webhooksHref, webhookHref, eventsHref, eventHref, entityHref,
  blueprintHref,
} from './ingestion-common.js';

const PAGE_SIZE = 50;
// Statuses a replay can select: PENDING events are waiting already, REJECTED ones kept no request.
const REPLAYABLE = ['SUCCESS', 'PARTIAL', 'FAILURE', 'FILTERED'];

const loadWebhook = (webhook) => api.get(`/v1/webhooks/${seg(webhook)}`).then((a) => a.integration);

function errorsSummary(event) {
  if (event.status === 'REJECTED') return html`<span class="ing-reason">${event.reason || 'signature did not verify'}</span>`;
  if (event.errors) return html`<span class="ing-bad-text">${num(event.errors)} ${event.errors === 1 ? 'error' : 'errors'}</span>`;
  return html`<span class="muted">none</span>`;
}

// Status and time range, applied to the URL (so the page can be shared and reloaded).
function Filters({ query }) {
  const [status, setStatus] = useState(query.status || '');
  const [from, setFrom] = useState(isoToLocalInput(query.from));
  const [to, setTo] = useState(isoToLocalInput(query.to));
  // Back and forward change the URL under the form: follow it.
  useEffect(() => {
    setStatus(query.status || '');
    setFrom(isoToLocalInput(query.from));
    setTo(isoToLocalInput(query.to));
  }, [query.status, query.from, query.to]);
  const apply = (e) => {
    e.preventDefault();
    setParams({ status, from: localInputToIso(from), to: localInputToIso(to), cursor: '' });
  };
  const clear = () => {
    setStatus('');
    setFrom('');
    setTo('');
    setParams({ status: '', from: '', to: '', cursor: '' });
  };
  const filtered = query.status || query.from || query.to;
  return html`<form class="filters" aria-label="Filter events" onSubmit=${apply}>
    <div class="field"><label for="events-status">Status</label>
      <select id="events-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
        <option value="">Any status</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select></div>
    <div class="field"><label for="events-from">Received from</label>
      <input id="events-from" type="datetime-local" step="1" value=${from} onInput=${(e) => setFrom(e.currentTarget.value)} /></div>
    <div class="field"><label for="events-to">Received to</label>
      <input id="events-to" type="datetime-local" step="1" value=${to} onInput=${(e) => setTo(e.currentTarget.value)} /></div>
    <button type="submit">Apply filters</button>
    ${filtered && html`<button type="button" class="secondary" onClick=${clear}>Clear filters</button>`}
  </form>`;
}

// POST …/replay {from, to, status}: map stored events again with the current mappings.
function ReplayRange({ webhook, query, onReplayed }) {
  const [from, setFrom] = useState(isoToLocalInput(query.from));
  const [to, setTo] = useState(isoToLocalInput(query.to));
  const [status, setStatus] = useState(REPLAYABLE.includes(query.status) ? query.status : '');
  const replay = useAction((doc) => api.post(`/v1/webhooks/${seg(webhook)}/replay`, doc));
  const submit = async (e) => {
    e.preventDefault();
    const doc = {};
    if (from) doc.from = localInputToIso(from);
    if (to) doc.to = localInputToIso(to);
    if (status) doc.status = status;
    const answer = await replay.run(doc);
    if (answer) onReplayed();
  };
  const n = replay.done && replay.done.replayed;
  return html`<${Section} title="Replay range" id="replay-range">
    <p class="hint" id="replay-hint">Maps the stored events received in the range again, with the webhook’s current (saved)
      mappings. Leave both times empty to replay every stored event. PENDING events are waiting already and REJECTED ones kept
      no request: neither is replayed.</p>
    <form class="filters" onSubmit=${submit} aria-describedby="replay-hint">
      <div class="field"><label for="replay-from">Replay from</label>
        <input id="replay-from" type="datetime-local" step="1" value=${from} onInput=${(e) => setFrom(e.currentTarget.value)} /></div>
      <div class="field"><label for="replay-to">Replay to</label>
        <input id="replay-to" type="datetime-local" step="1" value=${to} onInput=${(e) => setTo(e.currentTarget.value)} /></div>
      <div class="field"><label for="replay-status">Only status</label>
        <select id="replay-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
          <option value="">Any status</option>
          ${REPLAYABLE.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></div>
      <button type="submit" disabled=${replay.busy}>${replay.busy ? 'Replaying…' : 'Replay events'}</button>
    </form>
    <${ErrorNote} error=${replay.error} what="Replay failed" />
    ${replay.done && html`<p class="notice" role="status">${n === 0
      ? 'Replayed 0 events: no stored event in that range could be replayed.'
      : `Replayed ${num(n)} ${n === 1 ? 'event' : 'events'}: ${n === 1 ? 'it is' : 'they are'} PENDING again and will be mapped with the current mappings.`}</p>`}
  <//>`;
}

export function Events({ webhook, query }) {
  const hook = useLoad(() => loadWebhook(webhook), [webhook]);
  const params = { status: query.status, from: query.from, to: query.to, cursor: query.cursor, limit: PAGE_SIZE };
  const page = useLoad(
    () => api.get(`/v1/webhooks/${seg(webhook)}/events${apiQuery(params)}`),
    [webhook, query.status, query.from, query.to, query.cursor],
  );
  const events = (page.data && page.data.events) || [];
  // While events wait to be mapped, look again every few seconds.
  useInterval(() => page.reload(), events.some((e) => e.status === 'PENDING') ? 3000 : 0);
  const title = hook.data ? hook.data.title : webhook;
  const filtered = query.status || query.from || query.to;
  const columns = [
    { label: 'Event', render: (e) => html`<a href=${eventHref(webhook, e.id)}><code>${e.id}</code></a>` },
    { label: 'Status', render: (e) => html`<${EventStatus} status=${e.status} />` },
    { label: 'Received', render: (e) => html`<${Time} at=${e.receivedAt} />` },
    { label: 'Processed', render: (e) => html`<${Time} at=${e.processedAt} />` },
    { label: 'Request id', render: (e) => (e.requestId ? html`<code class="ing-wrap">${e.requestId}</code>` : html`<span class="muted">—</span>`) },
    { label: 'Entities', className: 'num', render: (e) => num(e.entities ?? 0) },
    { label: 'Errors', render: errorsSummary },
  ];
  return html`<${Page} title=${`Events of ${title}`}
    crumbs=${[['Ingestion', null], ['Webhooks', webhooksHref()], [title, webhookHref(webhook)], ['Events', null]]}
    subtitle="Every request the webhook received, newest first, and what mapping it did."
    actions=${html`<a href=${webhookHref(webhook)}>Mappings and URL</a>
      <button type="button" class="secondary" onClick=${() => page.reload()}>Refresh</button>`}>
    <${ErrorNote} error=${hook.error} what="Cannot load the webhook" />
    <${Section} title="Event log" id="event-log">
      <${Filters} query=${query} />
      <${ErrorNote} error=${page.error} what="Cannot list events" />
      ${page.loading && !page.data && html`<${Loading} what="events" />`}
      ${page.data && html`<${Table} caption="Events" columns=${columns} rows=${events} rowKey=${(e) => e.id}
        empty=${filtered || query.cursor
          ? html`<${Empty} title="No events match these filters.">Widen the time range or choose another status, or <a href=${eventsHref(webhook)}>show every event</a>.<//>`
          : html`<${Empty} title="No events yet.">Send a request to the webhook’s ingest URL (shown on <a href=${webhookHref(webhook)}>the webhook’s page</a>, with a Copy button); each one appears here with what its
              mappings wrote.<//>`} />
        ${(events.length > 0 || query.cursor) && html`<${Pager} count=${events.length} noun="events"
          hasNext=${!!page.data.next} onNext=${() => setParams({ cursor: page.data.next })}
          onFirst=${query.cursor ? () => setParams({ cursor: '' }) : null} />`}`}
    <//>
    <${ReplayRange} webhook=${webhook} query=${query} onReplayed=${() => page.reload()} />
  <//>`;
}

// ------------------------------------------------------------------------------- one event

function Pairs({ value, caption, empty, noun }) {
  const entries = Object.entries(value || {});
  if (!entries.length) return html`<p class="muted">${empty}</p>`;
  return html`<div class="table-wrap"><table>
    <caption class="sr-only">${caption}</caption>
    <thead><tr><th scope="col">${noun}</th><th scope="col">Value</th></tr></thead>
    <tbody>${entries.map(([k, v]) => html`<tr key=${k}><td data-label=${noun}><code>${k}</code></td>
      <td data-label="Value" class="ing-wrap">${typeof v === 'string' ? v : JSON.stringify(v)}</td></tr>`)}</tbody>
  </table></div>`;
}

function ResultEntities({ entities }) {
  const columns = [
    { label: 'Blueprint', render: (e) => html`<a href=${blueprintHref(e.blueprint)}>${e.blueprint}</a>` },
    {
      label: 'Entity',
      render: (e) => (['deleted', 'absent'].includes(e.operation)
        ? html`<code>${e.identifier}</code>`
        : html`<a href=${entityHref(e.blueprint, e.identifier)}><code>${e.identifier}</code></a>`),
    },
    { label: 'Operation', render: (e) => html`<span class=${`badge ${e.operation === 'created' ? 'good' : 'neutral'}`}>${e.operation}</span>` },
    { label: 'Mapping', render: (e) => `mapping ${e.mapping + 1}` },
    { label: 'Item', render: (e) => (e.item === undefined || e.item === null ? html`<span class="muted">—</span>` : `item ${e.item + 1}`) },
  ];
  return html`<${Table} caption="Entities written" columns=${columns} rows=${entities}
    empty=${html`<p class="muted">No entity was written.</p>`} />`;
}

// Errors as the API gives them: mapping, item, the expression's path, the message.
export function ResultErrors({ errors }) {
  if (!errors || !errors.length) return html`<p class="muted">No errors.</p>`;
  return html`<ul class="ing-errors">${errors.map((err, i) => html`<li key=${i}>
    <span class="ing-where">Mapping ${(err.mapping ?? 0) + 1}${err.item !== undefined && err.item !== null ? ` · item ${err.item + 1}` : ''}${err.expression
      ? html` · <code>${err.expression}</code>` : ''}</span>
    <span class="ing-message">${err.message}</span>
  </li>`)}</ul>`;
}

export function EventDetail({ webhook, event, query }) {
  const hook = useLoad(() => loadWebhook(webhook), [webhook]);
  const load = useLoad(() => api.get(`/v1/webhooks/${seg(webhook)}/events/${seg(event)}`).then((a) => a.event), [webhook, event]);
  const replay = useAction(() => api.post(`/v1/webhooks/${seg(webhook)}/events/${seg(event)}/replay`));
  const ev = load.data;
  useInterval(() => load.reload(), ev && ev.status === 'PENDING' ? 2000 : 0);
  const title = hook.data ? hook.data.title : webhook;
  const result = (ev && ev.result) || {};
  const request = ev && ev.request;
  const doReplay = async () => {
    const answer = await replay.run();
    if (answer) load.reload();
  };
  return html`<${Page} title=${`Event ${event}`}
    crumbs=${[['Ingestion', null], ['Webhooks', webhooksHref()], [title, webhookHref(webhook)], ['Events', eventsHref(webhook)], [event, null]]}
    actions=${html`
      ${ev && html`<button type="button" onClick=${doReplay} disabled=${replay.busy}>${replay.busy ? 'Replaying…' : 'Replay'}</button>`}
      ${ev && ev.status !== 'REJECTED' && html`<a href=${webhookHref(webhook, { event })}>Test mappings with this event</a>`}
      <a href=${eventsHref(webhook)}>Event log</a>`}>
    <${ErrorNote} error=${replay.error} what="Replay refused" />
    ${replay.done && html`<p class="notice" role="status">${replay.done.replayed
      ? 'Replayed: the event is PENDING again and will be mapped with the current mappings; this page follows it.'
      : 'Nothing replayed: the event is still waiting to be mapped.'}</p>`}
    <${ErrorNote} error=${load.error} what="Cannot load the event" />
    ${!ev && load.loading && html`<${Loading} what="the event" />`}
    ${ev && html`
      <${Section} title="Summary" id="event-summary">
        <dl class="props">
          <dt>Status</dt><dd><${EventStatus} status=${ev.status} /> <span class="muted">${STATUS_MEANING[ev.status] || ''}</span></dd>
          ${ev.status === 'REJECTED' && html`<dt>Rejected because</dt><dd class="ing-bad-text">${result.reason || 'the signature did not verify'}</dd>`}
          <dt>Received</dt><dd><${Time} at=${ev.receivedAt} /></dd>
          <dt>Processed</dt><dd><${Time} at=${ev.processedAt} /></dd>
          <dt>Request id</dt><dd>${ev.requestId ? html`<code>${ev.requestId}</code>` : html`<span class="muted">none (the webhook has no request identifier, or the request had none)</span>`}</dd>
          <dt>Webhook</dt><dd><a href=${webhookHref(webhook)}>${title}</a></dd>
          ${ev.status !== 'REJECTED' && ev.status !== 'PENDING' && html`<dt>Entities written</dt><dd>${num((result.entities || []).length)}</dd>
            <dt>Errors</dt><dd>${num((result.errors || []).length)}</dd>`}
          ${result.truncatedItems > 0 && html`<dt>Items not mapped</dt><dd>${num(result.truncatedItems)} (past the 500 items <code>itemsToParse</code> maps)</dd>`}
        </dl>
      <//>
      ${ev.status === 'PENDING'
        ? html`<${Section} title="Result" id="event-result"><p class="muted" role="status">Waiting to be mapped…</p><//>`
        : ev.status !== 'REJECTED' && html`<${Section} title="Result" id="event-result">
          <h3 class="ing-h3">Entities written</h3>
          <${ResultEntities} entities=${result.entities || []} />
          <h3 class="ing-h3">Errors</h3>
          <${ResultErrors} errors=${result.errors} />
          ${result.logs && html`<h3 class="ing-h3">Logs</h3><p class="hint">What the mappings’ <code>debug</code> and <code>stderr</code> wrote.</p>
            <${Json} value=${result.logs} label="Mapping logs" />`}
        <//>`}
      <${Section} title="Request as received" id="event-request">
        ${request
          ? html`<dl class="props">
              <dt>Method</dt><dd class="muted">not recorded (Wharf takes events by POST or PUT)</dd>
            </dl>
            <h3 class="ing-h3">Headers</h3>
            <${Pairs} value=${request.headers} caption="Headers" noun="Header" empty="No headers." />
            <h3 class="ing-h3">Query parameters</h3>
            <${Pairs} value=${request.queryParams} caption="Query parameters" noun="Parameter" empty="No query parameters." />
            <h3 class="ing-h3">Body</h3>
            <${Json} value=${request.body === undefined ? null : request.body} label="Request body" />`
          : html`<p class="muted">Wharf kept no request: ${ev.status === 'REJECTED'
            ? 'its signature did not verify, so it was recorded without its headers or body and cannot be replayed or tested.'
            : 'none was stored for this event.'}</p>`}
      <//>`}
  <//>`;
}
