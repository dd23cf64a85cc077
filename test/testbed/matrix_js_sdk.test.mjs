// SPDX-License-Identifier: Apache-2.0
// matrix-js-sdk 43 as the client of the daemon, through nginx over TLS on the testbed (run by
// test/clients/run_matrix_js_sdk.py, which passes the testbed in MRTC_TB). The bodies carry
// the client's claimed_device_id (LivekitRtcMember): the homeserver's own device when hs1.test's
// daemon checks tokens with whoami, the only device there is when it runs behind the Synapse
// stand-in in application-service mode.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import { after, before, test } from 'node:test';
import { dispose, Room, RoomEvent } from '@livekit/rtc-node';
import { TokenVerifier } from 'livekit-server-sdk';
import { createClient, HttpApiEvent, MatrixError } from 'matrix-js-sdk';
import { isLivekitTransportConfig } from 'matrix-js-sdk/lib/matrixrtc/LivekitTransport.js';
import { computeRtcIdentityRaw } from 'matrix-js-sdk/lib/matrixrtc/membershipData/rtc.js';

const TB = JSON.parse(process.env.MRTC_TB);
const SLOT = 'm.call#ROOM';

// fetch for the library: the testbed's names are not in the system resolver, so connections go
// to the testbed's address for the name while URL, Host and SNI stay the name.
function testbedFetch(input, init = {}) {
  const url = new URL(input instanceof URL || typeof input === 'string' ? input : input.url);
  const address = TB.addresses[url.hostname];
  return new Promise((resolve, reject) => {
    const headers = Object.fromEntries(new Headers(init.headers || {}).entries());
    const req = https.request(url, {
      method: init.method || 'GET', headers, signal: init.signal,
      lookup: (host, opts, cb) => (opts && opts.all ? cb(null, [{ address, family: 4 }])
        : cb(null, address, 4)),
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) h.set(k, [].concat(v).join(', '));
        const body = [204, 304].includes(res.statusCode) ? null : Buffer.concat(chunks);
        resolve(new Response(body, { status: res.statusCode, headers: h }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (init.body) req.write(init.body);
    req.end();
  });
}

function client(token, userId, deviceId) {
  const c = createClient({ baseUrl: 'https://hs1.test', accessToken: token, userId, deviceId,
                           fetchFn: testbedFetch });
  c.loggedOut = 0;
  c.on(HttpApiEvent.SessionLoggedOut, () => { c.loggedOut += 1; });
  return c;
}

function roomHash(roomId, slotId) {
  return crypto.createHash('sha256').update(JSON.stringify([roomId, slotId])).digest('base64')
    .replace(/=+$/, '');
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', body: JSON.stringify(body),
                               headers: { 'content-type': 'application/json' } });
  return r.json();
}

let alice;
let bob;
before(() => {
  alice = client('tok_alice', '@alice:hs1.test', 'ALICEDEV');
  bob = client('tok_bob', '@bob:hs1.test', 'BOBDEV');
});
after(async () => {
  alice.stopClient();
  bob.stopClient();
  await dispose();
});

// Joins LiveKit's own server of @server (its signalling port on loopback) with @jwt, as LiveKit's
// own client (@livekit/rtc-node); resolves to the connected Room.
async function join(server, jwt) {
  const room = new Room();
  room.left = false;
  room.on(RoomEvent.Disconnected, () => { room.left = true; });
  await room.connect(TB.livekit_ws[server], jwt, { autoSubscribe: false, dynacast: false });
  return room;
}

async function verifyToken(jwt, server, roomId, member, publish) {
  const claims = await new TokenVerifier(TB.livekit_key, TB.secrets[server]).verify(jwt);
  assert.equal(claims.video.room, roomHash(roomId, SLOT));
  assert.equal(claims.sub, await computeRtcIdentityRaw('@alice:hs1.test', 'ALICEDEV', member));
  assert.equal(claims.video.roomJoin, true);
  assert.equal(claims.video.canPublish, publish); // a remote server's token only subscribes
  assert.equal(claims.video.canSubscribe, true);
  return claims;
}

test('the first advertised transport is a LiveKit transport config for the library', async () => {
  const transports = await alice._unstable_getRTCTransports();
  assert.ok(Array.isArray(transports) && transports.length > 0, JSON.stringify(transports));
  assert.ok(isLivekitTransportConfig(transports[0]),
            `not a LiveKit transport config: ${JSON.stringify(transports[0])}`);
  assert.equal(typeof transports[0].livekit_service_url, 'string');
});

test('a token for our SFU, verified by livekit-server-sdk and accepted by LiveKit', async () => {
  const answer = await alice._unstable_getLivekitToken({
    url: 'wss://sfu.hs1.test', room_id: '!call:hs1.test', slot_id: SLOT,
    member: { id: 'js1', claimed_device_id: 'ALICEDEV' } });
  assert.equal(typeof answer.jwt, 'string');
  await verifyToken(answer.jwt, 'hs1.test', '!call:hs1.test', 'js1', true);
  await assert.rejects(new TokenVerifier(TB.livekit_key, TB.secrets['hs2.test']).verify(answer.jwt));
  const room = await join('hs1.test', answer.jwt); // and LiveKit's server lets it join
  assert.equal(room.name, roomHash('!call:hs1.test', SLOT));
  await room.disconnect();
});

test("a token for hs2.test's SFU over federation, verified and accepted by its LiveKit", async () => {
  const answer = await alice._unstable_getLivekitToken({
    url: 'wss://sfu.hs2.test', room_id: '!call:hs2.test', slot_id: SLOT,
    member: { id: 'js2', claimed_device_id: 'ALICEDEV' },
    server_name: 'hs2.test' });
  assert.equal(typeof answer.jwt, 'string');
  await verifyToken(answer.jwt, 'hs2.test', '!call:hs2.test', 'js2', false);
  const room = await join('hs2.test', answer.jwt); // hs2's LiveKit lets it join
  assert.equal(room.name, roomHash('!call:hs2.test', SLOT));
  await room.disconnect();
});

async function refused(c, body, httpStatus, errcode) {
  await assert.rejects(c._unstable_getLivekitToken(body), (e) => {
    assert.ok(e instanceof MatrixError, String(e));
    assert.equal(e.httpStatus, httpStatus, e.message);
    assert.equal(e.errcode, errcode, e.message);
    return true;
  });
}

test('refusals are MatrixErrors and the client stays logged in', async () => {
  const body = { url: 'wss://sfu.hs1.test', room_id: '!call:hs1.test', slot_id: SLOT,
                 member: { id: 'js3', claimed_device_id: 'ALICEDEV' } };
  await refused(bob, { ...body, member: { id: 'js3', claimed_device_id: 'BOBDEV' } }, 403,
                'M_FORBIDDEN');
  await refused(alice, { ...body, url: 'wss://sfu.elsewhere.test' }, 400, 'M_INVALID_PARAM');
  await refused(alice, { ...body, room_id: '!call:hs2.test', url: 'wss://sfu.hs2.test',
                         server_name: 'nosuchname.test' }, 502, 'M_UNKNOWN');
  assert.equal(alice.loggedOut, 0);
  assert.equal(bob.loggedOut, 0);
  assert.equal(bob.isLoggedIn(), true);
  assert.equal(alice.isLoggedIn(), true);
  // still usable afterwards
  await alice._unstable_getLivekitToken(body);
});

test('a delegated delayed leave is sent once after the participant leaves LiveKit', async () => {
  const delayId = 'de_js_alice';
  await post(`${TB.hs1_control}/_test/delayed`, { delay_id: delayId, delay: 3600000,
                                                  user_id: '@alice:hs1.test', room_id: '!call:hs1.test',
                                                  state: 'scheduled' });
  const body = { url: 'wss://sfu.hs1.test', room_id: '!call:hs1.test', slot_id: SLOT,
                 member: { id: 'js4', claimed_device_id: 'ALICEDEV' }, delay_id: delayId };
  const { jwt } = await alice._unstable_getLivekitToken(body);
  assert.deepEqual(await alice._unstable_delegateDelayedLeave(body), {});
  const actions = async () => {
    const r = await fetch(`${TB.hs1_control}/_test/delayed`);
    const ev = (await r.json())[delayId] || {};
    return [(ev.actions || []).map((a) => a.action), ev];
  };
  const waitFor = async (cond, ms = 10000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await cond()) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return cond();
  };
  const room = await join('hs1.test', jwt); // a real participant on LiveKit's own server
  assert.ok(await waitFor(async () => (await actions())[0].includes('restart')), 'no restart');
  await new Promise((r) => setTimeout(r, 800));
  assert.equal((await actions())[0].includes('send'), false);
  await room.disconnect(); // LiveKit's participant_left webhook, or the next poll
  assert.ok(await waitFor(async () => (await actions())[0].includes('send')), 'no send');
  await new Promise((r) => setTimeout(r, 1500));
  const [acts, ev] = await actions();
  assert.equal(acts.filter((a) => a === 'send').length, 1, JSON.stringify(acts));
  assert.equal(ev.state, 'sent');
  assert.equal(alice.loggedOut, 0);
});

test('the logged-out listener works: a token the homeserver rejects does log the client out',
     async () => {
  const nobody = client('tok_nobody', '@nobody:hs1.test', 'NOBODYDEV');
  await assert.rejects(nobody._unstable_getRTCTransports(), (e) => {
    assert.ok(e instanceof MatrixError, String(e));
    assert.equal(e.httpStatus, 401, e.message);
    assert.equal(e.errcode, 'M_UNKNOWN_TOKEN', e.message);
    return true;
  });
  assert.equal(nobody.loggedOut, 1);
  nobody.stopClient();
});
