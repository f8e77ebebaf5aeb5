// Headless Chromium as the console benchmarks launch it (bench/console-paint.mjs,
// bench/console-coop.mjs): playwright-core from PLAYWRIGHT_CORE, the browser from CHROMIUM
// (default /usr/bin/chromium), nothing in the background that would share the cores.
import { createRequire } from 'node:module';
const require = createRequire(process.env.PLAYWRIGHT_CORE || import.meta.url);
const { chromium } = require('playwright-core');

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}
