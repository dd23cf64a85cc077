// SPDX-License-Identifier: Apache-2.0
// LiveKit's own clients for the suites against the real LiveKit server: participants joined with
// @livekit/rtc-node (LiveKit's Rust SDK in Node) and the server's RoomService through
// livekit-server-sdk's RoomServiceClient. One JSON command per stdin line, one JSON answer per
// stdout line, prefixed with "@@ " (rtc-node writes its own log lines to stdout). Not product
// code.
//   {"op":"join","id":I,"url":U,"token":T,"publish":bool}  -> {"ok":true,"identity":..,"room":..}
//                                                             | {"ok":false,"error":E}
//   {"op":"leave","id":I}                                  -> {"ok":true}
//   {"op":"state","id":I}   -> {"connected":bool,"disconnected":bool,"reason":R|null,
//                              "remotes":[identity...],"subscribed":[identity...]}
//   {"op":"rooms","url":U,"key":K,"secret":S}               -> {"rooms":[Room...]}
//   {"op":"participants","url":U,"key":K,"secret":S,"room":R} -> {"participants":[...]}
//   {"op":"delete_room","url":U,"key":K,"secret":S,"room":R}  -> {"ok":true}
import readline from 'node:readline';
import { AudioFrame, AudioSource, DisconnectReason, LocalAudioTrack, Room, RoomEvent, TrackPublishOptions,
         TrackSource } from '@livekit/rtc-node';
import { RoomServiceClient } from 'livekit-server-sdk';

const rooms = new Map(); // id -> { room, state }
const plain = (x) => JSON.parse(JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? Number(v) : v)));

async function join(cmd) {
  const room = new Room();
  const st = { connected: false, disconnected: false, reason: null, subscribed: new Set() };
  room.on(RoomEvent.Disconnected, (reason) => {
    st.disconnected = true;
    st.reason = reason === undefined ? null : (DisconnectReason[reason] ?? reason);
  });
  room.on(RoomEvent.TrackSubscribed, (track, pub, p) => st.subscribed.add(p.identity));
  rooms.set(cmd.id, { room, st });
  try {
    await room.connect(cmd.url, cmd.token, { autoSubscribe: true, dynacast: false });
  } catch (e) {
    rooms.delete(cmd.id);
    return { ok: false, error: String(e.message || e) };
  }
  st.connected = true;
  if (cmd.publish) {
    // A microphone track carrying silence, so that the others have something to subscribe to.
    const source = new AudioSource(48000, 1);
    const track = LocalAudioTrack.createAudioTrack('mic', source);
    const opts = new TrackPublishOptions();
    opts.source = TrackSource.SOURCE_MICROPHONE;
    await room.localParticipant.publishTrack(track, opts);
    const frame = () => source.captureFrame(new AudioFrame(new Int16Array(480), 48000, 1, 480))
      .catch(() => {});
    st.timer = setInterval(frame, 10);
  }
  return { ok: true, identity: room.localParticipant.identity, room: room.name };
}

async function handle(cmd) {
  if (cmd.op === 'join') return join(cmd);
  if (cmd.op === 'leave') {
    const r = rooms.get(cmd.id);
    if (r) { clearInterval(r.st.timer); await r.room.disconnect(); rooms.delete(cmd.id); }
    return { ok: true };
  }
  if (cmd.op === 'state') {
    const r = rooms.get(cmd.id);
    if (!r) return { error: 'no such participant' };
    return { connected: r.st.connected && r.room.isConnected, disconnected: r.st.disconnected,
             reason: r.st.reason, remotes: [...r.room.remoteParticipants.keys()],
             subscribed: [...r.st.subscribed] };
  }
  const svc = new RoomServiceClient(cmd.url, cmd.key, cmd.secret);
  if (cmd.op === 'rooms') return { rooms: plain(await svc.listRooms()) };
  if (cmd.op === 'participants') return { participants: plain(await svc.listParticipants(cmd.room)) };
  if (cmd.op === 'delete_room') { await svc.deleteRoom(cmd.room); return { ok: true }; }
  return { error: 'unknown op' };
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let out;
  try {
    out = await handle(JSON.parse(line));
  } catch (e) {
    out = { error: String(e.message || e) };
  }
  process.stdout.write('@@ ' + JSON.stringify(out) + '\n');
}
for (const r of rooms.values()) await r.room.disconnect().catch(() => {});
process.exit(0);
