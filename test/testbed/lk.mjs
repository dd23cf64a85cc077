// SPDX-License-Identifier: Apache-2.0
// livekit-server-sdk as an independent implementation for the token tests. One JSON command per
// stdin line, one JSON answer per stdout line:
//   {"op":"verify","token":T,"key":K,"secret":S}            -> {"ok":true,"claims":{...}} | {"ok":false,"error":E}
//   {"op":"webhook","key":K,"secret":S,"body":B,"ttl":N}     -> {"token":T}  (LiveKit's webhook signing)
//   {"op":"identity","user":U,"device":D,"member":M}        -> {"identity":I}  (matrix-js-sdk 43 itself)
//   {"op":"transport","transport":T}                        -> {"accepted":bool}  (matrix-js-sdk 43's
//                                                              isLivekitTransportConfig)
import crypto from 'node:crypto';
import readline from 'node:readline';
import { AccessToken, TokenVerifier } from 'livekit-server-sdk';
import { computeRtcIdentityRaw } from 'matrix-js-sdk/lib/matrixrtc/membershipData/rtc.js';
import { isLivekitTransportConfig } from 'matrix-js-sdk/lib/matrixrtc/LivekitTransport.js';

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const cmd = JSON.parse(line);
  let out;
  if (cmd.op === 'verify') {
    try {
      out = { ok: true, claims: await new TokenVerifier(cmd.key, cmd.secret).verify(cmd.token) };
    } catch (e) {
      out = { ok: false, error: String(e.code || e.message || e) };
    }
  } else if (cmd.op === 'webhook') {
    const at = new AccessToken(cmd.key, cmd.secret, { ttl: cmd.ttl || 600 });
    at.sha256 = crypto.createHash('sha256').update(cmd.body).digest('base64');
    out = { token: await at.toJwt() };
  } else if (cmd.op === 'identity') {
    out = { identity: await computeRtcIdentityRaw(cmd.user, cmd.device, cmd.member) };
  } else if (cmd.op === 'transport') {
    out = { accepted: isLivekitTransportConfig(cmd.transport) };
  } else {
    out = { error: 'unknown op' };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
