// The console's shell: sign-in, navigation, and the route table of every screen.

import { html, render, useState, useEffect } from './vendor/preact-htm.mjs';
import { session, signOut } from './api.js';
import { useRoute, currentRoute, match, Empty, Loading, ErrorNote } from './ui.js';
import { SignIn } from './screens/signin.js';

// The screens by area: a route's first segment names its module (`#/catalog/…` →
// screens/catalog.js; `#/` → overview), loaded the first time the area is shown, so a page
// loads only its own screens. Each module exports `routes`:
// `[{path: '/catalog/blueprints/:id', view}]`; the view gets the `:params` and `query`.
const AREAS = {
  '': 'screens/overview.js',
  catalog: 'screens/catalog.js',
  ingestion: 'screens/ingestion.js',
  delivery: 'screens/delivery.js',
  act: 'screens/act.js',
};

// Each module's imports, as the server read them from the files (index.html's `#modules`).
const GRAPH = (() => {
  try {
    return JSON.parse(document.getElementById('modules')?.textContent || '{}');
  } catch {
    return {};
  }
})();

// Asks for `module` and everything it imports at once: without this the browser finds each
// level of imports only after parsing the one above, a round trip per level. Modules the page
// already asked for (a `modulepreload` link of index.html or of an earlier area) are skipped.
function preload(module) {
  const wanted = new Set();
  const next = [module];
  while (next.length) {
    const path = next.pop();
    if (wanted.has(path)) continue;
    wanted.add(path);
    next.push(...(GRAPH[path] || []));
  }
  const asked = new Set([...document.head.querySelectorAll('link[rel="modulepreload"]')].map((l) => l.getAttribute('href')));
  for (const path of wanted) {
    if (asked.has(`/console/${path}`)) continue;
    const link = document.createElement('link');
    link.rel = 'modulepreload';
    link.href = `/console/${path}`;
    document.head.append(link);
  }
}

// The side bar, in order.
const NAV = [
  { section: 'Wharf', label: 'Overview', to: '#/' },
  { section: 'Catalog', label: 'Blueprints', to: '#/catalog/blueprints' },
  { section: 'Catalog', label: 'Entities', to: '#/catalog/entities' },
  { section: 'Ingestion', label: 'Webhooks', to: '#/ingestion/webhooks' },
  { section: 'Delivery', label: 'Projects', to: '#/delivery/projects' },
  { section: 'Act', label: 'Actions', to: '#/act/actions' },
  { section: 'Act', label: 'Runs', to: '#/act/runs' },
  { section: 'Act', label: 'Workflows', to: '#/act/workflows' },
];

// Each area's module: `{routes}` once loaded, `{error}` when it could not be; absent before.
const loaded = new Map();
const loading = new Map();

const areaOf = (path) => path.split('/').filter(Boolean)[0] || '';

function load(area) {
  if (!loading.has(area)) {
    preload(AREAS[area]);
    loading.set(
      area,
      import(`./${AREAS[area]}`).then(
        (module) => loaded.set(area, { routes: module.routes }),
        (error) => loaded.set(area, { error }),
      ),
    );
  }
  return loading.get(area);
}

// The first screen's module starts loading with the shell, not after its first render.
if (session.get() && Object.hasOwn(AREAS, areaOf(currentRoute().path))) load(areaOf(currentRoute().path));

// The module of the area `path` is in: `{routes}`, `{error}`, or `null` while it loads.
function useArea(path) {
  const area = areaOf(path);
  const known = Object.hasOwn(AREAS, area);
  const [, rerender] = useState(0);
  useEffect(() => {
    if (known && !loaded.has(area)) load(area).then(() => rerender((n) => n + 1));
  }, [area]);
  if (!known) return { routes: [] };
  return loaded.get(area) ?? null;
}

function resolve(routes, path) {
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
  const area = useArea(path);
  const found = area && area.routes ? resolve(area.routes, path) : null;
  const sections = [...new Set(NAV.map((n) => n.section))];
  const active = (to) => (to === '#/' ? path === '/' : `#${path}`.startsWith(to));
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <header class="topbar">
      <a class="brand" href="#/"><img src="/console/wharf.svg" alt="" width="24" height="24" /> Wharf</a>
      <button type="button" class="menu-button secondary" aria-expanded=${menuOpen} aria-controls="sidebar"
        onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <span class="who muted" title="The API client this tab is signed in as">${clientId}</span>
      <button type="button" class="secondary small" onClick=${signOutToOverview}>Sign out</button>
    </header>
    <nav id="sidebar" class=${`sidebar ${menuOpen ? 'open' : ''}`} aria-label="Screens">
      ${sections.map((section) => html`<div class="nav-section">
        <h2>${section}</h2>
        <ul>${NAV.filter((n) => n.section === section).map(
          (n) => html`<li><a href=${n.to} aria-current=${active(n.to) ? 'page' : undefined}>${n.label}</a></li>`,
        )}</ul>
      </div>`)}
    </nav>
    <main id="main" tabindex="-1">
      ${area === null
        ? html`<${Loading} what="the screen" />`
        : area.error
          ? html`<${ErrorNote} error=${area.error} what="This screen could not be loaded (reload the page)" />`
          : found
            ? html`<${found.route.view} key=${path} ...${found.params} query=${params} />`
            : html`<${NotFound} path=${path} />`}
    </main>
  </div>`;
}

// Signing out leaves the screen too: whoever signs in next (maybe a client of another
// organization) starts at the overview, not on a page of resources that may not be theirs. A
// session that ends on a 401 keeps its page, to come back to after signing in again.
function signOutToOverview() {
  signOut();
  location.hash = '#/';
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

// index.html paints a static top bar while the modules load; the app replaces it.
const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
