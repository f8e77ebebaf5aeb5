// One ingestion webhook: its ingest URL, enable/disable, security summary, the mapping editor
// with the live test beside it, the whole webhook as JSON, and delete.

import {
  html, useState, useEffect, Page, Section, ErrorNote, Loading, Time, Badge, CopyButton, useLoad, useAction, useEarly,
  navigate, num, pretty, parseJson, ConfirmDelete,
} from '../ui.js';
import { api, seg } from '../api.js';
import { JsonForm, Highlighted } from '../editor.js';
import { webhooksHref, eventsHref, blueprintHref } from './ingestion-common.js';
import { MappingWorkbench, latestEventsPath } from './ingestion-mapping.js';

const RESPONSE_ONLY = ['webhookKey', 'url', 'createdAt', 'updatedAt', 'createdBy', 'updatedBy'];

// The webhook as a document that PUT takes back (without the keys only answers have).
function editable(webhook) {
  const doc = { ...webhook };
  RESPONSE_ONLY.forEach((k) => delete doc[k]);
  return doc;
}

function IngestUrl({ webhook, onChanged }) {
  const toggle = useAction(() => api.patch(`/v1/webhooks/${seg(webhook.identifier)}`, { enabled: !webhook.enabled }));
  const run = async () => {
    const answer = await toggle.run();
    if (answer && answer.integration) onChanged(answer.integration);
  };
  return html`<${Section} title="Ingest URL" id="ingest-url">
    <p class="ing-url"><code id="webhook-url">${webhook.url}</code> <${CopyButton} text=${webhook.url} label="Copy URL" /></p>
    <p class="hint">Tools send events here by POST (or PUT), with any body (JSON, form or text). The key in the URL is the
      webhook’s only credential unless a signature secret is set: share it like a password.</p>
    <dl class="props">
      <dt>Status</dt>
      <dd><${Badge} value=${webhook.enabled ? 'enabled' : 'disabled'} /> <span class="muted">${webhook.enabled
        ? 'events are stored and mapped'
        : 'requests are answered 202 and ignored: nothing is stored'}</span></dd>
      <dt>Identifier</dt><dd><code>${webhook.identifier}</code></dd>
      <dt>Integration type</dt><dd>${webhook.integrationType || 'custom'}</dd>
      <dt>Mappings</dt><dd>${num((webhook.mappings || []).length)}</dd>
      <dt>Created</dt><dd><${Time} at=${webhook.createdAt} /> <span class="muted">by ${webhook.createdBy || '—'}</span></dd>
      <dt>Updated</dt><dd><${Time} at=${webhook.updatedAt} /> <span class="muted">by ${webhook.updatedBy || '—'}</span></dd>
    </dl>
    <div class="page-actions">
      <button type="button" class=${webhook.enabled ? 'secondary' : ''} onClick=${run} disabled=${toggle.busy}>
        ${webhook.enabled ? 'Disable webhook' : 'Enable webhook'}</button>
      <a href=${eventsHref(webhook.identifier)}>Event log</a>
    </div>
    <${ErrorNote} error=${toggle.error} what=${webhook.enabled ? 'Cannot disable' : 'Cannot enable'} />
  <//>`;
}

// What `security` says, never a secret (the API does not return it).
function SecuritySummary({ webhook }) {
  const s = webhook.security || {};
  return html`<${Section} title="Security" id="webhook-security">
    <dl class="props">
      <dt>Signature check</dt>
      <dd>${s.signatureHeaderName
        ? html`header <code>${s.signatureHeaderName}</code>, ${s.signatureAlgorithm === 'plain'
          ? 'the secret itself (plain)' : `HMAC-${(s.signatureAlgorithm || 'sha256').toUpperCase()} of the body`}${s.signaturePrefix
          ? html`, prefixed <code>${s.signaturePrefix}</code>` : ''}. Requests whose header does not match are refused (401) and
          recorded as REJECTED; it applies when a secret is set.`
        : html`<span>off: no signature header is set, so any request to the URL is accepted.</span>`}</dd>
      <dt>Secret</dt>
      <dd class="muted">write-only: Wharf keeps it sealed and never shows it (nor whether one is set). Set or change it with <code>security.secret</code> in “Edit the whole webhook as JSON” below.</dd>
      <dt>Request identifier</dt>
      <dd>${s.requestIdentifierPath
        ? html`<code class="ing-code"><${Highlighted} text=${s.requestIdentifierPath} language="jq" /></code>
          <span class="muted"> — a request whose value was seen before is answered as a duplicate and not stored again.</span>`
        : html`<span class="muted">none: every request is a new event.</span>`}</dd>
    </dl>
  <//>`;
}

// PUT /v1/webhooks/{id}: the whole document (title, description, security, mappings, …).
function EditJson({ webhook, onReplaced }) {
  const [text, setText] = useState(pretty(editable(webhook)));
  const replace = useAction(() => api.put(`/v1/webhooks/${seg(webhook.identifier)}`, parseJson(text, 'The webhook')));
  useEffect(() => setText(pretty(editable(webhook))), [webhook.updatedAt]);
  const submit = async () => {
    const answer = await replace.run();
    if (answer && answer.integration) onReplaced(answer.integration);
  };
  return html`<section class="card" aria-labelledby="webhook-json-title">
    <details class="ing-details">
      <summary><h2 id="webhook-json-title">Edit the whole webhook as JSON</h2></summary>
      <${JsonForm} id="webhook-json-edit" label="Webhook (JSON)" value=${text} onInput=${setText} rows=${14}
          submitLabel="Replace webhook" busyLabel="Replacing…" busy=${replace.busy} error=${replace.error}
          what="The webhook was not replaced" onSubmit=${submit}
          hint=${html`Replaces the webhook (PUT): title, description, icon, enabled, mappings and
            security. The secret is kept unless you give <code>security.secret</code> (a new one) or <code>"secret": null</code> (none). The identifier cannot change.`}
          extra=${html`<button type="button" class="secondary" onClick=${() => setText(pretty(editable(webhook)))}>Reset</button>`}>
        ${replace.done && html`<p class="notice" role="status">Webhook replaced.</p>`}
      <//>
    </details>
  </section>`;
}

function DeleteWebhook({ webhook }) {
  const remove = async () => {
    await api.delete(`/v1/webhooks/${seg(webhook.identifier)}`);
    navigate(['ingestion', 'webhooks']);
  };
  return html`<${Section} title="Delete webhook" id="delete-webhook">
    <${ConfirmDelete} what="webhook" question=${`Delete “${webhook.title}” and all its events?`} onDelete=${remove}>
      <p class="hint">Deletes the webhook and its event log. Its URL stops accepting events. Entities it wrote stay.</p>
    <//>
  <//>`;
}

export function WebhookDetail({ webhook, query }) {
  // The live test is drawn once the webhook is in, but its list of latest events needs only
  // the URL's identifier: that request goes out with the webhook's, not after it.
  const events = latestEventsPath(webhook);
  useEarly(events, () => api.get(events));
  const hook = useLoad(() => api.get(`/v1/webhooks/${seg(webhook)}`).then((a) => a.integration), [webhook]);
  const blueprints = useLoad(() => api.get('/v1/blueprints').then((a) => a.blueprints || []), []);
  // The latest answer of a change (toggle, save, replace) replaces what was loaded.
  const [latest, setLatest] = useState(null);
  // Bumped when the saved mappings change under the editor (save, replace): it starts again.
  const [version, setVersion] = useState(0);
  const doc = latest || hook.data;
  useEffect(() => {
    if (query.event && doc) document.getElementById('live-test')?.scrollIntoView({ block: 'start' });
  }, [!!doc]);
  const changed = (integration) => setLatest(integration);
  const replaced = (integration) => {
    setLatest(integration);
    setVersion((v) => v + 1);
  };
  if (hook.error) {
    return html`<${Page} title=${webhook} crumbs=${[['Ingestion', null], ['Webhooks', webhooksHref()], [webhook, null]]}>
      <${ErrorNote} error=${hook.error} what="Cannot load the webhook" />
      <p><a href=${webhooksHref()}>Back to the webhooks</a></p>
    <//>`;
  }
  if (!doc) return html`<${Page} title=${webhook}><${Loading} what="the webhook" /><//>`;
  const blueprintNames = [...new Set((doc.mappings || []).map((m) => m.blueprint))];
  return html`<${Page} title=${doc.title} subtitle=${doc.description}
    crumbs=${[['Ingestion', null], ['Webhooks', webhooksHref()], [doc.title, null]]}
    actions=${html`<a href=${eventsHref(doc.identifier)}>Event log</a>`}>
    <div class="grid2">
      <${IngestUrl} webhook=${doc} onChanged=${changed} />
      <${SecuritySummary} webhook=${doc} />
    </div>
    ${blueprintNames.length > 0 && html`<p class="hint">Writes entities of ${blueprintNames.map(
      (b, i) => html`${i ? ', ' : ''}<a href=${blueprintHref(b)}>${b}</a>`,
    )}.</p>`}
    <${MappingWorkbench} key=${`${doc.identifier}:${version}`} webhook=${doc} blueprints=${blueprints.data || []}
      initialEvent=${query.event} onSaved=${changed} />
    <${EditJson} webhook=${doc} onReplaced=${replaced} />
    <${DeleteWebhook} webhook=${doc} />
  <//>`;
}
