// Times each console screen's first load in headless Chromium (bench/console.sh runs it).
// For each screen: a new browser context (no cache), the session put in sessionStorage before
// the page's scripts run, then navigation to the screen. Reports, in ms from the navigation's
// start: the first contentful paint, and "ready", the last change to the page before the
// network went idle (the screen drawn with its data: a MutationObserver records the time of
// every change). Usage: node bench/console-paint.mjs BASE TOKEN RUNS 'route1' …  (JSON lines)
import { launch } from './chromium.mjs';

const [base, token, runs, ...routes] = process.argv.slice(2);
const browser = await launch();
for (let run = 1; run <= Number(runs); run++) {
  for (const route of routes) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript((session) => {
      sessionStorage.setItem('wharf.session', session);
      window.__lastChange = 0;
      new MutationObserver(() => { window.__lastChange = performance.now(); })
        .observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
    }, JSON.stringify({ token, clientId: 'bench', expiresAt: Date.now() + 3600e3 }));
    const page = await context.newPage();
    await page.goto(`${base}/${route}`, { waitUntil: 'networkidle' });
    const ready = await page.evaluate(() => window.__lastChange);
    const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
    const rows = await page.evaluate(() => document.querySelectorAll('#main tbody tr').length);
    console.log(JSON.stringify({ run, route, fcp_ms: fcp && Math.round(fcp * 10) / 10, ready_ms: Math.round(ready * 10) / 10, rows }));
    await context.close();
  }
}
await browser.close();
