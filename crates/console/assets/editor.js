// A code editor without a library: a transparent textarea over a highlighted copy of its text
// (jq, JSON or Port's `{{ }}` templates). Highlighting builds elements, never HTML strings.
// Also the form every JSON document is edited in (blueprints, entities, actions, workflows,
// webhooks).

import { html, useEffect, useRef } from './vendor/preact-htm.mjs';
import { ErrorNote } from './ui.js';

const JQ_KEYWORDS = new Set([
  'def', 'if', 'then', 'elif', 'else', 'end', 'as', 'reduce', 'foreach', 'try', 'catch', 'label', 'import',
  'include', 'and', 'or', 'not', '__loc__',
]);

// jq's tokens: comments, strings (with `\(…)` kept inside), numbers, `$vars`, `.fields`,
// keywords; everything else is plain. Returns [class, text] pairs that cover `text` exactly.
export function jqTokens(text) {
  const out = [];
  const re = /(#[^\n]*)|("(?:\\.|[^"\\])*"?)|(\$[A-Za-z_][A-Za-z0-9_]*)|(\.[A-Za-z_][A-Za-z0-9_]*)|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push(['', text.slice(last, m.index)]);
    const [word] = m;
    let cls = '';
    if (m[1]) cls = 'tok-com';
    else if (m[2]) cls = 'tok-str';
    else if (m[3]) cls = 'tok-var';
    else if (m[4]) cls = 'tok-field';
    else if (m[5]) cls = 'tok-num';
    else if (m[6] && JQ_KEYWORDS.has(word)) cls = 'tok-kw';
    out.push([cls, word]);
    last = m.index + word.length;
  }
  if (last < text.length) out.push(['', text.slice(last)]);
  return out;
}

// JSON's tokens: keys, strings, numbers, literals.
export function jsonTokens(text) {
  const out = [];
  const re = /("(?:\\.|[^"\\])*"?)(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push(['', text.slice(last, m.index)]);
    if (m[1]) {
      out.push([m[2] ? 'tok-key' : 'tok-str', m[1]]);
      if (m[2]) out.push(['', m[2]]);
    } else if (m[3]) out.push(['tok-num', m[3]]);
    else out.push(['tok-kw', m[4]]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(['', text.slice(last)]);
  return out;
}

const TOKENIZERS = { jq: jqTokens, json: jsonTokens, text: (t) => [['', t]] };

export function Highlighted({ text, language = 'jq' }) {
  const tokens = (TOKENIZERS[language] || TOKENIZERS.text)(text || '');
  return tokens.map(([cls, part]) => (cls ? html`<span class=${cls}>${part}</span>` : part));
}

// `<${CodeEditor} id=… label=… language="jq" value=${v} onInput=${set} rows=${3} />`. The
// trailing newline keeps the copy as tall as the textarea when the text ends in one.
export function CodeEditor({ id, value, onInput, language = 'jq', rows = 3, label, describedBy, invalid }) {
  const text = value ?? '';
  const lines = Math.max(rows, text.split('\n').length);
  return html`<div class="editor" style=${{ minHeight: `${lines * 1.5 + 1.1}em` }}>
    <pre aria-hidden="true"><${Highlighted} text=${text} language=${language} />${'\n'}</pre>
    <textarea id=${id} class="code" spellcheck="false" autocapitalize="off" autocomplete="off" aria-label=${label}
      aria-describedby=${describedBy} aria-invalid=${invalid ? 'true' : undefined} rows=${lines}
      value=${text} onInput=${(e) => onInput(e.currentTarget.value)} />
  </div>`;
}

// A JSON document in a labelled code editor, with its hint, the error of the last submit and a
// submit button. Controlled: the caller holds `value` and the action (`busy`, `error`) that
// `onSubmit()` starts; `what` prefixes the error ("Not saved: …"). `children` go between the
// editor and the error (notices, more fields); `extra` goes beside the submit button (more
// buttons); `autoFocus` puts the caret in the editor when the form appears. Without an `id`
// the editor gets one of its own.
let nextFormId = 0;
export function JsonForm({
  id, label, hint, value, onInput, rows = 12, submitLabel, busyLabel = 'Working…', busy, error, what, onSubmit,
  children, extra, autoFocus,
}) {
  const own = useRef(null);
  if (!own.current) own.current = `json-${++nextFormId}`;
  const editorId = id || own.current;
  const hintId = `${editorId}-hint`;
  useEffect(() => {
    if (autoFocus) document.getElementById(editorId)?.focus();
  }, []);
  const submit = (e) => {
    e.preventDefault();
    onSubmit();
  };
  return html`<form class="json-form" onSubmit=${submit} aria-label=${label} novalidate>
    <div class="field">
      <label for=${editorId}>${label}</label>
      <${CodeEditor} id=${editorId} label=${label} language="json" value=${value} onInput=${onInput} rows=${rows}
        describedBy=${hint ? hintId : undefined} invalid=${!!error} />
      ${hint && html`<p class="hint" id=${hintId}>${hint}</p>`}
    </div>
    ${children}
    <${ErrorNote} error=${error} what=${what} />
    <div class="page-actions">
      <button type="submit" disabled=${busy}>${busy ? busyLabel : submitLabel}</button>
      ${extra}
    </div>
  </form>`;
}
