// SPDX-License-Identifier: Apache-2.0
// Drives Element Call in headless Chromium for test/clients/test_element_call.py: one browser
// context per participant, each loading the widget host page of its own homeserver; the room
// state is shared between the pages here. Writes screenshots and each page's console to the
// output folder and prints one JSON line per participant. Not product code.
//
// Usage: node run.mjs CONFIG.json   (written by the test)
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = cfg.out;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const roomState = [...cfg.state];
const pages = [];
const results = [];
const sent = []; // every state event the pages sent, in order

const connections = async () => {
  let n = 0;
  for (const u of cfg.sfus) n += (await (await fetch(u + '/_test/connections')).json()).connections.length;
  return n;
};

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
         `--host-resolver-rules=${cfg.resolverRules}`,
         `--ignore-certificate-errors-spki-list=${cfg.spki}`],
});
try {
  const before = await connections();
  for (const p of cfg.participants) {
    const ctx = await browser.newContext({ viewport: { width: 1024, height: 700 } });
    await ctx.grantPermissions(['camera', 'microphone'], { origin: p.origin });
    const page = await ctx.newPage();
    const consoleLog = fs.createWriteStream(path.join(out, `console-${p.name}.log`));
    const result = { name: p.name, userId: p.userId, tokenRequests: [], delayed: [], lastAction: null };
    page.on('console', (m) => {
      const t = m.text();
      const a = t.match(/^\[host\] action (\S+)/);
      if (a) result.lastAction = a[1];
      consoleLog.write(`[${m.type()}] ${t}\n`);
    });
    page.on('pageerror', (e) => consoleLog.write(`[pageerror] ${e}\n`));
    page.on('response', (r) => {
      const kind = r.url().match(/\/(sfu\/get|get_token)$/);
      if (kind && r.request().method() === 'POST') result.tokenRequests.push([r.url(), r.status()]);
    });
    await page.exposeFunction('mrtcRoomState', () => roomState.concat(p.extraState || []));
    await page.exposeFunction('mrtcSendState', async (ev) => {
      const i = roomState.findIndex((e) => e.type === ev.type && e.state_key === ev.state_key);
      sent.push(ev);
      if (i >= 0) roomState.splice(i, 1);
      roomState.push(ev);
      for (const other of pages) if (other !== page) await other.evaluate((e) => window.mrtcFeedState?.(e), ev).catch(() => {});
    });
    await page.exposeFunction('mrtcDelayed', (ev) => { result.delayed.push(ev); });
    await page.addInitScript((c) => { window.MRTC_HOST = c; }, {
      widgetId: 'mrtc-ec-' + p.name, userId: p.userId, deviceId: p.deviceId,
      accessToken: p.accessToken, roomId: p.roomId });
    pages.push(page);
    results.push(result);
    await page.goto(`${p.origin}/_client/host.html`);
  }
  // All participants start at once: the stand-in SFU never answers the signalling, so each
  // client leaves again once its signal connection times out, and the calls must overlap.
  await sleep(5000);
  for (const [i, page] of pages.entries())
    await page.screenshot({ path: path.join(out, `${cfg.participants[i].name}-1-joining.png`) });
  // Then until every expected connection arrived and every page's token requests were answered.
  const want = before + cfg.participants.reduce((n, p) => n + p.connections, 0);
  const deadline = Date.now() + cfg.waitMs;
  while (Date.now() < deadline) {
    if (await connections() >= want && results.every((r) => r.tokenRequests.length)) break;
    await sleep(250);
  }
  await sleep(3000); // a token handed out where none should be has the time to be used
  for (const [i, page] of pages.entries())
    await page.screenshot({ path: path.join(out, `${cfg.participants[i].name}-2-end.png`) });
  for (const r of results) {
    r.stateEvents = sent.filter((e) => e.sender === r.userId);
    console.log(JSON.stringify(r));
  }
  fs.writeFileSync(path.join(out, 'sent-state.json'), JSON.stringify(sent, null, 1));
} finally {
  await browser.close();
}
