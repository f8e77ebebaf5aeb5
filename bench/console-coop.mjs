// What the console page's Cross-Origin-Opener-Policy costs its first paint in headless
// Chromium. Takes the page a running Wharf serves at BASE (its stylesheet inlined), removes
// its scripts, and serves that static copy from this process twice, with and without
// `Cross-Origin-Opener-Policy: same-origin`, beside a text document. Each is loaded in a new
// browser context, alternated, RUNS times, two ways:
// - "blank": the new tab's first navigation, as bench/console-paint.mjs loads every screen;
// - "from another site": the tab shows a page of another site first (localhost against
//   127.0.0.1), as when a user follows a link or types the address in a tab already in use.
// Prints the median first contentful paint of each (ms). Usage: node bench/console-coop.mjs BASE RUNS
import http from 'node:http';
import { launch } from './chromium.mjs';

const [base, runs = '9'] = process.argv.slice(2);
const page = (await (await fetch(`${base}/`)).text())
  .replace(/<link rel="modulepreload"[^>]*>\n?/g, '')
  .replace(/<script type="module"[^>]*><\/script>\n?/g, '')
  .replaceAll('/console/wharf.svg', '/wharf.svg');
const svg = await (await fetch(`${base}/console/wharf.svg`)).text();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const headers = {};
  if (url.searchParams.has('coop')) headers['cross-origin-opener-policy'] = 'same-origin';
  if (url.pathname === '/page') res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(page);
  else if (url.pathname === '/wharf.svg') res.writeHead(200, { 'content-type': 'image/svg+xml' }).end(svg);
  else if (url.pathname === '/text') res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  else if (url.pathname === '/other') res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><p>another site');
  else res.writeHead(404).end();
});
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const { port } = server.address();

const browser = await launch();
const variants = [['text', '/text'], ['page', '/page'], ['page + COOP', '/page?coop']];
const times = {};
for (let run = 0; run < Number(runs); run++) {
  for (const from of ['blank', 'from another site']) {
    for (const [name, path] of variants) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const tab = await context.newPage();
      if (from !== 'blank') await tab.goto(`http://localhost:${port}/other`, { waitUntil: 'load' });
      await tab.goto(`http://127.0.0.1:${port}${path}`, { waitUntil: 'networkidle' });
      const fcp = await tab.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
      (times[`${from}: ${name}`] ||= []).push(Math.round(fcp));
      await context.close();
    }
  }
}
await browser.close();
server.close();
for (const [name, all] of Object.entries(times)) {
  const sorted = [...all].sort((a, b) => a - b);
  console.log(JSON.stringify({ load: name, fcp_median_ms: sorted[Math.floor(sorted.length / 2)], all }));
}
