// Runs a plan of browser steps in Debian's Chromium and checks pages with axe-core.
//
// PLAN (JSON): [{"goto": url} | {"fill": {selector: value}} | {"check": selector} |
//               {"click": selector (a navigation)} | {"axe": "page name"}]. Prints {"checked": [...], "violations": {name: [...]}}
// and exits non-zero if a step fails. Violations are reported, not judged: the caller asserts.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

async function main() {
  const plan = JSON.parse(process.env.PLAN);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const checked = [];
  const violations = {};
  for (const step of plan) {
    if (step.goto) {
      await page.goto(step.goto);
    } else if (step.fill) {
      for (const [selector, value] of Object.entries(step.fill)) await page.fill(selector, value);
    } else if (step.check) {
      await page.check(step.check);
    } else if (step.click) {
      await Promise.all([page.waitForNavigation(), page.click(step.click)]);
    } else if (step.axe) {
      // The page's CSP forbids inline script; axe is injected by the test driver, which the
      // browser allows for automation (it bypasses page CSP through the DevTools protocol).
      await page.addScriptTag({ content: axeSource }).catch(async () => {
        await page.evaluate(axeSource);
      });
      const result = await page.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
        return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')) }));
      });
      checked.push({ name: step.axe, url: page.url(), lang: await page.getAttribute('html', 'lang') });
      violations[step.axe] = result;
    }
  }
  await browser.close();
  console.log(JSON.stringify({ checked, violations }));
}

main().catch(e => { console.error(e.stack || String(e)); process.exit(1); });
