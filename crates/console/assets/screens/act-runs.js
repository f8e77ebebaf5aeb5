// Runs of actions and automations: the list (live while a run is in progress, filtered as
// `GET /v1/actions/runs` filters, paged by offset) and one run with what it sent, what came
// back, its logs, the attempts of its request and its approval.

import {
  html, useState, useEffect, Page, Section, Table, Empty, ErrorNote, Loading, Time, Json, Select,
  useLoad, useAction, useInterval, href, setParams,
} from '../ui.js';
import { api, query, seg } from '../api.js';
import {
  LIVE_MS, PAGE_SIZE, StatusBadge, BlueprintLink, EntityLink, duration, OffsetPager, Props,
} from './act-common.js';

export const runHref = (id) => href(['act', 'runs', id]);
export const actionHref = (id) => href(['act', 'actions', id]);

const who = (run) => (run.impersonatedBy ? `${run.impersonatedBy} (by ${run.createdBy})` : run.createdBy || '—');

// A table of runs; `hideAction` on an action's own page.
export function RunsTable({ runs, hideAction, empty }) {
  const columns = [
    { label: 'Run', render: (r) => html`<a href=${runHref(r.id)}><code>${r.id}</code></a>` },
    !hideAction && {
      label: 'Action',
      render: (r) => (r.action ? html`<a href=${actionHref(r.action.identifier)}>${r.action.title || r.action.identifier}</a>${r.action.deleted ? html` <span class="muted">(deleted)</span>` : ''}` : '—'),
    },
    {
      label: 'Status',
      render: (r) => html`<${StatusBadge} value=${r.status} />${r.statusLabel && html` <span class="muted small-text">${r.statusLabel}</span>`}`,
    },
    { label: 'Entity', render: (r) => (r.entity ? html`<${EntityLink} blueprint=${r.entity.blueprint || (r.blueprint && r.blueprint.identifier)} id=${r.entity.identifier} />` : html`<span class="muted">—</span>`) },
    { label: 'Source', render: (r) => r.source },
    { label: 'Who', render: (r) => who(r) },
    { label: 'Started', render: (r) => html`<${Time} at=${r.createdAt} />` },
    { label: 'Took', className: 'num', render: (r) => (r.endedAt ? duration(r.createdAt, r.endedAt) : html`<span class="muted">${r.status === 'IN_PROGRESS' ? 'running' : '—'}</span>`) },
  ].filter(Boolean);
  return html`<${Table} columns=${columns} rows=${runs} rowKey=${(r) => r.id} caption="Runs" empty=${empty} />`;
}

export const anyLive = (runs) => (runs || []).some((r) => r.status === 'IN_PROGRESS');

export function LiveNote({ live }) {
  return live ? html`<span class="act-live" role="status">Live: refreshing every 2 s while a run is in progress</span>` : null;
}

// ----------------------------------------------------------------------------- runs list

export function RunsList({ query: q }) {
  const offset = Number(q.offset) || 0;
  const filter = {
    action: q.action || '', active: q.active || '', source: q.source || '', entity: q.entity || '',
    blueprint: q.blueprint || '', user_email: q.user_email || '',
  };
  const runs = useLoad(
    () => api.get(`/v1/actions/runs${query({ ...filter, limit: PAGE_SIZE + 1, offset: offset || undefined })}`),
    [JSON.stringify(filter), offset],
  );
  const actions = useLoad(() => api.get('/v1/actions'), []);
  const blueprints = useLoad(() => api.get('/v1/blueprints'), []);
  const [text, setText] = useState({ entity: filter.entity, user_email: filter.user_email });
  useEffect(() => setText({ entity: filter.entity, user_email: filter.user_email }), [filter.entity, filter.user_email]);
  const rows = runs.data ? runs.data.runs || [] : null;
  const live = anyLive(rows);
  useInterval(() => runs.reload(), live ? LIVE_MS : 0);
  const pick = (key) => (v) => setParams({ [key]: v, offset: '' });
  const filtered = Object.values(filter).some(Boolean);
  const actionOptions = [['', 'All actions'], ...((actions.data && actions.data.actions) || []).map((a) => [a.identifier, a.title ? `${a.title} (${a.identifier})` : a.identifier])];
  if (filter.action && !actionOptions.some((o) => o[0] === filter.action)) actionOptions.push([filter.action, filter.action]);
  const blueprintOptions = [['', 'All blueprints'], ...((blueprints.data && blueprints.data.blueprints) || []).map((b) => [b.identifier, b.title || b.identifier])];
  if (filter.blueprint && !blueprintOptions.some((o) => o[0] === filter.blueprint)) blueprintOptions.push([filter.blueprint, filter.blueprint]);
  return html`<${Page} title="Runs" subtitle="Runs of self-service actions and automations, newest first."
    actions=${html`<a href="#/act/actions">Actions</a>`}>
    <${Section} title="Filters" id="runs-filters">
      <form class="filters act-filters" onSubmit=${(e) => { e.preventDefault(); setParams({ ...text, offset: '' }); }}>
        <${Select} label="Action" value=${filter.action} onChange=${pick('action')} options=${actionOptions} />
        <${Select} label="Status" value=${filter.active} onChange=${pick('active')}
          options=${[['', 'Any status'], ['true', 'In progress (not ended)'], ['false', 'Ended']]} />
        <${Select} label="Source" value=${filter.source} onChange=${pick('source')}
          options=${[['', 'Any source'], ['UI', 'UI'], ['API', 'API'], ['AUTOMATION', 'AUTOMATION']]} />
        <${Select} label="Blueprint" value=${filter.blueprint} onChange=${pick('blueprint')} options=${blueprintOptions} />
        <div class="field"><label for="runs-entity">Entity</label>
          <input id="runs-entity" type="text" value=${text.entity} placeholder="identifier" autocomplete="off"
            onInput=${(e) => setText({ ...text, entity: e.currentTarget.value })} /></div>
        <div class="field"><label for="runs-user">User</label>
          <input id="runs-user" type="text" value=${text.user_email} placeholder="email or client id" autocomplete="off"
            onInput=${(e) => setText({ ...text, user_email: e.currentTarget.value })} /></div>
        <button type="submit">Apply filters</button>
        ${filtered && html`<button type="button" class="secondary" onClick=${() => setParams({ action: '', active: '', source: '', entity: '', blueprint: '', user_email: '', offset: '' })}>Clear filters</button>`}
      </form>
    <//>
    <${Section} title="Runs" id="runs-list" actions=${html`<${LiveNote} live=${live} />`}>
      <${ErrorNote} error=${runs.error} what="Cannot list runs" />
      ${!rows && !runs.error && html`<${Loading} what="runs" />`}
      ${rows && html`<${RunsTable} runs=${rows.slice(0, PAGE_SIZE)} empty=${filtered || offset
        ? html`<${Empty} title="No runs match these filters.">Change or clear the filters.<//>`
        : html`<${Empty} title="No runs yet.">Run a self-service action from its page under <a href="#/act/actions">Actions</a>; automations add runs when their event happens.<//>`} />
        <${OffsetPager} rows=${rows} offset=${offset} noun="runs" />`}
    <//>
  <//>`;
}

// ------------------------------------------------------------------------------- one run

async function allLogs(id) {
  const lines = [];
  for (let offset = 0; offset < 2000; offset += 50) {
    const page = (await api.get(`/v1/actions/runs/${seg(id)}/logs${query({ limit: 50, offset: offset || undefined })}`)).runLogs || [];
    lines.push(...page);
    if (page.length < 50) break;
  }
  return lines;
}

function Links({ links }) {
  const list = Array.isArray(links) ? links : links ? [links] : [];
  if (!list.length) return null;
  return html`<ul class="act-links">${list.map((l) => html`<li>${/^https?:\/\//i.test(l) ? html`<a href=${l} rel="noopener noreferrer" target="_blank">${l}</a>` : l}</li>`)}</ul>`;
}

function Approval({ run, onDone }) {
  const [reason, setReason] = useState('');
  const decide = useAction(async (status) => {
    const answer = await api.patch(`/v1/actions/runs/${seg(run.id)}/approval`, reason.trim() ? { status, description: reason.trim() } : { status });
    onDone();
    return answer;
  });
  return html`<${Section} title="Approval" id="run-approval">
    <p>This run waits for approval: its request is sent once it is approved; declined, it ends <strong>DECLINED</strong>.</p>
    <div class="field"><label for="approval-reason">Reason (optional)</label>
      <input id="approval-reason" type="text" value=${reason} onInput=${(e) => setReason(e.currentTarget.value)} /></div>
    <${ErrorNote} error=${decide.error} what="The decision was refused" />
    <div class="page-actions">
      <button type="button" disabled=${decide.busy} onClick=${() => decide.run('APPROVE')}>Approve</button>
      <button type="button" class="danger" disabled=${decide.busy} onClick=${() => decide.run('DECLINE')}>Decline</button>
    </div>
  <//>`;
}

// What a backend does through the API (a log line, the end of the run), done by hand.
function Report({ run, onDone }) {
  const [message, setMessage] = useState('');
  const [end, setEnd] = useState('');
  const [label, setLabel] = useState('');
  const send = useAction(async () => {
    const body = { message };
    if (end) body.terminationStatus = end;
    if (label.trim()) body.statusLabel = label.trim();
    const answer = await api.post(`/v1/actions/runs/${seg(run.id)}/logs`, body);
    setMessage('');
    onDone();
    return answer;
  });
  return html`<details class="card act-report">
    <summary>Report on this run as its backend would</summary>
    <p class="hint">An asynchronous run stays IN_PROGRESS until its backend reports (<code>POST /v1/actions/runs/${run.id}/logs</code>, <code>PATCH /v1/actions/runs/${run.id}</code>). You can do it here.</p>
    <form class="act-report-form" onSubmit=${(e) => { e.preventDefault(); send.run(); }}>
      <div class="field"><label for="report-message">Log message</label>
        <input id="report-message" type="text" value=${message} required onInput=${(e) => setMessage(e.currentTarget.value)} /></div>
      <${Select} label="End the run" value=${end} onChange=${setEnd}
        options=${[['', 'No: keep it in progress'], ['SUCCESS', 'SUCCESS'], ['FAILURE', 'FAILURE']]} />
      <div class="field"><label for="report-label">Status label (optional)</label>
        <input id="report-label" type="text" value=${label} onInput=${(e) => setLabel(e.currentTarget.value)} /></div>
      <${ErrorNote} error=${send.error} what="The report was refused" />
      <div class="page-actions"><button type="submit" disabled=${send.busy || !message.trim()}>Add log line</button></div>
    </form>
  </details>`;
}

function Payload({ payload, status, attempts }) {
  if (!payload) return html`<${Empty} title="Nothing sent yet.">${'A run waiting for approval sends its request once approved; an UPSERT_ENTITY run writes to the catalog instead.'}<//>`;
  if (payload.type && payload.type !== 'WEBHOOK') return html`<${Json} value=${payload} label="What the run did" />`;
  const headers = Object.entries(payload.headers || {});
  return html`${status === 'WAITING_FOR_APPROVAL' && !attempts.length && html`<p class="notice">Not sent yet: the request is sent as rendered here once the run is approved.</p>`}
    <p><code class="act-request-line">${payload.method || 'POST'} ${payload.url}</code></p>
    <p class="hint">${payload.synchronized ? 'Synchronized: the answer ends the run.' : 'Asynchronous: the backend reports the result.'}${payload.agent ? ' Sent by an execution agent.' : ''} Secrets show as ****; Wharf adds X-Port-Timestamp and X-Port-Signature when it sends.</p>
    ${headers.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Headers sent</caption>
      <thead><tr><th scope="col">Header</th><th scope="col">Value</th></tr></thead>
      <tbody>${headers.map(([k, v]) => html`<tr><td data-label="Header"><code>${k}</code></td><td data-label="Value"><code>${String(v)}</code></td></tr>`)}</tbody>
    </table></div>`}
    <h3 class="act-h3">Body</h3>
    ${payload.body === undefined || payload.body === null ? html`<p class="muted">No body.</p>` : html`<${Json} value=${payload.body} label="Body sent" />`}`;
}

function Attempts({ attempts }) {
  return html`<${Table} rows=${attempts} rowKey=${(a) => a.id} caption="Request attempts"
    empty=${html`<${Empty} title="No attempts yet.">The request is sent at once when the run starts (after approval, where one is required); an agent's runs are sent by the agent.<//>`}
    columns=${[
      { label: 'Attempted', render: (a) => html`<${Time} at=${a.attemptedAt} />` },
      { label: 'Outcome', render: (a) => html`<span class=${`badge ${a.outcome === 'success' ? 'good' : 'bad'}`}>${a.outcome}</span>` },
      { label: 'HTTP status', className: 'num', render: (a) => a.statusCode ?? '—' },
      { label: 'Duration', className: 'num', render: (a) => `${a.durationMs} ms` },
      { label: 'Answer', render: (a) => (a.error ? html`<span class="act-bad">${a.error}</span>` : a.responseBody ? html`<code class="act-clip">${a.responseBody}</code>` : html`<span class="muted">—</span>`) },
    ]} />`;
}

function Logs({ logs, live }) {
  if (!logs.length) return html`<${Empty} title="No log lines.">${live ? 'The backend adds them with POST /v1/actions/runs/{id}/logs; they show here as they come.' : 'This run has no log.'}<//>`;
  return html`<ol class="act-log" aria-label="Run log">${logs.map((l) => html`<li key=${l.id}>
    <${Time} at=${l.createdAt} /> <span class="muted">${l.createdBy}</span> <span class="act-log-msg">${l.message}</span>
  </li>`)}</ol>`;
}

export function RunPage({ run: id }) {
  const load = useLoad(async () => {
    const [run, attempts, logs] = await Promise.all([
      api.get(`/v1/actions/runs/${seg(id)}`),
      api.get(`/v1/actions/runs/${seg(id)}/attempts`),
      allLogs(id),
    ]);
    return { run: run.run, attempts: attempts.attempts || [], logs };
  }, [id]);
  const run = load.data && load.data.run;
  const live = run && run.status === 'IN_PROGRESS';
  useInterval(() => load.reload(), live ? LIVE_MS : 0);
  const crumbs = [['Runs', '#/act/runs'], [id]];
  if (!run) {
    return html`<${Page} title=${`Run ${id}`} crumbs=${crumbs}>
      <${ErrorNote} error=${load.error} what="Cannot read this run" />
      ${load.error && load.error.status === 404 && html`<${Empty} title="No such run.">See the <a href="#/act/runs">list of runs</a>.<//>`}
      ${!load.error && html`<${Loading} what="the run" />`}
    <//>`;
  }
  const bp = run.blueprint && run.blueprint.identifier;
  const approval = run.approval ? `${run.approval.state || '—'}${run.approval.userId ? ` by ${run.approval.userId}` : ''}${run.approval.description ? `: ${run.approval.description}` : ''}` : null;
  return html`<${Page} title=${`Run ${run.id}`} crumbs=${crumbs}
    subtitle=${html`${run.action ? html`Run of <a href=${actionHref(run.action.identifier)}>${run.action.title || run.action.identifier}</a>` : ''}${run.entity ? html` on ${run.entity.title || run.entity.identifier}` : ''}`}
    actions=${html`<${StatusBadge} value=${run.status} /><${LiveNote} live=${live} />`}>
    <${ErrorNote} error=${load.error} what="Cannot refresh this run" />
    ${run.status === 'WAITING_FOR_APPROVAL' && html`<${Approval} run=${run} onDone=${load.reload} />`}
    <div class="grid2">
      <${Section} title="Status" id="run-status">
        <${Props} items=${[
          ['Status', html`<${StatusBadge} value=${run.status} />`],
          ['Status label', run.statusLabel],
          ['Summary', run.summary],
          ['Links', run.link && run.link.length ? html`<${Links} links=${run.link} />` : null],
          ['External run id', run.externalRunId && html`<code>${run.externalRunId}</code>`],
          ['Action', run.action && html`<a href=${actionHref(run.action.identifier)}>${run.action.title || run.action.identifier}</a>${run.action.deleted ? ' (deleted)' : ''}`],
          ['Blueprint', bp && html`<${BlueprintLink} id=${bp} />`],
          ['Entity', run.entity && html`<${EntityLink} blueprint=${run.entity.blueprint || bp} id=${run.entity.identifier} title=${run.entity.title} />`],
          ['Source', run.source],
          ['Who', who(run)],
          ['Updated by', run.updatedBy],
          ['Started', html`<${Time} at=${run.createdAt} />`],
          ['Updated', html`<${Time} at=${run.updatedAt} />`],
          ['Ended', run.endedAt ? html`<${Time} at=${run.endedAt} />` : html`<span class="muted">not yet</span>`],
          ['Took', run.endedAt ? duration(run.createdAt, run.endedAt) : `${duration(run.createdAt)} so far`],
          ['Approval', run.requiredApproval ? approval || 'required' : null],
          ['Chain depth', run.chainDepth ? String(run.chainDepth) : null],
          ['Agent', run.agentClaim ? `claimed by ${run.agentClaim.installationId || '—'}` : null],
        ]} />
      <//>
      <${Section} title="Inputs" id="run-inputs">
        ${run.properties && Object.keys(run.properties).length
          ? html`<${Json} value=${run.properties} label="Inputs, with defaults filled in" />
            ${run.rawProperties && JSON.stringify(run.rawProperties) !== JSON.stringify(run.properties) && html`<details><summary>As given (before defaults)</summary><${Json} value=${run.rawProperties} label="Inputs as given" /></details>`}`
          : html`<p class="muted">No inputs.</p>`}
      <//>
    </div>
    ${live && html`<${Report} run=${run} onDone=${load.reload} />`}
    <${Section} title="Request" id="run-payload"><${Payload} payload=${run.payload} status=${run.status} attempts=${load.data.attempts} /><//>
    <${Section} title="Response" id="run-response">
      ${run.response === null || run.response === undefined
        ? run.endedAt
          ? html`<${Empty} title="No response.">The run ended without one; the request attempts show what happened.<//>`
          : html`<${Empty} title="No response yet.">${run.payload && !run.payload.synchronized ? 'An asynchronous run\'s backend reports it (PATCH /v1/actions/runs/{id}/response).' : 'It shows here once the request is answered.'}<//>`
        : html`<${Json} value=${run.response} label="Response" />`}
    <//>
    <${Section} title="Request attempts" id="run-attempts"><${Attempts} attempts=${load.data.attempts} /><//>
    <${Section} title="Logs" id="run-logs" actions=${html`<${LiveNote} live=${live} />`}><${Logs} logs=${load.data.logs} live=${live} /><//>
  <//>`;
}
