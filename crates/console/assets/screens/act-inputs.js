// A form generated from an action's (or a workflow trigger's) `userInputs`, as Port's UI draws
// it: each input by its type and format, `enum` as a choice, `format: "entity"` as a picker of
// the blueprint's entities (read through the search API), `required` marked and checked before
// sending, `order` and `steps` followed, titles and descriptions as labels and hints. What the
// browser cannot know (a `jqQuery` default, enum or required) is left to Wharf, whose 422 names
// the input.

import { html, useState, useEffect, useRef, ErrorNote, useAction, localInputToIso, pretty } from '../ui.js';
import { api, seg } from '../api.js';
import { CodeEditor } from '../editor.js';

const isJq = (v) => v && typeof v === 'object' && !Array.isArray(v) && typeof v.jqQuery === 'string';

// The inputs in the order the form shows them: `order` first, then the others as written.
// Inputs with `visible: false` are left out (Wharf does not require them either).
export function orderedInputs(userInputs) {
  const props = (userInputs && userInputs.properties) || {};
  const names = Object.keys(props);
  const order = Array.isArray(userInputs && userInputs.order) ? userInputs.order.filter((n) => n in props) : [];
  const rest = names.filter((n) => !order.includes(n));
  return [...order, ...rest].filter((n) => props[n] && props[n].visible !== false).map((name) => ({ name, def: props[name] }));
}

// Port's `steps` (`[{title, order}]`): the inputs grouped in titled parts; null when none.
function stepsOf(userInputs, inputs) {
  const steps = userInputs && Array.isArray(userInputs.steps) ? userInputs.steps : null;
  if (!steps || steps.length === 0) return null;
  const placed = new Set();
  const groups = steps.map((s, i) => {
    const names = (Array.isArray(s.order) ? s.order : []).filter((n) => inputs.some((x) => x.name === n));
    names.forEach((n) => placed.add(n));
    return { title: s.title || `Step ${i + 1}`, names };
  });
  const left = inputs.filter((x) => !placed.has(x.name)).map((x) => x.name);
  if (left.length) groups.push({ title: 'More inputs', names: left });
  return groups;
}

export function requiredNames(userInputs) {
  const req = userInputs && userInputs.required;
  return Array.isArray(req) ? req : [];
}

// How an input is edited: text, email, url, datetime, date, number, boolean, choice, choices
// (an array of an enum), entity, lines (an array of strings, numbers or entities), json, long.
export function kindOf(def) {
  const type = def.type;
  const format = def.format;
  if (Array.isArray(def.enum) && type !== 'array') return 'choice';
  if (type === 'number' || type === 'integer') return 'number';
  if (type === 'boolean') return 'boolean';
  if (type === 'object') return 'json';
  if (type === 'array') {
    const items = def.items || {};
    if (Array.isArray(items.enum)) return 'choices';
    if (['string', 'number', 'integer'].includes(items.type) && !items.enum) return 'lines';
    return 'json';
  }
  if (format === 'entity') return 'entity';
  if (format === 'email') return 'email';
  if (format === 'url') return 'url';
  if (format === 'date-time') return 'datetime';
  if (format === 'date') return 'date';
  if (['multi-line', 'markdown', 'yaml'].includes(format)) return 'long';
  return 'text';
}

// `2026-01-02T03:04:05Z` → the `datetime-local` value of that time in the user's zone.
function isoToLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// The form's starting value of an input: its literal default, in the control's terms.
function initialOf(def) {
  const kind = kindOf(def);
  const d = def.default;
  const literal = d !== undefined && d !== null && !isJq(d);
  switch (kind) {
    case 'boolean': return literal ? d === true : false;
    case 'choice': return literal ? JSON.stringify(d) : '';
    case 'choices': return literal && Array.isArray(d) ? d.map((x) => JSON.stringify(x)) : [];
    case 'lines': return literal && Array.isArray(d) ? d.join('\n') : '';
    case 'json': return literal ? pretty(d) : '';
    case 'datetime': return literal ? isoToLocalInput(d) : '';
    case 'entity': return literal ? (typeof d === 'object' ? d.identifier || '' : String(d)) : '';
    default: return literal ? String(d) : '';
  }
}

export function initialValues(inputs) {
  return Object.fromEntries(inputs.map(({ name, def }) => [name, initialOf(def)]));
}

// The value an input sends, or `undefined` when it is left empty. Throws a message when the
// value cannot be what the input wants (a number that is not one, JSON that does not parse).
export function valueOf(def, raw) {
  const kind = kindOf(def);
  const items = def.items || {};
  switch (kind) {
    case 'boolean': return raw === true;
    case 'choice': return raw === '' ? undefined : JSON.parse(raw);
    case 'choices': return raw.length ? raw.map((x) => JSON.parse(x)) : undefined;
    case 'number': {
      if (String(raw).trim() === '') return undefined;
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error('must be a number');
      return n;
    }
    case 'lines': {
      const lines = String(raw).split('\n').map((l) => l.trim()).filter(Boolean);
      if (!lines.length) return undefined;
      if (items.type === 'number' || items.type === 'integer') {
        return lines.map((l) => {
          const n = Number(l);
          if (!Number.isFinite(n)) throw new Error(`"${l}" is not a number`);
          return n;
        });
      }
      return lines;
    }
    case 'json': {
      if (String(raw).trim() === '') return undefined;
      let v;
      try {
        v = JSON.parse(raw);
      } catch (err) {
        throw new Error(`the JSON does not parse: ${err.message}`);
      }
      if (def.type === 'object' && (typeof v !== 'object' || v === null || Array.isArray(v))) throw new Error('must be a JSON object');
      if (def.type === 'array' && !Array.isArray(v)) throw new Error('must be a JSON array');
      return v;
    }
    case 'datetime': {
      if (!raw) return undefined;
      const iso = localInputToIso(raw);
      if (!iso) throw new Error('is not a date and time');
      return iso;
    }
    default: {
      const text = String(raw);
      return text.trim() === '' ? undefined : text;
    }
  }
}

// The words under an input: its description, then what the control expects.
function hintOf(def, kind) {
  const parts = [];
  if (def.description) parts.push(def.description);
  const items = def.items || {};
  const fmt = {
    email: 'An email address.',
    url: 'An absolute http or https URL.',
    datetime: 'Your local time; sent as UTC (RFC 3339).',
    date: 'A date.',
    lines: `One ${items.format === 'entity' ? `${items.blueprint} entity identifier` : items.type === 'number' ? 'number' : 'value'} per line.`,
    json: def.type === 'object' ? 'A JSON object.' : 'A JSON array.',
    choices: 'Choose one or more (Ctrl or ⌘ + click).',
  }[kind];
  if (fmt) parts.push(fmt);
  if (def.format && !['entity', 'email', 'url', 'date-time', 'date'].includes(def.format)) parts.push(`Format: ${def.format}.`);
  if (def.minLength !== undefined || def.maxLength !== undefined) parts.push(`${def.minLength ?? 0}–${def.maxLength ?? '∞'} characters.`);
  if (def.minimum !== undefined || def.maximum !== undefined) parts.push(`From ${def.minimum ?? '−∞'} to ${def.maximum ?? '∞'}.`);
  if (def.pattern) parts.push(`Must match ${def.pattern}.`);
  if (isJq(def.default)) parts.push(`Left empty, Wharf computes it: ${def.default.jqQuery}`);
  if (isJq(def.enum)) parts.push(`Wharf computes the choices: ${def.enum.jqQuery}`);
  if (isJq(def.visible)) parts.push(`Asked only when: ${def.visible.jqQuery}`);
  if (def.encryption) parts.push('A secret input.');
  return parts.join(' ');
}

// How many entities a picker lists at most: one page of the search.
const PICKED = 100;

// A text input that offers the entities of `blueprint` matching what is typed (the search API,
// `$identifier` or `$title` containing the text, one page of identifiers and titles), as a
// datalist.
export function EntityPicker({ id, blueprint, value, onInput, required, invalid, describedBy, disabled }) {
  const [found, setFound] = useState({ entities: [], more: false, error: null, loading: false });
  const templated = !blueprint || String(blueprint).includes('{{');
  useEffect(() => {
    if (templated) return undefined;
    let live = true;
    const text = (value || '').trim();
    const timer = setTimeout(async () => {
      setFound((f) => ({ ...f, loading: true }));
      const query = text
        ? { combinator: 'or', rules: [
          { property: '$identifier', operator: 'contains', value: text },
          { property: '$title', operator: 'contains', value: text },
        ] }
        : { combinator: 'and', rules: [] };
      const body = { query, limit: PICKED, include: ['identifier', 'title'] };
      try {
        const answer = await api.post(`/v1/blueprints/${seg(blueprint)}/entities/search`, body);
        if (live) setFound({ entities: answer.entities || [], more: !!answer.next, error: null, loading: false });
      } catch (error) {
        if (live) setFound({ entities: [], more: false, error, loading: false });
      }
    }, text ? 250 : 0);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [blueprint, value, templated]);
  const shown = found.entities;
  const exact = shown.find((e) => e.identifier === value);
  return html`<div class="act-picker">
    <input id=${id} type="text" list=${`${id}-list`} value=${value ?? ''} required=${required} disabled=${disabled}
      aria-required=${required ? 'true' : undefined} aria-invalid=${invalid ? 'true' : undefined}
      aria-describedby=${[describedBy, `${id}-found`].filter(Boolean).join(' ')} autocomplete="off" spellcheck="false"
      placeholder=${templated ? 'entity identifier' : `Search ${blueprint} entities`} onInput=${(e) => onInput(e.currentTarget.value)} />
    <datalist id=${`${id}-list`}>${shown.map((e) => html`<option value=${e.identifier}>${e.title || e.identifier}</option>`)}</datalist>
    <p class="hint" id=${`${id}-found`} aria-live="polite">${templated
      ? 'An entity identifier.'
      : found.error
        ? html`<span class="act-bad">Cannot search the entities of ${blueprint}: ${found.error.message}</span>`
        : found.loading && !found.entities.length
          ? 'Searching…'
          : exact
            ? `${exact.title || exact.identifier} — an entity of ${blueprint}.`
            : found.more
              ? `More than ${shown.length} ${blueprint} entities match (the first ${shown.length} listed); type to narrow.`
              : `${shown.length} ${blueprint} entit${shown.length === 1 ? 'y matches' : 'ies match'}${shown.length ? '; type to narrow' : ''}.`}</p>
  </div>`;
}

// One input's control, by its kind.
function Control({ id, def, kind, value, set, required, invalid, describedBy, labelText }) {
  const disabled = def.disabled === true;
  const common = { id, disabled, required, 'aria-required': required ? 'true' : undefined, 'aria-invalid': invalid ? 'true' : undefined, 'aria-describedby': describedBy || undefined };
  const onText = (e) => set(e.currentTarget.value);
  switch (kind) {
    case 'boolean':
      return html`<input ...${common} type="checkbox" checked=${value === true} onChange=${(e) => set(e.currentTarget.checked)} />`;
    case 'choice':
      return html`<select ...${common} value=${value} onChange=${onText}>
        <option value="">${required ? '— choose —' : '— none —'}</option>
        ${def.enum.map((c) => html`<option value=${JSON.stringify(c)}>${(def.enumTitles && def.enumTitles[c]) || (typeof c === 'string' ? c : JSON.stringify(c))}</option>`)}
      </select>`;
    case 'choices':
      return html`<select ...${common} multiple size=${Math.min(6, def.items.enum.length)}
        onChange=${(e) => set([...e.currentTarget.selectedOptions].map((o) => o.value))}>
        ${def.items.enum.map((c) => html`<option value=${JSON.stringify(c)} selected=${value.includes(JSON.stringify(c))}>${typeof c === 'string' ? c : JSON.stringify(c)}</option>`)}
      </select>`;
    case 'entity':
      return html`<${EntityPicker} id=${id} blueprint=${def.blueprint} value=${value} onInput=${set} required=${required}
        invalid=${invalid} describedBy=${describedBy} disabled=${disabled} />`;
    case 'json':
      return html`<${CodeEditor} id=${id} label=${labelText} language="json" value=${value} onInput=${set} rows=${3}
        describedBy=${describedBy} invalid=${invalid} />`;
    case 'lines':
    case 'long':
      return html`<textarea ...${common} rows=${3} value=${value} onInput=${onText} />`;
    case 'number':
      return html`<input ...${common} type="number" step="any" min=${def.minimum} max=${def.maximum} value=${value} onInput=${onText} />`;
    default: {
      const type = { email: 'email', url: 'url', datetime: 'datetime-local', date: 'date' }[kind] || (def.encryption ? 'password' : 'text');
      return html`<input ...${common} type=${type} value=${value} minLength=${def.minLength} maxLength=${def.maxLength}
        autocomplete="off" onInput=${onText} />`;
    }
  }
}

// `<${InputsForm} prefix="run" userInputs=${…} entity=${{blueprint, required}} submitLabel="Run action"
//   send=${(body) => api.post(…)} done=${(answer) => html`…`} />`. `send` gets
// `{properties, entity, runAs}`; its answer is shown by `done`.
export function InputsForm({ prefix, userInputs, entity, submitLabel, send, done, runAs = true, intro }) {
  const inputs = orderedInputs(userInputs);
  const required = requiredNames(userInputs);
  const [values, setValues] = useState(() => initialValues(inputs));
  const [entityId, setEntityId] = useState('');
  const [runAsValue, setRunAs] = useState('');
  const [problems, setProblems] = useState({});
  const [summary, setSummary] = useState(null);
  const action = useAction(send);
  const formRef = useRef(null);
  const set = (name) => (v) => {
    setValues((old) => ({ ...old, [name]: v }));
    setProblems((old) => (old[name] ? { ...old, [name]: undefined } : old));
  };
  const label = (name, def) => def.title || name;

  const submit = async (e) => {
    e.preventDefault();
    const found = {};
    const properties = {};
    for (const { name, def } of inputs) {
      if (def.disabled === true) continue;
      let v;
      try {
        v = valueOf(def, values[name]);
      } catch (err) {
        found[name] = `${label(name, def)} ${err.message}.`;
        continue;
      }
      if (v === undefined) {
        if (required.includes(name)) found[name] = `${label(name, def)} is required.`;
      } else properties[name] = v;
    }
    if (entity && entity.required && !entityId.trim()) found.$entity = 'Entity is required.';
    setProblems(found);
    const names = Object.keys(found);
    if (names.length) {
      setSummary({ text: `Check the inputs: ${names.map((n) => found[n]).join(' ')}` });
      return;
    }
    setSummary(null);
    const body = { properties };
    if (entity && entityId.trim()) body.entity = entityId.trim();
    await action.run({ body, runAs: runAsValue.trim() });
  };

  // Focus the first invalid control once the problems are drawn.
  useEffect(() => {
    const first = formRef.current && formRef.current.querySelector('[aria-invalid="true"]');
    if (first && summary) first.focus();
  }, [summary]);

  const field = ({ name, def }) => {
    const kind = kindOf(def);
    const id = `${prefix}-in-${name}`;
    const hint = hintOf(def, kind);
    const problem = problems[name];
    const isRequired = required.includes(name) && def.disabled !== true;
    const describedBy = [hint && kind !== 'entity' ? `${id}-hint` : null, problem ? `${id}-problem` : null].filter(Boolean).join(' ');
    const wide = ['json', 'lines', 'long', 'choices'].includes(kind);
    return html`<div class=${`field${wide ? ' act-wide' : ''}${kind === 'boolean' ? ' act-check' : ''}`} key=${name}>
      <label for=${id}>${label(name, def)}${isRequired && html`<span class="act-req" aria-hidden="true"> *</span>`}</label>
      <${Control} id=${id} def=${def} kind=${kind} value=${values[name]} set=${set(name)} required=${isRequired} labelText=${label(name, def)}
        invalid=${!!problem} describedBy=${describedBy} />
      ${hint && html`<p class="hint" id=${`${id}-hint`}>${kind === 'entity' ? `An entity of ${def.blueprint}. ${hint}` : hint}</p>`}
      ${problem && html`<p class="act-problem" id=${`${id}-problem`}>${problem}</p>`}
    </div>`;
  };

  // The summary lists the problems still open: fixing an input takes it off.
  const openProblems = Object.values(problems).filter(Boolean);
  const steps = stepsOf(userInputs, inputs);
  const byName = Object.fromEntries(inputs.map((x) => [x.name, x]));
  return html`<form ref=${formRef} class="act-run-form" onSubmit=${submit} novalidate>
    ${intro}
    ${entity && html`<div class="act-inputs">
      <div class="field">
        <label for=${`${prefix}-entity`}>Entity${entity.required && html`<span class="act-req" aria-hidden="true"> *</span>`}</label>
        <${EntityPicker} id=${`${prefix}-entity`} blueprint=${entity.blueprint} value=${entityId}
          onInput=${(v) => { setEntityId(v); setProblems((p) => ({ ...p, $entity: undefined })); }}
          required=${entity.required} invalid=${!!problems.$entity} describedBy=${problems.$entity ? `${prefix}-entity-problem` : undefined} />
        ${problems.$entity && html`<p class="act-problem" id=${`${prefix}-entity-problem`}>${problems.$entity}</p>`}
      </div>
    </div>`}
    ${inputs.length === 0 && html`<p class="muted">This ${entity ? 'action' : 'trigger'} asks for no inputs.</p>`}
    ${steps
      ? steps.map((s) => html`<fieldset class="act-step"><legend>${s.title}</legend>
          <div class="act-inputs">${s.names.map((n) => field(byName[n]))}</div></fieldset>`)
      : inputs.length > 0 && html`<div class="act-inputs">${inputs.map(field)}</div>`}
    ${runAs && html`<details class="act-more"><summary>Run as someone else</summary>
      <div class="field">
        <label for=${`${prefix}-run-as`}>Run as (user email)</label>
        <input id=${`${prefix}-run-as`} type="email" value=${runAsValue} onInput=${(e) => setRunAs(e.currentTarget.value)}
          aria-describedby=${`${prefix}-run-as-hint`} autocomplete="off" />
        <p class="hint" id=${`${prefix}-run-as-hint`}>Sent as <code>run_as</code>: the run is made for this user (<code>.trigger.by.user.email</code>).</p>
      </div>
    </details>`}
    ${summary && openProblems.length > 0 && html`<div class="error" role="alert"><strong>Check the inputs: ${openProblems.join(' ')}</strong></div>`}
    <${ErrorNote} error=${action.error} what="Wharf refused the run" />
    <div class="page-actions">
      <button type="submit" disabled=${action.busy}>${action.busy ? 'Starting…' : submitLabel}</button>
    </div>
    ${action.done && done && done(action.done)}
  </form>`;
}
