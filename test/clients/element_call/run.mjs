// SPDX-License-Identifier: Apache-2.0
// Drives Element Call in headless Chromium for test/clients/test_element_call.py: one browser
// context per participant, each loading the widget host page of its own homeserver; the room
// state is shared between the pages here. Writes screenshots and each page's console to the
// output folder and prints one JSON line per participant. Not product code.
//
// The call runs on LiveKit's own servers (behind sfu.<hs>): every RTCPeerConnection of the
// pages is recorded (in every frame) and its getStats() summarised per participant ("media");
// LiveKit's RoomService is read (ListParticipants, with room-scoped tokens from the test) once
// every page of cfg.realCall.receivers receives audio and video; then realCall.leave's page is
// closed and, once its delegated leave was sent (the homeserver's /_test/delayed), LiveKit is
// read again; both snapshots are printed as {"name":"livekit",...}.
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

// In every frame: keep each RTCPeerConnection, so that the test can read its stats.
function recordPeerConnections() {
  const Orig = window.RTCPeerConnection;
  if (!Orig) return;
  window.__mrtcPCs = [];
  window.RTCPeerConnection = function (...a) {
    const pc = new Orig(...a);
    window.__mrtcPCs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
}

// Inbound and outbound RTP of every connection in every frame of @page, with the address of
// the selected candidate pair's remote end (which LiveKit server it is).
async function media(page) {
  const out = [];
  for (const frame of page.frames()) {
    const pcs = await frame.evaluate(async () => {
      const res = [];
      for (const pc of window.__mrtcPCs || []) {
        if (pc.connectionState === 'closed') continue;
        const st = await pc.getStats();
        const entry = { state: pc.connectionState, inbound: [], outbound: [], remote: null };
        const byId = new Map();
        st.forEach((r) => byId.set(r.id, r));
        st.forEach((r) => {
          if (r.type === 'inbound-rtp') entry.inbound.push({ kind: r.kind, bytes: r.bytesReceived });
          if (r.type === 'outbound-rtp') entry.outbound.push({ kind: r.kind, bytes: r.bytesSent });
          if (r.type === 'transport' && r.selectedCandidatePairId) {
            const pair = byId.get(r.selectedCandidatePairId);
            const rc = pair && byId.get(pair.remoteCandidateId);
            if (rc) entry.remote = `${rc.address || rc.ip || ''}:${rc.port}/${rc.protocol}`;
          }
        });
        res.push(entry);
      }
      return res;
    }).catch(() => []);
    out.push(...pcs);
  }
  return out;
}
const receives = (m, kind) => m.some((pc) => pc.inbound.some((i) => i.kind === kind && i.bytes > 0));

async function listParticipants() {
  const out = {};
  for (const lk of cfg.realCall.livekit) {
    const r = await fetch(`${lk.api}/twirp/livekit.RoomService/ListParticipants`, {
      method: 'POST', body: JSON.stringify({ room: lk.room }),
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${lk.token}` } });
    out[lk.name] = r.ok ? (await r.json()).participants || [] : { status: r.status, body: await r.text() };
  }
  return out;
}

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
         `--host-resolver-rules=${cfg.resolverRules}`,
         '--allow-loopback-in-peer-connection',
         `--ignore-certificate-errors-spki-list=${cfg.spki}`],
});
try {
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
    await page.addInitScript(recordPeerConnections);
    await page.addInitScript((c) => { window.MRTC_HOST = c; }, {
      widgetId: 'mrtc-ec-' + p.name, userId: p.userId, deviceId: p.deviceId,
      accessToken: p.accessToken, roomId: p.roomId });
    pages.push(page);
    results.push(result);
    // Not waiting for "load" (Element Call's bundle in the iframe): slow on a busy machine.
    await page.goto(`${p.origin}/_client/host.html`, { waitUntil: 'domcontentloaded', timeout: 60000 });
  }
  await realCall();
  for (const r of results) {
    r.stateEvents = sent.filter((e) => e.sender === r.userId);
    console.log(JSON.stringify(r));
  }
  fs.writeFileSync(path.join(out, 'sent-state.json'), JSON.stringify(sent, null, 1));
} finally {
  await browser.close();
}

// The real call: until every page receives audio and video (or the deadline), LiveKit's view;
// then one participant's page closes (no hang-up: its delegated leave must do the work), and,
// once the homeserver saw the leave sent, LiveKit's view again.
async function realCall() {
  const rc = cfg.realCall;
  const deadline = Date.now() + cfg.waitMs;
  let m = [];
  while (Date.now() < deadline) {
    m = await Promise.all(pages.map(media));
    if (m.every((x, i) => !rc.receivers.includes(cfg.participants[i].name) ||
                          (receives(x, 'audio') && receives(x, 'video')))) break;
    await sleep(500);
  }
  await sleep(2000); // a few more seconds of media
  m = await Promise.all(pages.map(media));
  for (const [i, r] of results.entries()) r.media = m[i];
  for (const [i, page] of pages.entries())
    await page.screenshot({ path: path.join(out, `${cfg.participants[i].name}-1-call.png`) });
  const during = await listParticipants();
  const i = cfg.participants.findIndex((p) => p.name === rc.leave);
  const leftAt = Date.now();
  await pages[i].close();
  const sentAt = async () => {
    const ev = (await (await fetch(`${rc.homeserver}/_test/delayed`)).json());
    return Object.values(ev).some((e) => e.user_id === rc.leaveUser && (e.actions || []).some((a) => a.action === 'send'));
  };
  let sent = false;
  while (Date.now() < leftAt + rc.leaveWaitMs && !(sent = await sentAt())) await sleep(250);
  const sentMs = sent ? Date.now() - leftAt : null;
  await sleep(3000); // a second send would come now
  // LiveKit drops a participant whose signalling closed without a leave once it stops
  // expecting it back: wait (at most 30 s) until every server has one participant less.
  const fewer = (a) => Object.keys(during).every((k) => Array.isArray(a[k]) &&
    Array.isArray(during[k]) && a[k].length < during[k].length);
  let after = await listParticipants();
  for (const until = Date.now() + 30000; !fewer(after) && Date.now() < until; await sleep(500))
    after = await listParticipants();
  for (const [j, page] of pages.entries())
    if (j !== i) await page.screenshot({ path: path.join(out, `${cfg.participants[j].name}-2-after.png`) });
  console.log(JSON.stringify({ name: 'livekit', during, after, sentMs }));
}
