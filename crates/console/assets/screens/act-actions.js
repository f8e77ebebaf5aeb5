// Actions and automations (one resource, `/v1/actions`): the list with its filters and the
// JSON editor that creates one; an action's page with its JSON, its run form and its runs.

import {
  html, useState, Page, Section, Table, Empty, ErrorNote, Loading, Time, Json, Select,
  useLoad, useInterval, href, navigate, setParams, pretty, ConfirmDelete,
} from '../ui.js';
import { api, query, seg } from '../api.js';
import {
  LIVE_MS, StatusBadge, BlueprintLink, JsonDocForm, ClientPager, pageOf, Props, editable,
} from './act-common.js';
import { InputsForm, orderedInputs, initialValues, valueOf } from './act-inputs.js';
import { RunsTable, runHref, anyLive, LiveNote } from './act-runs.js';

const actionHref = (id) => href(['act', 'actions', id]);

// Port's example self-service action (what "Edit JSON" shows), small: two inputs, one a choice.
export const ACTION_EXAMPLE = {
  identifier: 'restart_service',
  title: 'Restart service',
  description: 'Restarts a service in an environment',
  trigger: {
    type: 'self-service',
    operation: 'CREATE',
    userInputs: {
      properties: {
        environment: { type: 'string', title: 'Environment', enum: ['staging', 'production'], default: 'staging' },
        reason: { type: 'string', title: 'Reason', description: 'Why it is restarted' },
      },
      required: ['reason'],
      order: ['environment', 'reason'],
    },
  },
  invocationMethod: {
    type: 'WEBHOOK',
    url: 'https://example.com/hooks/restart',
    method: 'POST',
    synchronized: true,
    headers: { RUN_ID: '{{ .run.id }}' },
    body: { '{{ spreadValue() }}': '{{ .inputs }}', port_context: { runId: '{{ .run.id }}' } },
  },
  requiredApproval: false,
};

// An automation: a request when an entity of a blueprint is created.
export const AUTOMATION_EXAMPLE = {
  identifier: 'on_service_created',
  title: 'Tell the on-call about a new service',
  trigger: {
    type: 'automation',
    event: { type: 'ENTITY_CREATED', blueprintIdentifier: 'service' },
    condition: { type: 'JQ', expressions: ['.diff.after.properties.tier <= 2'], combinator: 'and' },
  },
  invocationMethod: {
    type: 'WEBHOOK',
    url: 'https://example.com/hooks/new-service',
    synchronized: true,
    body: { service: '{{ .event.context.entityIdentifier }}', runId: '{{ .run.id }}' },
  },
  publish: true,
};

const isAutomation = (a) => a.trigger && a.trigger.type === 'automation';

export function triggerWhat(a) {
  const t = a.trigger || {};
  if (t.type === 'automation') return (t.event && t.event.type) || '—';
  return t.operation || '—';
}

export function blueprintOf(a) {
  const t = a.trigger || {};
  return t.type === 'automation' ? t.event && t.event.blueprintIdentifier : t.blueprintIdentifier;
}

function invocationWords(a) {
  const m = a.invocationMethod || {};
  const flags = [];
  if (m.type === 'WEBHOOK') {
    flags.push(m.synchronized === true || m.synchronized === 'true' ? 'synchronized' : 'async');
    if (m.agent === true || m.agent === 'true') flags.push('agent');
  }
  return { type: m.type || '—', flags: flags.join(', ') };
}

// ----------------------------------------------------------------------------- the list

function CreateAction() {
  return html`<${Section} title="Create an action or automation" id="action-create">
    <${JsonDocForm} label="Action JSON" rows=${18} initial=${pretty(ACTION_EXAMPLE)} submitLabel="Create" autoFocus
      hint="Port's shape (what Port's \u201cEdit JSON\u201d shows): identifier, title, trigger (self-service with operation and userInputs, or automation with event and condition), invocationMethod (WEBHOOK or UPSERT_ENTITY). Wharf checks every template when it saves and names the path of a mistake."
      save=${(doc) => api.post('/v1/actions', doc)}
      onSaved=${(answer) => navigate(['act', 'actions', answer.action.identifier])}
      extra=${({ setText }) => html`
        <button type="button" class="secondary" onClick=${() => setText(pretty(ACTION_EXAMPLE))}>Self-service example</button>
        <button type="button" class="secondary" onClick=${() => setText(pretty(AUTOMATION_EXAMPLE))}>Automation example</button>
        <button type="button" class="secondary" onClick=${() => setParams({ new: '' })}>Cancel</button>`} />
  <//>`;
}

export function ActionsList({ query: q }) {
  const trigger = q.trigger_type || '';
  const blueprint = q.blueprint || '';
  const search = (q.q || '').toLowerCase();
  const list = useLoad(() => api.get(`/v1/actions${query({ trigger_type: trigger, blueprint_identifier: blueprint })}`), [trigger, blueprint]);
  const blueprints = useLoad(() => api.get('/v1/blueprints'), []);
  const [text, setText] = useState(q.q || '');
  const all = list.data ? list.data.actions || [] : null;
  const matching = all && all.filter((a) => !search || a.identifier.toLowerCase().includes(search) || (a.title || '').toLowerCase().includes(search));
  const paged = matching && pageOf(matching, q.page);
  const filtered = trigger || blueprint || search;
  const bpOptions = [['', 'All blueprints'], ...((blueprints.data && blueprints.data.blueprints) || []).map((b) => [b.identifier, b.title || b.identifier])];
  if (blueprint && !bpOptions.some((o) => o[0] === blueprint)) bpOptions.push([blueprint, blueprint]);
  const columns = [
    { label: 'Identifier', render: (a) => html`<a href=${actionHref(a.identifier)}><code>${a.identifier}</code></a>` },
    { label: 'Title', render: (a) => a.title || html`<span class="muted">—</span>` },
    {
      label: 'Trigger',
      render: (a) => html`<span class=${`badge ${isAutomation(a) ? 'act-auto' : 'act-self'}`}>${isAutomation(a) ? 'automation' : 'self-service'}</span>${isAutomation(a) && a.publish === false ? html` <span class="muted">(not published)</span>` : ''}`,
    },
    { label: 'Operation or event', render: (a) => html`<code>${triggerWhat(a)}</code>` },
    { label: 'Blueprint', render: (a) => html`<${BlueprintLink} id=${blueprintOf(a)} />` },
    { label: 'Invocation', render: (a) => { const w = invocationWords(a); return html`${w.type}${w.flags && html` <span class="muted">(${w.flags})</span>`}`; } },
    { label: 'Runs', render: (a) => html`<a href=${href(['act', 'runs'], { action: a.identifier })} aria-label=${`Runs of ${a.identifier}`}>Runs</a>` },
    { label: 'Updated', render: (a) => html`<${Time} at=${a.updatedAt} />` },
  ];
  return html`<${Page} title="Actions" subtitle="Self-service actions and automations: what they listen to and the request they send."
    actions=${!q.new && html`<button type="button" onClick=${() => setParams({ new: '1' })}>Create action</button>`}>
    ${q.new && html`<${CreateAction} />`}
    <${Section} title="Actions and automations" id="actions-list">
      <form class="filters act-filters" onSubmit=${(e) => { e.preventDefault(); setParams({ q: text.trim(), page: '' }); }}>
        <${Select} label="Trigger" value=${trigger} onChange=${(v) => setParams({ trigger_type: v, page: '' })}
          options=${[['', 'All triggers'], ['self-service', 'Self-service'], ['automation', 'Automation']]} />
        <${Select} label="Blueprint" value=${blueprint} onChange=${(v) => setParams({ blueprint: v, page: '' })} options=${bpOptions} />
        <div class="field"><label for="actions-search">Search</label>
          <input id="actions-search" type="search" value=${text} placeholder="identifier or title" onInput=${(e) => setText(e.currentTarget.value)} /></div>
        <button type="submit" class="secondary">Search</button>
        ${filtered && html`<button type="button" class="secondary" onClick=${() => { setText(''); setParams({ trigger_type: '', blueprint: '', q: '', page: '' }); }}>Clear filters</button>`}
      </form>
      <${ErrorNote} error=${list.error} what="Cannot list actions" />
      ${!all && !list.error && html`<${Loading} what="actions" />`}
      ${paged && html`<${Table} columns=${columns} rows=${paged.rows} rowKey=${(a) => a.identifier} caption="Actions and automations"
        empty=${filtered
          ? html`<${Empty} title="No actions match these filters.">Change or clear the filters.<//>`
          : html`<${Empty} title="No actions or automations yet.">Press <strong>Create action</strong> and paste an action's JSON from Port (or start from the example), then run it from its page.<//>`} />
        ${matching.length > 0 && html`<${ClientPager} paged=${paged} noun=${`of ${matching.length} actions`} />`}`}
    <//>
  <//>`;
}

// --------------------------------------------------------------------------- one action

function About({ action }) {
  const t = action.trigger || {};
  const m = action.invocationMethod || {};
  const approval = action.requiredApproval;
  return html`<${Section} title="About" id="action-about">
    <${Props} items=${[
      ['Identifier', html`<code>${action.identifier}</code>`],
      ['Title', action.title],
      ['Description', action.description],
      ['Trigger', isAutomation(action) ? 'automation' : 'self-service'],
      [isAutomation(action) ? 'Event' : 'Operation', html`<code>${triggerWhat(action)}</code>`],
      ['Blueprint', blueprintOf(action) && html`<${BlueprintLink} id=${blueprintOf(action)} />`],
      ['Condition', t.condition && html`<code class="act-clip">${JSON.stringify(t.condition)}</code>`],
      ['Published', isAutomation(action) ? (action.publish === false ? 'no: it does not run' : 'yes') : null],
      ['Invocation', m.type],
      ['Request', m.type === 'WEBHOOK' && html`<code>${m.method || 'POST'} ${m.url}</code>`],
      ['Upserts into', m.type === 'UPSERT_ENTITY' && html`<${BlueprintLink} id=${m.blueprintIdentifier} />`],
      ['Waits for the answer', m.type === 'WEBHOOK' ? (m.synchronized === true || m.synchronized === 'true' ? 'yes (synchronized)' : 'no (the backend reports)') : null],
      ['Sent by an agent', m.agent === true || m.agent === 'true' ? 'yes' : null],
      ['Approval', approval ? (typeof approval === 'object' ? `required (${approval.type})` : 'required') : 'not required'],
      ['Created', html`<${Time} at=${action.createdAt} /> by ${action.createdBy}`],
      ['Updated', html`<${Time} at=${action.updatedAt} /> by ${action.updatedBy}`],
    ]} />
  <//>`;
}

// The run request as JSON, sent as typed: Port's body (`properties`, `entity`).
function RunAsJson({ action, needsEntity, onStarted }) {
  const inputs = orderedInputs(action.trigger.userInputs);
  const start = {};
  const initial = initialValues(inputs);
  for (const { name, def } of inputs) {
    try {
      const v = valueOf(def, initial[name]);
      if (v !== undefined) start[name] = v;
    } catch {
      // left out
    }
  }
  const example = needsEntity ? { entity: '', properties: start } : { properties: start };
  const [result, setResult] = useState(null);
  return html`<details class="act-more"><summary>Run with a JSON request</summary>
    <${JsonDocForm} label="Run request JSON" rows=${6} initial=${pretty(example)} submitLabel="Send run request"
      hint="Sent unchanged to POST /v1/actions/{identifier}/runs: the inputs under properties, and entity for DAY-2 and DELETE actions."
      save=${async (doc) => { const a = await api.post(`/v1/actions/${seg(action.identifier)}/runs`, doc); onStarted(); return a; }}
      onSaved=${setResult}>
      ${result && html`<${Started} run=${result.run} />`}
    <//>
  </details>`;
}

function Started({ run }) {
  return html`<div class="notice act-started" role="status">
    Run <a href=${runHref(run.id)}><code>${run.id}</code></a> started: <${StatusBadge} value=${run.status} />
    <a href=${runHref(run.id)}>Open the run</a>
  </div>`;
}

function RunForm({ action, onStarted }) {
  const t = action.trigger;
  const needsEntity = ['DAY-2', 'DELETE'].includes(t.operation);
  const entity = needsEntity ? { blueprint: t.blueprintIdentifier, required: !!t.blueprintIdentifier } : null;
  const label = t.executeActionButtonText || 'Run action';
  return html`<${Section} title="Run action" id="action-run">
    <${InputsForm} prefix="run" userInputs=${t.userInputs} entity=${entity} submitLabel=${label}
      intro=${needsEntity ? html`<p class="hint">A ${t.operation} action acts on an entity${t.blueprintIdentifier ? ` of ${t.blueprintIdentifier}` : ''}.</p>` : null}
      send=${async ({ body, runAs }) => {
        const answer = await api.post(`/v1/actions/${seg(action.identifier)}/runs${query({ run_as: runAs })}`, body);
        onStarted();
        return answer;
      }}
      done=${(answer) => html`<${Started} run=${answer.run} />`} />
    <${RunAsJson} action=${action} needsEntity=${needsEntity} onStarted=${onStarted} />
  <//>`;
}

function RecentRuns({ id, runs }) {
  const rows = runs.data ? runs.data.runs || [] : null;
  const live = anyLive(rows);
  useInterval(() => runs.reload(), live ? LIVE_MS : 0);
  return html`<${Section} title="Recent runs" id="action-runs"
    actions=${html`<${LiveNote} live=${live} /><a href=${href(['act', 'runs'], { action: id })}>All runs of this action</a>`}>
    <${ErrorNote} error=${runs.error} what="Cannot list runs" />
    ${!rows && !runs.error && html`<${Loading} what="runs" />`}
    ${rows && html`<${RunsTable} runs=${rows} hideAction
      empty=${html`<${Empty} title="No runs of this action yet.">Run it with the form above, or through the API.<//>`} />`}
  <//>`;
}

export function ActionPage({ action: id }) {
  const load = useLoad(() => api.get(`/v1/actions/${seg(id)}`), [id]);
  const runs = useLoad(() => api.get(`/v1/actions/runs${query({ action: id, limit: 10 })}`), [id]);
  const [saved, setSaved] = useState(null);
  const crumbs = [['Actions', '#/act/actions'], [id]];
  const action = load.data && load.data.action;
  if (!action) {
    return html`<${Page} title=${id} crumbs=${crumbs}>
      <${ErrorNote} error=${load.error} what="Cannot read this action" />
      ${load.error && load.error.status === 404 && html`<${Empty} title="No such action.">It may have been deleted: see the <a href="#/act/actions">list of actions</a>.<//>`}
      ${!load.error && html`<${Loading} what="the action" />`}
    <//>`;
  }
  const automation = isAutomation(action);
  return html`<${Page} title=${action.title || action.identifier} crumbs=${crumbs}
    subtitle=${`${action.identifier} · ${automation ? 'automation' : 'self-service'} · ${triggerWhat(action)}${blueprintOf(action) ? ` · ${blueprintOf(action)}` : ''}`}>
    <div class="grid2">
      <${About} action=${action} />
      ${automation
        ? html`<${Section} title="How it runs" id="action-how">
            <p>An automation runs when its event happens: <code>${triggerWhat(action)}</code>${blueprintOf(action) ? html` on <${BlueprintLink} id=${blueprintOf(action)} />` : ''}${action.trigger.condition ? ', when its condition holds' : ''}.
            ${action.publish === false ? ' It is not published, so it does not run.' : ''}</p>
            <p class="hint">Its runs are listed below with source AUTOMATION.</p>
            ${action.invocationMethod && action.invocationMethod.body && html`<h3 class="act-h3">Body template</h3><${Json} value=${action.invocationMethod.body} label="Body template" />`}
          <//>`
        : html`<${RunForm} action=${action} onStarted=${runs.reload} />`}
    </div>
    <${RecentRuns} id=${id} runs=${runs} />
    <${Section} title="Edit JSON" id="action-json">
      <${JsonDocForm} key=${action.updatedAt} label="Action JSON" rows=${18} initial=${pretty(editable(action))} submitLabel="Save changes"
        hint="The whole action, as PUT /v1/actions/{identifier} takes it; the identifier stays."
        save=${(doc) => api.put(`/v1/actions/${seg(id)}`, doc)}
        onSaved=${() => { setSaved(new Date().toISOString()); load.reload(); }}
        extra=${() => html`<${ConfirmDelete} what="action" note="Its runs stay." onDelete=${async () => { await api.delete(`/v1/actions/${seg(id)}`); navigate(['act', 'actions']); }} />`}>
        ${saved && html`<p class="notice" role="status">Saved at <${Time} at=${saved} />.</p>`}
      <//>
    <//>
  <//>`;
}
