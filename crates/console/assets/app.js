// The console's shell: sign-in, navigation, and the route table of every screen.

import { html, render, useState, useEffect } from './vendor/preact-htm.mjs';
import { session, signOut } from './api.js';
import { useRoute, match, Empty } from './ui.js';
import { SignIn } from './screens/signin.js';
import * as overview from './screens/overview.js';
import * as catalog from './screens/catalog.js';
import * as ingestion from './screens/ingestion.js';
import * as delivery from './screens/delivery.js';
import * as act from './screens/act.js';

// Each screen module exports `routes`: `[{path: '/catalog/blueprints/:id', view}]`, and `nav`:
// `[{label, to, section}]` for the side bar, in order.
const modules = [overview, catalog, ingestion, delivery, act];
const routes = modules.flatMap((m) => m.routes);
const nav = modules.flatMap((m) => m.nav);

function resolve(path) {
  for (const route of routes) {
    const params = match(route.path, path);
    if (params) return { route, params };
  }
  return null;
}

function NotFound({ path }) {
  return html`<section class="page"><h1>No such page</h1>
    <${Empty} title=${`The console has no page at ${path}.`}>Pick a screen in the menu, or go to the <a href="#/">overview</a>.<//></section>`;
}

function Shell({ clientId }) {
  const { path, params } = useRoute();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);
  const found = resolve(path);
  const sections = [...new Set(nav.map((n) => n.section))];
  const active = (to) => (to === '#/' ? path === '/' : `#${path}`.startsWith(to));
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <header class="topbar">
      <a class="brand" href="#/"><img src="/console/wharf.svg" alt="" width="24" height="24" /> Wharf</a>
      <button type="button" class="menu-button secondary" aria-expanded=${menuOpen} aria-controls="sidebar"
        onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <span class="who muted" title="The API client this tab is signed in as">${clientId}</span>
      <button type="button" class="secondary small" onClick=${() => signOut()}>Sign out</button>
    </header>
    <nav id="sidebar" class=${`sidebar ${menuOpen ? 'open' : ''}`} aria-label="Screens">
      ${sections.map((section) => html`<div class="nav-section">
        <h2>${section}</h2>
        <ul>${nav.filter((n) => n.section === section).map(
          (n) => html`<li><a href=${n.to} aria-current=${active(n.to) ? 'page' : undefined}>${n.label}</a></li>`,
        )}</ul>
      </div>`)}
    </nav>
    <main id="main" tabindex="-1">
      ${found ? html`<${found.route.view} key=${path} ...${found.params} query=${params} />` : html`<${NotFound} path=${path} />`}
    </main>
  </div>`;
}

function App() {
  const [current, setCurrent] = useState(session.get());
  const [reason, setReason] = useState(null);
  useEffect(
    () => session.subscribe((why) => {
      setCurrent(session.get());
      setReason(why);
    }),
    [],
  );
  if (!current) return html`<${SignIn} reason=${reason} />`;
  return html`<${Shell} clientId=${current.clientId} />`;
}

render(html`<${App} />`, document.getElementById('app'));
