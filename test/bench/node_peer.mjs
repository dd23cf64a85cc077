// SPDX-License-Identifier: Apache-2.0
// The benchmark's Node peer: what a user writes instead of the daemon, with the daemon's
// per-request work on warm caches -- parse the JSON body, look up the access token by its
// SHA-256 (whoami cache) and the membership, hash the LiveKit room name and identity with
// SHA-256 and mint the participant token with LiveKit's own livekit-server-sdk (HS256).
//   node node_peer.mjs PORT
// Known tokens: "tok_b" (@bench:hs1.test, device BD) and "wild_<n>" (@wild_<n>:hs1.test,
// device WILD, joined to every room).
import { createHash } from 'node:crypto';
import http from 'node:http';
import { AccessToken } from '../testbed/node_modules/livekit-server-sdk/dist/index.js';

const port = Number(process.argv[2]);
const sha = (s) => createHash('sha256').update(s).digest();
const auth = new Map(); // token digest -> whoami
const membership = new Map(); // room|user -> joined

function whoami(token) {
	const key = sha(token).toString('base64');
	let who = auth.get(key);
	if (!who) {
		if (token === 'tok_b') who = { user_id: '@bench:hs1.test', device_id: 'BD' };
		else if (/^wild_[0-9]+$/.test(token)) who = { user_id: `@${token}:hs1.test`, device_id: 'WILD' };
		else return null;
		auth.set(key, who);
	}
	return who;
}

function joined(room, user) {
	const key = `${room}|${user}`;
	let j = membership.get(key);
	if (j === undefined) membership.set(key, (j = true));
	return j;
}

const b64url = (buf) => buf.toString('base64url');

function send(res, status, obj) {
	const body = JSON.stringify(obj);
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
	res.end(body);
}

http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', async () => {
		const h = req.headers.authorization || '';
		const who = h.startsWith('Bearer ') ? whoami(h.slice(7)) : null;
		if (!who) return send(res, 401, { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown access token' });
		let f;
		try {
			f = JSON.parse(Buffer.concat(chunks).toString());
		} catch {
			return send(res, 400, { errcode: 'M_NOT_JSON', error: 'Body is not valid JSON' });
		}
		if (typeof f.room_id !== 'string' || typeof f.slot_id !== 'string' || typeof f.member_id !== 'string')
			return send(res, 400, { errcode: 'M_BAD_JSON', error: 'Missing fields' });
		if (!joined(f.room_id, who.user_id))
			return send(res, 403, { errcode: 'M_FORBIDDEN', error: 'Not a member' });
		const room = b64url(sha(JSON.stringify([f.room_id, f.slot_id])));
		const identity = b64url(sha(JSON.stringify([who.user_id, who.device_id, f.member_id])));
		const at = new AccessToken('bench_key', 'bench_secret_bench_secret_bench_secret', { identity, ttl: 3600 });
		at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
		send(res, 200, { jwt: await at.toJwt() });
	});
}).listen(port, '127.0.0.1');
