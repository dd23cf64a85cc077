// SPDX-License-Identifier: Apache-2.0
// A test SFU: LiveKit's RoomService Twirp JSON endpoints, authenticated with the npm
// livekit-server-sdk TokenVerifier and answering with LiveKit's error shapes (Twirp JSON errors,
// plain-text 401 for bad tokens). Records every call for assertions, can send signed webhooks,
// and lets tests verify tokens with the SDK. Clients join LiveKit's own server instead
// (Testbed(livekit=True)). Not product code.
//
// Usage: node sfu.mjs --port P --key KEY --secret SECRET
import http from 'node:http';
import crypto from 'node:crypto';
import { AccessToken, TokenVerifier } from 'livekit-server-sdk';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, v, i, a) => (i % 2 ? acc : [...acc, [a[i].slice(2), a[i + 1]]]), []));
const port = Number(args.port);
const verifier = new TokenVerifier(args.key, args.secret);

const rooms = new Map(); // name -> room
const participants = new Map(); // `${room}\0${identity}` -> participant
let calls = [];
let mode = { mode: 'normal', delay: 0 };

const twirpError = (res, status, code, msg) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ code, msg }));
};
const json = (res, status, body) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
};
const readBody = (req) => new Promise((resolve) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function participantInfo(room, identity) {
  return { sid: 'PA_' + crypto.createHash('sha1').update(room + identity).digest('hex').slice(0, 12),
           identity, state: 'ACTIVE', joined_at: Math.floor(Date.now() / 1000) };
}

// method -> [check grant, handler]; grants as LiveKit's RoomService requires them.
const methods = {
  CreateRoom: [(v) => v.roomCreate === true, (b) => {
    if (!b.name) return [400, { code: 'invalid_argument', msg: 'name is required' }];
    let room = rooms.get(b.name);
    if (!room) {
      room = { sid: 'RM_' + crypto.randomBytes(6).toString('hex'), name: b.name,
               empty_timeout: b.empty_timeout ?? b.emptyTimeout ?? 300,
               departure_timeout: b.departure_timeout ?? b.departureTimeout ?? 20,
               creation_time: Math.floor(Date.now() / 1000), num_participants: 0 };
      rooms.set(b.name, room);
    }
    return [200, room];
  }],
  ListRooms: [(v) => v.roomList === true, () => [200, { rooms: [...rooms.values()] }]],
  DeleteRoom: [(v) => v.roomCreate === true, (b) => {
    if (!rooms.delete(b.room)) return [404, { code: 'not_found', msg: 'room not found' }];
    return [200, {}];
  }],
  GetParticipant: [(v, b) => v.roomAdmin === true && v.room === b.room, (b) => {
    const p = participants.get(`${b.room}\0${b.identity}`);
    if (!p) return [404, { code: 'not_found', msg: 'participant not found' }];
    return [200, p];
  }],
  RemoveParticipant: [(v, b) => v.roomAdmin === true && v.room === b.room, (b) => {
    if (!participants.delete(`${b.room}\0${b.identity}`))
      return [404, { code: 'not_found', msg: 'participant not found' }];
    return [200, {}];
  }],
  ListParticipants: [(v, b) => v.roomAdmin === true && v.room === b.room, (b) => [200, {
    participants: [...participants.entries()].filter(([k]) => k.startsWith(b.room + '\0')).map(([, p]) => p) }]],
};

async function roomService(req, res, name, raw) {
  const auth = req.headers.authorization || '';
  const call = { method: name, time: Date.now(), body: null, grant: null, status: 0 };
  calls.push(call);
  if (mode.mode === 'down') { req.socket.destroy(); return; }
  if (mode.delay) await sleep(mode.delay * 1000);
  let claims;
  try {
    if (!auth.startsWith('Bearer ')) throw new Error('authorization header not found');
    claims = await verifier.verify(auth.slice(7));
  } catch (e) {
    call.status = 401;
    res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`invalid token: ${e.message}\n`);
    return;
  }
  call.grant = claims.video || {};
  call.exp = claims.exp;
  call.nbf = claims.nbf;
  const m = methods[name];
  if (!m) { call.status = 404; return twirpError(res, 404, 'bad_route', `no handler for ${name}`); }
  let body;
  try { body = JSON.parse(raw || '{}'); } catch {
    call.status = 400; return twirpError(res, 400, 'malformed', 'the json request could not be decoded');
  }
  call.body = body;
  // As LiveKit (twirpAuthError): a grant that does not cover the call is Twirp unauthenticated.
  if (!m[0](call.grant, body)) { call.status = 401; return twirpError(res, 401, 'unauthenticated', 'permissions denied'); }
  const [status, out] = m[1](body);
  call.status = status;
  if (status === 200) json(res, 200, out); else twirpError(res, status, out.code, out.msg);
}

async function control(req, res, path, raw) {
  const b = raw ? JSON.parse(raw) : {};
  if (path === '/_test/calls') {
    const out = calls;
    if (req.method === 'POST') calls = [];
    return json(res, 200, { calls: out });
  }
  if (path === '/_test/rooms') return json(res, 200, { rooms: [...rooms.values()] });
  if (path === '/_test/mode') { mode = { mode: 'normal', delay: 0, ...b }; return json(res, 200, mode); }
  if (path === '/_test/participant') {
    const key = `${b.room}\0${b.identity}`;
    if (b.present) participants.set(key, participantInfo(b.room, b.identity)); else participants.delete(key);
    return json(res, 200, {});
  }
  if (path === '/_test/verify') {
    try { return json(res, 200, { ok: true, claims: await verifier.verify(b.token) }); }
    catch (e) { return json(res, 200, { ok: false, error: String(e.message || e) }); }
  }
  if (path === '/_test/webhook') {
    // Signs like LiveKit: a JWT (no "Bearer") whose sha256 claim is base64(SHA-256(body)).
    const body = JSON.stringify(b.event);
    const at = new AccessToken(args.key, b.secret || args.secret, { ttl: b.ttl || 600 });
    at.sha256 = b.sha256 || crypto.createHash('sha256').update(b.tamper ? body + ' ' : body).digest('base64');
    const token = await at.toJwt();
    const r = await fetch(b.url, { method: 'POST', body,
      headers: { 'Content-Type': 'application/webhook+json', Authorization: token } });
    return json(res, 200, { status: r.status, body: await r.text() });
  }
  return json(res, 404, { error: 'unknown control path' });
}

const server = http.createServer(async (req, res) => {
  const raw = await readBody(req);
  const path = new URL(req.url, 'http://x').pathname;
  try {
    if (path.startsWith('/_test/')) return await control(req, res, path, raw);
    const m = path.match(/^\/twirp\/livekit\.RoomService\/(\w+)$/);
    if (m && req.method === 'POST') return await roomService(req, res, m[1], raw);
    twirpError(res, 404, 'bad_route', 'no handler for path');
  } catch (e) {
    twirpError(res, 500, 'internal', String(e));
  }
});
server.listen(port, args.host || '127.0.0.1', () => console.log(`test SFU on ${args.host}:${port}`));
