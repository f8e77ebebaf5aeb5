// Workflows (`/v1/workflows`): the list and the JSON editor that creates one; a workflow drawn
// as its graph with its JSON, its start form and its runs; a run with each node run's status
// (on the graph too), output, request and logs.

import {
  html, useState, Page, Section, Table, Empty, ErrorNote, Loading, Time, Json, Select,
  useLoad, useInterval, useEarly, takeEarly, href, navigate, setParams, pretty, ConfirmDelete,
} from '../ui.js';
import { api, query, seg } from '../api.js';
import {
  LIVE_MS, PAGE_SIZE, StatusBadge, resultOf, BlueprintLink, JsonDocForm, ClientPager, OffsetPager, pageOf, Props,
  editable, duration,
} from './act-common.js';
import { InputsForm } from './act-inputs.js';
import { WorkflowGraph } from './act-graph.js';
import { LiveNote } from './act-runs.js';

const workflowHref = (id) => href(['act', 'workflows', id]);
const workflowRunHref = (wf, run) => href(['act', 'workflows', wf, 'runs', run]);

// A small workflow in Port's shape: a form, a request, a check of its answer, a notice.
export const WORKFLOW_EXAMPLE = {
  identifier: 'deploy_flow',
  title: 'Deploy',
  description: 'Asks CI to deploy a version, then tells the team when CI accepted it',
  nodes: [
    {
      identifier: 'trigger',
      title: 'Deploy',
      config: {
        type: 'SELF_SERVE_TRIGGER',
        userInputs: {
          properties: {
            version: { type: 'string', title: 'Version' },
            environment: { type: 'string', title: 'Environment', enum: ['staging', 'production'], default: 'staging' },
          },
          required: ['version'],
        },
      },
    },
    {
      identifier: 'dispatch',
      title: 'Ask CI to deploy',
      config: {
        type: 'WEBHOOK',
        url: 'https://ci.example.com/deploy',
        body: { version: '{{ .outputs.trigger.version }}', environment: '{{ .outputs.trigger.environment }}', run: '{{ .workflowRun.identifier }}' },
      },
    },
    {
      identifier: 'accepted',
      title: 'Did CI accept it?',
      config: { type: 'CONDITION', outlets: [{ identifier: 'ok', title: 'Accepted', expression: '.outputs.dispatch.response.status == 200' }] },
    },
    {
      identifier: 'notify',
      title: 'Tell the team',
      config: { type: 'WEBHOOK', url: 'https://chat.example.com/hooks/deploys', body: { text: 'Deploying {{ .outputs.trigger.version }}' } },
    },
  ],
  connections: [
    { sourceIdentifier: 'trigger', targetIdentifier: 'dispatch' },
    { sourceIdentifier: 'dispatch', targetIdentifier: 'accepted' },
    { sourceIdentifier: 'accepted', targetIdentifier: 'notify', sourceOutletIdentifier: 'ok' },
  ],
};

const triggersOf = (wf) => (wf.nodes || []).filter((n) => n.config && /_TRIGGER$/.test(n.config.type));

// A table of workflow runs; `showWorkflow` where they are of several workflows.
function WorkflowRunsTable({ runs, showWorkflow, empty }) {
  const columns = [
    { label: 'Run', render: (r) => html`<a href=${workflowRunHref(r.workflowIdentifier, r.identifier)}><code>${r.identifier}</code></a>` },
    showWorkflow && { label: 'Workflow', render: (r) => html`<a href=${workflowHref(r.workflowIdentifier)}>${r.workflowIdentifier}</a>` },
    { label: 'Status', render: (r) => html`<${StatusBadge} value=${resultOf(r)} />` },
    { label: 'Trigger', render: (r) => (r.trigger ? html`<code>${r.trigger.identifier}</code> <span class="muted">${r.trigger.configType || ''}</span>` : '—') },
    { label: 'By', render: (r) => (r.trigger && r.trigger.by ? r.trigger.by.email || r.trigger.by.clientId || '—' : r.createdBy || '—') },
    { label: 'Started', render: (r) => html`<${Time} at=${r.createdAt} />` },
    { label: 'Took', className: 'num', render: (r) => (r.completedAt ? duration(r.createdAt, r.completedAt) : html`<span class="muted">running</span>`) },
  ].filter(Boolean);
  return html`<${Table} columns=${columns} rows=${runs} rowKey=${(r) => r.identifier} caption="Workflow runs" empty=${empty} />`;
}

const liveRuns = (rows) => (rows || []).some((r) => r.status === 'IN_PROGRESS');

// The page of workflow runs the URL asks for (status filter, offset), of `workflow` or of all.
const runsPath = (workflow, q) => `/v1/workflows/runs${query({
  workflow_identifier: workflow, active: q.active || '', limit: PAGE_SIZE + 1, offset: Number(q.runs_offset) || undefined,
})}`;

// Workflow runs read from `/v1/workflows/runs`, paged by offset in the URL (`param`).
function RunsSection({ workflow, query: q, id, title }) {
  const offset = Number(q.runs_offset) || 0;
  const active = q.active || '';
  const runs = useLoad(() => {
    const path = runsPath(workflow, q);
    return takeEarly(path, () => api.get(path));
  }, [workflow, active, offset]);
  const rows = runs.data ? runs.data.workflowRuns || [] : null;
  const live = liveRuns(rows);
  useInterval(() => runs.reload(), live ? LIVE_MS : 0);
  return html`<${Section} title=${title} id=${id} actions=${html`<${LiveNote} live=${live} />`}>
    <div class="filters">
      <${Select} label="Status" value=${active} onChange=${(v) => setParams({ active: v, runs_offset: '' })}
        options=${[['', 'Any status'], ['true', 'In progress'], ['false', 'Completed']]} />
    </div>
    <${ErrorNote} error=${runs.error} what="Cannot list workflow runs" />
    ${!rows && !runs.error && html`<${Loading} what="runs" />`}
    ${rows && html`<${WorkflowRunsTable} runs=${rows.slice(0, PAGE_SIZE)} showWorkflow=${!workflow}
      empty=${active || offset
        ? html`<${Empty} title="No runs match this filter.">Change the status filter.<//>`
        : html`<${Empty} title="No workflow runs yet.">${workflow ? 'Start one with the form above, or let its trigger fire.' : 'Open a workflow and start it with its form, or let its trigger fire.'}<//>`} />
      <${OffsetPager} rows=${rows} offset=${offset} noun="runs" param="runs_offset" />`}
  <//>`;
}

// ---------------------------------------------------------------------------- the list

export function WorkflowsList({ query: q }) {
  const list = useLoad(() => api.get('/v1/workflows'), []);
  const all = list.data ? list.data.workflows || [] : null;
  const paged = all && pageOf(all, q.page);
  const columns = [
    { label: 'Identifier', render: (w) => html`<a href=${workflowHref(w.identifier)}><code>${w.identifier}</code></a>` },
    { label: 'Title', render: (w) => w.title || html`<span class="muted">—</span>` },
    { label: 'Triggers', render: (w) => triggersOf(w).map((n) => html`<code class="act-tag">${n.config.type}</code> `) },
    { label: 'Nodes', className: 'num', render: (w) => String((w.nodes || []).length) },
    { label: 'Category', render: (w) => w.category || html`<span class="muted">—</span>` },
    { label: 'Updated', render: (w) => html`<${Time} at=${w.updatedAt} />` },
  ];
  return html`<${Page} title="Workflows" subtitle="Graphs of nodes: a trigger, then requests, upserts and conditions, each seeing the outputs before it."
    actions=${!q.new && html`<button type="button" onClick=${() => setParams({ new: '1' })}>Create workflow</button>`}>
    ${q.new && html`<${Section} title="Create a workflow" id="workflow-create">
      <${JsonDocForm} label="Workflow JSON" rows=${20} initial=${pretty(WORKFLOW_EXAMPLE)} submitLabel="Create" autoFocus
        hint="Port's shape: identifier, title, nodes (SELF_SERVE_TRIGGER, EVENT_TRIGGER, SCHEDULE_TRIGGER; WEBHOOK, UPSERT_ENTITY, CONDITION) and connections. Wharf checks the graph and every template, and names the node or path of a mistake."
        save=${(doc) => api.post('/v1/workflows', doc)}
        onSaved=${(answer) => navigate(['act', 'workflows', answer.workflow.identifier])}
        extra=${() => html`<button type="button" class="secondary" onClick=${() => setParams({ new: '' })}>Cancel</button>`} />
    <//>`}
    <${Section} title="Workflows" id="workflows-list">
      <${ErrorNote} error=${list.error} what="Cannot list workflows" />
      ${!all && !list.error && html`<${Loading} what="workflows" />`}
      ${paged && html`<${Table} columns=${columns} rows=${paged.rows} rowKey=${(w) => w.identifier} caption="Workflows"
        empty=${html`<${Empty} title="No workflows yet.">Press <strong>Create workflow</strong> and paste a workflow's JSON (or start from the example).<//>`} />
        ${all.length > 0 && html`<${ClientPager} paged=${paged} noun=${`of ${all.length} workflows`} />`}`}
    <//>
    <${RunsSection} query=${q} id="workflow-runs-all" title="Recent workflow runs" />
  <//>`;
}

// --------------------------------------------------------------------------- one workflow

function StartForm({ workflow }) {
  const trigger = triggersOf(workflow).find((n) => n.config.type === 'SELF_SERVE_TRIGGER');
  const others = triggersOf(workflow).filter((n) => n.config.type !== 'SELF_SERVE_TRIGGER');
  const when = others.map((n) => {
    const c = n.config;
    if (c.type === 'SCHEDULE_TRIGGER') return html`<li><code>${n.identifier}</code>: on the schedule <code>${c.cron}</code> (UTC)</li>`;
    return html`<li><code>${n.identifier}</code>: on <code>${(c.event && c.event.type) || 'an event'}</code>${c.event && c.event.blueprintIdentifier ? html` of <${BlueprintLink} id=${c.event.blueprintIdentifier} />` : ''}</li>`;
  });
  return html`<${Section} title="Run workflow" id="workflow-start">
    ${trigger
      ? html`<${InputsForm} prefix="wf" userInputs=${trigger.config.userInputs} submitLabel=${trigger.config.executeActionButtonText || 'Run workflow'}
          intro=${html`<p class="hint">The inputs of its trigger <code>${trigger.identifier}</code>; the run goes on node by node in the background.</p>`}
          send=${({ body, runAs }) => api.post(`/v1/workflows/${seg(workflow.identifier)}/runs${query({ run_as: runAs })}`, { inputs: body.properties })}
          done=${(answer) => html`<div class="notice act-started" role="status">
            Run <a href=${workflowRunHref(workflow.identifier, answer.workflowRun.identifier)}><code>${answer.workflowRun.identifier}</code></a> started:
            <${StatusBadge} value=${resultOf(answer.workflowRun)} />
            <a href=${workflowRunHref(workflow.identifier, answer.workflowRun.identifier)}>Open the run</a></div>`} />`
      : html`<p class="muted">This workflow has no SELF_SERVE_TRIGGER, so it cannot be started by hand.</p>`}
    ${when.length > 0 && html`<p>It also starts by itself:</p><ul>${when}</ul>`}
  <//>`;
}

export function WorkflowPage({ workflow: id, query: q }) {
  // The runs are drawn once the workflow is in, but need only the URL's identifier: their
  // first page goes out with the workflow's request, not after it.
  const firstRuns = runsPath(id, q);
  useEarly(firstRuns, () => api.get(firstRuns));
  const load = useLoad(() => api.get(`/v1/workflows/${seg(id)}`), [id]);
  const [saved, setSaved] = useState(null);
  const crumbs = [['Workflows', '#/act/workflows'], [id]];
  const wf = load.data && load.data.workflow;
  if (!wf) {
    return html`<${Page} title=${id} crumbs=${crumbs}>
      <${ErrorNote} error=${load.error} what="Cannot read this workflow" />
      ${load.error && load.error.status === 404 && html`<${Empty} title="No such workflow.">It may have been deleted: see the <a href="#/act/workflows">list of workflows</a>. Its runs stay in the list there.<//>`}
      ${!load.error && html`<${Loading} what="the workflow" />`}
    <//>`;
  }
  return html`<${Page} title=${wf.title || wf.identifier} crumbs=${crumbs} subtitle=${wf.description || wf.identifier}>
    <${Section} title="Graph" id="workflow-graph"><${WorkflowGraph} workflow=${wf} /><//>
    <div class="grid2">
      <${Section} title="About" id="workflow-about">
        <${Props} items=${[
          ['Identifier', html`<code>${wf.identifier}</code>`],
          ['Title', wf.title],
          ['Category', wf.category],
          ['Version', html`<code>${wf.versionIdentifier}</code>`],
          ['Nodes', String((wf.nodes || []).length)],
          ['Connections', String((wf.connections || []).length)],
          ['Created', html`<${Time} at=${wf.createdAt} /> by ${wf.createdBy}`],
          ['Updated', html`<${Time} at=${wf.updatedAt} /> by ${wf.updatedBy}`],
        ]} />
      <//>
      <${StartForm} workflow=${wf} />
    </div>
    <${RunsSection} workflow=${id} query=${q} id="workflow-runs" title="Runs" />
    <${Section} title="Edit JSON" id="workflow-json">
      <${JsonDocForm} key=${wf.versionIdentifier} label="Workflow JSON" rows=${20} initial=${pretty(editable(wf))} submitLabel="Save as a new version"
        hint="PUT /v1/workflows/{identifier} saves a new version; runs in progress keep the version they started with."
        save=${(doc) => api.put(`/v1/workflows/${seg(id)}`, doc)}
        onSaved=${(answer) => { setSaved(answer.workflow.versionIdentifier); load.reload(); }}
        extra=${() => html`<${ConfirmDelete} what="workflow" note="Its runs stay; those in progress finish with their version." onDelete=${async () => { await api.delete(`/v1/workflows/${seg(id)}`); navigate(['act', 'workflows']); }} />`}>
        ${saved && html`<p class="notice" role="status">Saved as version <code>${saved}</code>.</p>`}
      <//>
    <//>
  <//>`;
}

// ------------------------------------------------------------------------- one run

function NodeLogs({ logs }) {
  if (!logs || !logs.length) return html`<p class="muted">No log lines.</p>`;
  return html`<ol class="act-log" aria-label="Node run log">${logs.map((l, i) => html`<li key=${i}>
    <${Time} at=${l.createdAt} /> <span class=${`badge ${/ERROR/.test(l.logLevel || l.level) ? 'bad' : /WARN/.test(l.logLevel || l.level) ? 'wait' : 'neutral'}`}>${l.logLevel || l.level || 'INFO'}</span>
    <span class="act-log-msg">${l.log || l.message}</span>
  </li>`)}</ol>`;
}

function NodeRun({ nr }) {
  return html`<article class="act-node-run" aria-labelledby=${`nr-${nr.nodeIdentifier}`}>
    <h3 id=${`nr-${nr.nodeIdentifier}`} tabindex="-1" class="act-h3">
      ${nr.nodeTitle || nr.nodeIdentifier} <code class="muted">${nr.nodeIdentifier}</code> <${StatusBadge} value=${resultOf(nr)} />
    </h3>
    <${Props} items=${[
      ['Type', html`<code>${nr.nodeConfigType}</code>`],
      ['Node run', html`<code>${nr.identifier}</code>`],
      ['Started', html`<${Time} at=${nr.createdAt} />`],
      ['Completed', nr.completedAt ? html`<${Time} at=${nr.completedAt} />` : html`<span class="muted">not yet</span>`],
      ['Took', nr.completedAt ? duration(nr.createdAt, nr.completedAt) : `${duration(nr.createdAt)} so far`],
      ['Status label', nr.statusLabel],
    ]} />
    ${nr.request && html`<details><summary>Request sent</summary>
      <p><code class="act-request-line">${nr.request.method || 'POST'} ${nr.request.url || ''}</code></p>
      <${Json} value=${nr.request} label=${`Request of ${nr.nodeIdentifier}`} /></details>`}
    <h4 class="act-h4">Output</h4>
    ${nr.output === null || nr.output === undefined ? html`<p class="muted">No output${nr.status === 'IN_PROGRESS' ? ' yet' : ''}.</p>` : html`<${Json} value=${nr.output} label=${`Output of ${nr.nodeIdentifier}`} />`}
    <h4 class="act-h4">Logs</h4>
    <${NodeLogs} logs=${nr.nodeRunLogs} />
  </article>`;
}

export function WorkflowRunPage({ workflow: wfId, run: id }) {
  const load = useLoad(() => api.get(`/v1/workflows/runs/${seg(id)}`), [id]);
  const wfLoad = useLoad(() => api.get(`/v1/workflows/${seg(wfId)}`), [wfId]);
  const run = load.data && load.data.workflowRun;
  const live = run && run.status === 'IN_PROGRESS';
  useInterval(() => load.reload(), live ? LIVE_MS : 0);
  const crumbs = [['Workflows', '#/act/workflows'], [wfId, workflowHref(wfId)], [id]];
  if (!run) {
    return html`<${Page} title="Workflow run" subtitle=${id} crumbs=${crumbs}>
      <${ErrorNote} error=${load.error} what="Cannot read this workflow run" />
      ${load.error && load.error.status === 404 && html`<${Empty} title="No such workflow run.">See the runs of <a href=${workflowHref(wfId)}>${wfId}</a>.<//>`}
      ${!load.error && html`<${Loading} what="the run" />`}
    <//>`;
  }
  const wf = wfLoad.data && wfLoad.data.workflow;
  const nodeRuns = run.nodeRuns || [];
  const sameVersion = wf && wf.versionIdentifier === run.workflowVersionIdentifier;
  const pick = (nodeId) => {
    const el = document.getElementById(`nr-${nodeId}`);
    if (el) {
      el.scrollIntoView({ block: 'start' });
      el.focus();
    }
  };
  const by = run.trigger && run.trigger.by ? run.trigger.by.email || run.trigger.by.clientId : run.createdBy;
  return html`<${Page} title="Workflow run" crumbs=${crumbs}
    subtitle=${html`<code>${run.identifier}</code>, a run of <a href=${workflowHref(run.workflowIdentifier)}>${(wf && wf.title) || run.workflowIdentifier}</a>`}
    actions=${html`<${StatusBadge} value=${resultOf(run)} /><${LiveNote} live=${live} />`}>
    <${ErrorNote} error=${load.error} what="Cannot refresh this run" />
    <${Section} title="Graph" id="run-graph">
      ${wf && html`<${WorkflowGraph} workflow=${wf} nodeRuns=${nodeRuns} onPick=${pick} />`}
      ${wf && !sameVersion && html`<p class="hint">This run used version <code>${run.workflowVersionIdentifier}</code>; the graph is of the current version <code>${wf.versionIdentifier}</code>.</p>`}
      ${wfLoad.error && html`<${ErrorNote} error=${wfLoad.error} what="Cannot read the workflow to draw it" />`}
      ${!wf && !wfLoad.error && html`<${Loading} what="the graph" />`}
    <//>
    <div class="grid2">
      <${Section} title="Status" id="run-about">
        <${Props} items=${[
          ['Status', html`<${StatusBadge} value=${run.status} />`],
          ['Result', run.result && html`<${StatusBadge} value=${run.result} />`],
          ['Workflow', html`<a href=${workflowHref(run.workflowIdentifier)}>${run.workflowIdentifier}</a>`],
          ['Version', html`<code>${run.workflowVersionIdentifier}</code>`],
          ['Trigger', run.trigger && html`<code>${run.trigger.identifier}</code> ${run.trigger.configType || ''}`],
          ['By', by],
          ['Started', html`<${Time} at=${run.createdAt} />`],
          ['Completed', run.completedAt ? html`<${Time} at=${run.completedAt} />` : html`<span class="muted">not yet</span>`],
          ['Took', run.completedAt ? duration(run.createdAt, run.completedAt) : `${duration(run.createdAt)} so far`],
        ]} />
      <//>
      <${Section} title="Outputs" id="run-outputs">
        <p class="hint">What each node gave, as the nodes after it read it (<code>${'.outputs.<node>'}</code>).</p>
        <${Json} value=${(run.variables && run.variables.outputs) || {}} label="Outputs" />
      <//>
    </div>
    <${Section} title="Node runs" id="run-nodes" actions=${html`<${LiveNote} live=${live} />`}>
      ${nodeRuns.length
        ? nodeRuns.map((nr) => html`<${NodeRun} key=${nr.identifier} nr=${nr} />`)
        : html`<${Empty} title="No node runs yet." />`}
    <//>
  <//>`;
}
