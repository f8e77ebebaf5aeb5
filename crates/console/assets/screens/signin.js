// Sign-in: an API client's id and secret, exchanged for a token kept in this tab only.

import { html, useState, ErrorNote } from '../ui.js';
import { signIn } from '../api.js';

export function SignIn({ reason }) {
  const [clientId, setClientId] = useState('');
  const [clientSecret, setClientSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(clientId.trim(), clientSecret.trim());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title"><img src="/console/wharf.svg" alt="" width="28" height="28" /> Sign in to Wharf</h1>
      <p class="muted">Use an API client's id and secret. On first start, <code>wharf serve</code> prints them
        and writes them to <code>wharf-data/credentials.json</code>.</p>
      ${reason && html`<p class="notice" role="status">${reason}</p>`}
      <${ErrorNote} error=${error} what="Sign-in failed" />
      <div class="field"><label for="client-id">Client id</label>
        <input id="client-id" name="clientId" autocomplete="username" required value=${clientId}
          onInput=${(e) => setClientId(e.currentTarget.value)} /></div>
      <div class="field"><label for="client-secret">Client secret</label>
        <input id="client-secret" name="clientSecret" type="password" autocomplete="current-password" required
          value=${clientSecret} onInput=${(e) => setClientSecret(e.currentTarget.value)} /></div>
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      <p class="hint">The token stays in this browser tab and is forgotten when the tab closes or you sign out.</p>
    </form>
  </main>`;
}
