// A partner's journey in a real browser (Debian's Chromium, driven by Playwright): open the
// form, fill it in as a person would (by the labels), submit, open the mailed link, press the
// confirm button, and land on the page with the invitation link. With JOURNEY=sign_in the
// partner presses "Continue with your work account" instead, signs in on the identity
// platform's page (the simulator's) by its label, and lands on the same page with no mail.
//
// Env: FORM_URL, MAILDIR, EMAIL, JOURNEY (optional), SCREENSHOT_DIR (optional). Prints one JSON
// line and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const { FORM_URL, MAILDIR, EMAIL, SCREENSHOT_DIR, JOURNEY } = process.env;

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Reads the newest mail to `to` from the maildir, undoing quoted-printable line folding.
function findLink(to, needle) {
  for (const sub of ['new', 'cur']) {
    const dir = join(MAILDIR, sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      const raw = readFileSync(join(dir, f), 'utf8');
      if (!raw.toLowerCase().includes(`to: ${to}`.toLowerCase())) continue;
      const text = raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      const m = text.match(new RegExp(`https?://[^\\s"<>]*${needle}[^\\s"<>]*`));
      if (m) return m[0];
    }
  }
  return null;
}

async function main() {
  const browser = await launch();
  const page = await browser.newPage();
  await page.goto(FORM_URL);
  await page.getByLabel(/email/i).fill(EMAIL);
  await page.getByLabel(/first name/i).fill('Ada');
  await page.getByLabel(/last name/i).fill('Lovelace');
  await page.getByLabel(/organi[sz]ation/i).fill('Partner AB');
  if (JOURNEY === 'sign_in') return signIn(browser, page);
  await page.locator('form button[type=submit]').click();
  await page.waitForLoadState();
  const afterSubmit = await page.locator('h1').innerText();
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, '1-check-inbox.png'), fullPage: true });

  let link = null;
  for (let i = 0; i < 100 && !link; i++) {
    link = findLink(EMAIL, '/api/signup/verify');
    if (!link) await new Promise(r => setTimeout(r, 100));
  }
  if (!link) throw new Error('no verification mail arrived');
  await page.goto(link);
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, '2-confirm.png'), fullPage: true });
  await page.locator('form button[type=submit]').click();
  await page.waitForLoadState();
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, '3-ready.png'), fullPage: true });
  const redeem = await page.locator('a[href*="redeem"]').first().getAttribute('href');
  const heading = await page.locator('h1').innerText();
  await browser.close();
  console.log(JSON.stringify({ afterSubmit, heading, redeem }));
}

async function signIn(browser, page) {
  await page.getByRole('button', { name: /work account/i }).click();
  await page.waitForLoadState();
  const signInPage = new URL(page.url()).origin;
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, '1-sign-in.png'), fullPage: true });
  await page.getByLabel(/username/i).fill(EMAIL);
  await page.getByRole('button', { name: /^sign in$/i }).click();
  await page.waitForLoadState();
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, '2-ready.png'), fullPage: true });
  const redeem = await page.locator('a[href*="redeem"]').first().getAttribute('href');
  const heading = await page.locator('h1').innerText();
  const landed = new URL(page.url()).pathname;
  await browser.close();
  console.log(JSON.stringify({ signInPage, heading, redeem, landed }));
}

main().catch(e => { console.error(e.stack || String(e)); process.exit(1); });
