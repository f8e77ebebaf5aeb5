// Overview: ingest and delivery rates, failures, the delivery queue, from the figures `/metrics`
// exports (this node's, since it started). Rates come from two readings a few seconds apart.

import { html, useState, useEffect, Page, Section, ErrorNote, Loading, num, useInterval } from '../ui.js';
import { api } from '../api.js';

const EVERY_MS = 5000;

// Prometheus' text format → [{name, labels, value}]; comments and malformed lines are skipped.
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// The sum of the samples named `name` whose labels pass `where`.
function sum(samples, name, where = () => true) {
  return samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);
}

// The figures the overview shows, from one reading.
export function figures(samples) {
  const ingest = (l) => l.route === '/ingest/{webhook_key}';
  return {
    ingested: sum(samples, 'http_requests_total', (l) => ingest(l) && l.status.startsWith('2')),
    ingestRefused: sum(samples, 'http_requests_total', (l) => ingest(l) && !l.status.startsWith('2')),
    mapped: sum(samples, 'wharf_webhook_events_mapped_total', (l) => ['SUCCESS', 'PARTIAL', 'FILTERED'].includes(l.status)),
    mappingFailed: sum(samples, 'wharf_webhook_events_mapped_total', (l) => ['FAILURE', 'PARTIAL'].includes(l.status)),
    delivered: sum(samples, 'wharf_delivery_attempts_total', (l) => l.outcome === 'success'),
    deliveryFailed: sum(samples, 'wharf_delivery_attempts_total', (l) => l.outcome !== 'success'),
    queueDepth: sum(samples, 'wharf_delivery_queue_depth'),
    oldestDue: sum(samples, 'wharf_delivery_oldest_due_age_seconds'),
    disabledTargets: sum(samples, 'wharf_delivery_disabled_targets'),
    runs: sum(samples, 'wharf_run_request_attempts_total'),
    automationRuns: sum(samples, 'wharf_automation_runs_total'),
    serverErrors: sum(samples, 'http_requests_total', (l) => l.status.startsWith('5')),
  };
}

function rate(now, before, key) {
  if (!before) return null;
  const seconds = (now.at - before.at) / 1000;
  return seconds > 0 ? Math.max(0, (now.figures[key] - before.figures[key]) / seconds) : null;
}

function Stat({ label, value, unit, tone }) {
  return html`<div class=${`stat ${tone || ''}`}><div class="value">${value}${unit && html`<small> ${unit}</small>`}</div><div class="label">${label}</div></div>`;
}

function age(seconds) {
  if (!seconds) return 'none due';
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function Overview() {
  const [readings, setReadings] = useState([]);
  const [error, setError] = useState(null);
  const read = async () => {
    try {
      const text = await api.get('/metrics', { text: true });
      const reading = { at: Date.now(), figures: figures(parseMetrics(text)) };
      setReadings((old) => [...old.slice(-1), reading]);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    read();
  }, []);
  useInterval(read, EVERY_MS);
  const now = readings[readings.length - 1];
  const before = readings.length > 1 ? readings[0] : null;
  const perSecond = (key) => {
    const r = rate(now, before, key);
    return r === null ? '…' : r.toFixed(r < 10 ? 1 : 0);
  };
  return html`<${Page} title="Overview" subtitle="This node's figures since it started, read from /metrics every 5 seconds.">
    <${ErrorNote} error=${error} what="Cannot read /metrics" />
    ${!now && !error && html`<${Loading} what="figures" />`}
    ${now && html`
      <${Section} title="Ingestion" id="ov-ingest">
        <div class="stats">
          <${Stat} label="webhooks accepted per second" value=${perSecond('ingested')} />
          <${Stat} label="accepted since start" value=${num(now.figures.ingested)} />
          <${Stat} label="events mapped" value=${num(now.figures.mapped)} />
          <${Stat} label="events that failed to map (whole or in part)" value=${num(now.figures.mappingFailed)} tone=${now.figures.mappingFailed ? 'warn' : ''} />
          <${Stat} label="webhook requests refused (4xx/5xx)" value=${num(now.figures.ingestRefused)} />
        </div>
        <p class="hint">Events and their errors: <a href="#/ingestion/webhooks">Ingestion → Webhooks</a>.</p>
      <//>
      <${Section} title="Delivery" id="ov-delivery">
        <div class="stats">
          <${Stat} label="deliveries per second" value=${perSecond('delivered')} />
          <${Stat} label="delivered since start" value=${num(now.figures.delivered)} />
          <${Stat} label="failed attempts (will retry or gave up)" value=${num(now.figures.deliveryFailed)} />
          <${Stat} label="queue depth" value=${num(now.figures.queueDepth)} />
          <${Stat} label="oldest due delivery waiting" value=${age(now.figures.oldestDue)} />
          <${Stat} label="disabled subscriptions" value=${num(now.figures.disabledTargets)} />
        </div>
        <p class="hint">Subscriptions and their deliveries: <a href="#/delivery/projects">Delivery → Projects</a>.</p>
      <//>
      <${Section} title="Actions" id="ov-act">
        <div class="stats">
          <${Stat} label="run requests sent" value=${num(now.figures.runs)} />
          <${Stat} label="automation runs" value=${num(now.figures.automationRuns)} />
          <${Stat} label="server errors (5xx answers)" value=${num(now.figures.serverErrors)} />
        </div>
      <//>`}
  <//>`;
}

export const routes = [{ path: '/', view: Overview }];
