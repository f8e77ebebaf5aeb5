// A workflow drawn as its graph: an SVG of its nodes (boxes with their titles and types) and
// connections (arrows, labelled with a condition's outlet), laid out in layers from the
// triggers down by a longest-path layering, each layer ordered to cross fewer arrows. On a
// run's page each box takes the colour of its node run. No library.

import { html, useRef } from '../ui.js';

const W = 232; // a box's width
const H = 58; // a box's height
const GX = 36; // between boxes of a layer
const GY = 64; // between layers
const PAD = 16;

// `{layers: [[id…]…], layerOf: {id: n}}`: each node one layer below the lowest node leading to it.
export function layering(nodes, connections) {
  const ids = nodes.map((n) => n.identifier);
  const known = new Set(ids);
  const edges = connections.filter((c) => known.has(c.sourceIdentifier) && known.has(c.targetIdentifier));
  const incoming = Object.fromEntries(ids.map((id) => [id, 0]));
  const out = Object.fromEntries(ids.map((id) => [id, []]));
  for (const e of edges) {
    incoming[e.targetIdentifier] += 1;
    out[e.sourceIdentifier].push(e.targetIdentifier);
  }
  const layerOf = {};
  const queue = ids.filter((id) => incoming[id] === 0);
  queue.forEach((id) => (layerOf[id] = 0));
  const left = { ...incoming };
  while (queue.length) {
    const id = queue.shift();
    for (const next of out[id]) {
      layerOf[next] = Math.max(layerOf[next] ?? 0, layerOf[id] + 1);
      left[next] -= 1;
      if (left[next] === 0) queue.push(next);
    }
  }
  // Nodes on a cycle (Wharf refuses them; a graph read from elsewhere may have one) go below.
  let deepest = Math.max(-1, ...Object.values(layerOf));
  for (const id of ids) if (layerOf[id] === undefined) layerOf[id] = ++deepest;
  // A second trigger joining the graph further down sits just above the node it leads to, so
  // that its arrow is short rather than crossing the layers between.
  for (const id of ids) {
    if (incoming[id] === 0 && out[id].length) {
      const below = Math.min(...out[id].map((t) => layerOf[t])) - 1;
      if (below > layerOf[id]) layerOf[id] = below;
    }
  }
  const count = Math.max(...Object.values(layerOf)) + 1;
  const layers = Array.from({ length: count }, () => []);
  ids.forEach((id) => layers[layerOf[id]].push(id));
  // Order each layer by the mean position of the nodes leading to it (two sweeps down).
  const preds = Object.fromEntries(ids.map((id) => [id, []]));
  edges.forEach((e) => preds[e.targetIdentifier].push(e.sourceIdentifier));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let l = 1; l < layers.length; l++) {
      const pos = {};
      layers[l - 1].forEach((id, i) => (pos[id] = i));
      const key = (id, i) => {
        const ps = preds[id].filter((p) => pos[p] !== undefined);
        return ps.length ? ps.reduce((a, p) => a + pos[p], 0) / ps.length : i;
      };
      layers[l] = layers[l].map((id, i) => [id, key(id, i), i]).sort((a, b) => a[1] - b[1] || a[2] - b[2]).map((x) => x[0]);
    }
  }
  return { layers, layerOf, edges };
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

// What a node is, in a few words, after its type: a WEBHOOK's method, an upsert's blueprint…
function detail(config) {
  const c = config || {};
  switch (c.type) {
    case 'WEBHOOK': return [c.method || 'POST', c.synchronized === false ? 'async' : null, c.agent === true ? 'agent' : null].filter(Boolean).join(' · ');
    case 'UPSERT_ENTITY': return c.blueprintIdentifier || '';
    case 'EVENT_TRIGGER': return [c.event && c.event.type, c.event && c.event.blueprintIdentifier].filter(Boolean).join(' · ');
    case 'SCHEDULE_TRIGGER': return c.cron || '';
    case 'CONDITION': {
      const outlets = c.outlets || c.options || c.conditions || [];
      return `${outlets.length} outlet${outlets.length === 1 ? '' : 's'}`;
    }
    default: return '';
  }
}

// An outlet's words for the arrow leaving through it.
function edgeLabel(edge, byId) {
  if (edge.fallback) return 'fallback';
  const outlet = edge.sourceOutletIdentifier || edge.sourceOptionIdentifier;
  if (!outlet) return '';
  const config = (byId[edge.sourceIdentifier] || {}).config || {};
  const outlets = config.outlets || config.options || config.conditions || [];
  const found = outlets.find((o) => o.identifier === outlet);
  return (found && found.title) || outlet;
}

const TONE = { SUCCESS: 'good', FAILED: 'bad', CANCELLED: 'cancelled', IN_PROGRESS: 'live' };

// `<${WorkflowGraph} workflow=${wf} nodeRuns=${[…]} onPick=${(nodeId) => …} />`
export function WorkflowGraph({ workflow, nodeRuns, onPick, title }) {
  const marker = useRef(`arrow-${Math.random().toString(36).slice(2, 8)}`).current;
  const nodes = Array.isArray(workflow && workflow.nodes) ? workflow.nodes.filter((n) => n && n.identifier) : [];
  const connections = Array.isArray(workflow && workflow.connections) ? workflow.connections : [];
  if (!nodes.length) return html`<p class="muted">This workflow has no nodes to draw.</p>`;
  const byId = Object.fromEntries(nodes.map((n) => [n.identifier, n]));
  const { layers, edges } = layering(nodes, connections);
  const widest = Math.max(...layers.map((l) => l.length));
  const width = PAD * 2 + widest * W + (widest - 1) * GX;
  const height = PAD * 2 + layers.length * H + (layers.length - 1) * GY;
  const at = {};
  layers.forEach((layer, l) => {
    const span = layer.length * W + (layer.length - 1) * GX;
    const x0 = (width - span) / 2;
    layer.forEach((id, i) => (at[id] = { x: x0 + i * (W + GX), y: PAD + l * (H + GY) }));
  });
  const runOf = {};
  (nodeRuns || []).forEach((r) => (runOf[r.nodeIdentifier] = r));
  const stateOf = (id) => {
    if (!nodeRuns) return null;
    const r = runOf[id];
    if (!r) return { tone: 'idle', text: 'not run' };
    const value = r.status === 'COMPLETED' ? r.result || 'COMPLETED' : r.status;
    return { tone: TONE[value] || 'neutral', text: value };
  };
  // Boxes are buttons on a run's page: the drawing is then a group (an image holds no controls).
  const picking = Boolean(onPick && nodeRuns);
  const summary = `${title || workflow.title || workflow.identifier}: ${nodes.length} node${nodes.length === 1 ? '' : 's'}, ${edges.length} connection${edges.length === 1 ? '' : 's'}`;
  const described = edges.map((e) => `${e.sourceIdentifier} → ${e.targetIdentifier}${edgeLabel(e, byId) ? ` (${edgeLabel(e, byId)})` : ''}`).join('; ');
  return html`<div class="act-graph-wrap">
    <svg class="graph act-graph" viewBox=${`0 0 ${width} ${height}`} width=${width} height=${height} role=${picking ? 'group' : 'img'}
      aria-labelledby=${`${marker}-t ${marker}-d`} style=${{ maxWidth: `${width}px`, minWidth: `${Math.min(width, 600)}px` }}>
      <title id=${`${marker}-t`}>${summary}</title>
      <desc id=${`${marker}-d`}>${described || 'No connections.'}</desc>
      <defs>
        <marker id=${marker} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="act-arrow-head" />
        </marker>
        <marker id=${`${marker}-taken`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="11" markerHeight="11" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="act-arrow-head taken" />
        </marker>
      </defs>
      ${edges.map((e) => {
        const s = at[e.sourceIdentifier];
        const t = at[e.targetIdentifier];
        const sx = s.x + W / 2;
        const sy = s.y + H;
        const tx = t.x + W / 2;
        const ty = t.y - 2;
        const bend = Math.max(24, (ty - sy) / 2);
        const d = ty > sy
          ? `M ${sx} ${sy} C ${sx} ${sy + bend}, ${tx} ${ty - bend}, ${tx} ${ty}`
          : `M ${s.x + W} ${s.y + H / 2} C ${s.x + W + 60} ${s.y + H / 2}, ${t.x + W + 60} ${t.y + H / 2}, ${t.x + W + 2} ${t.y + H / 2}`;
        const label = edgeLabel(e, byId);
        const ran = nodeRuns && runOf[e.sourceIdentifier] && runOf[e.targetIdentifier];
        return html`<g class=${`act-edge${ran ? ' taken' : ''}`}>
          <path class="edge" d=${d} marker-end=${`url(#${ran ? `${marker}-taken` : marker})`} />
          ${label && html`<text class="act-edge-label" x=${(sx + tx) / 2 + 6} y=${(sy + ty) / 2 + 4}>${clip(label, 24)}</text>`}
        </g>`;
      })}
      ${nodes.map((n) => {
        const p = at[n.identifier];
        const type = (n.config && n.config.type) || '?';
        const state = stateOf(n.identifier);
        const more = detail(n.config);
        const kind = type.endsWith('_TRIGGER') ? 'trigger' : type === 'CONDITION' ? 'condition' : 'step';
        const name = n.title || n.identifier;
        const pick = onPick && state && state.tone !== 'idle' ? () => onPick(n.identifier) : null;
        const shownName = clip(name, state ? 25 : 28);
        const shownType = clip(`${type}${more ? ` · ${more}` : ''}`, 35);
        // A button's name starts with the words it shows (WCAG 2.5.3, label in name): its two
        // lines are one text, with a space between, as a screen reader reads them.
        return html`<g class=${`node act-node ${kind}${state ? ` ${state.tone}` : ''}${pick ? ' pickable' : ''}`}
          transform=${`translate(${p.x} ${p.y})`} tabindex=${pick ? 0 : undefined} role=${pick ? 'button' : undefined}
          aria-label=${pick ? `${shownName} ${shownType}: ${state.text}. Show its node run` : undefined}
          onClick=${pick || undefined} onKeyDown=${pick ? (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(); } } : undefined}>
          <title>${`${name} (${n.identifier}) — ${type}${more ? ` · ${more}` : ''}${state ? ` — ${state.text}` : ''}`}</title>
          <rect width=${W} height=${H} rx=${kind === 'trigger' ? 22 : kind === 'condition' ? 14 : 6} />
          <text><tspan x="12" y="22" class="act-node-title">${shownName}</tspan>${' '}<tspan x="12" y="42" class="act-node-type">${shownType}</tspan></text>
          ${state && html`<text x=${W - 10} y="22" class="act-node-state" text-anchor="end" aria-hidden="true">${state.tone === 'good' ? '✓' : state.tone === 'bad' ? '✗' : state.tone === 'live' ? '…' : state.tone === 'idle' ? '–' : '•'}</text>`}
        </g>`;
      })}
    </svg>
    ${nodeRuns && html`<p class="hint act-legend">
      <span class="act-key good">✓ succeeded</span> <span class="act-key bad">✗ failed</span>
      <span class="act-key live">… running</span> <span class="act-key cancelled">• cancelled</span> <span class="act-key idle">– not run</span>
    </p>`}
  </div>`;
}
