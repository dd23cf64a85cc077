# SPDX-License-Identifier: Apache-2.0
"""Soak: 100 000 mixed requests (local and remote tokens, transports, refused tokens, malformed
bodies, unknown paths, health checks, signed federation requests) straight to the daemons of the
testbed over keep-alive connections. Every answer must have its expected status. Prints RSS
before and after; with a build without ASan it must stay flat (ASan's quarantine grows RSS by
design; under ASan/LSan the testbed instead fails the run on any leak or error report).

Usage: test_soak.py <mrtc-transportd>    (MRTC_SOAK_REQUESTS overrides the count)
"""
import http.client
import json
import os
import sys
import threading
import time
import unittest


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
from testbed import Testbed, x_matrix  # noqa: E402

BINARY = None
N = int(os.environ.get("MRTC_SOAK_REQUESTS", "100000"))
THREADS = 4
USERS = {f"tok_{i}": {"user_id": f"@s{i}:hs1.test", "device_id": f"D{i}"} for i in range(20)}
MEMBERS = {u["user_id"]: "join" for u in USERS.values()}
STATE = {
    "hs1.test": {"users": USERS, "rooms": {"!r:hs1.test": {"members": MEMBERS},
                                           "!r:hs2.test": {"members": MEMBERS}}},
    "hs2.test": {"rooms": {"!r:hs2.test": {"members": dict(MEMBERS, **{"@c:hs2.test": "join"})}}},
}
FED = "/_matrix/federation/v1/rtc/livekit/get_token"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak(unittest.TestCase):
    def test_soak(self):
        asan = b"__asan_init" in open(BINARY, "rb").read()
        tb = Testbed(mrtc_binary=BINARY, state=STATE).start(
            with_daemons=True, MRTC_RATE_PER_SECOND="1000000", MRTC_RATE_BURST="1000000",
            MRTC_LOG_LEVEL="warn")
        try:
            self.run_soak(tb, asan)
        finally:
            tb.stop()

    def run_soak(self, tb, asan):
        hs1, hs2 = tb.hs("hs1.test"), tb.hs("hs2.test")
        fed_body = {"user_id": "@s1:hs1.test", "url": "wss://sfu.hs2.test",
                    "room_id": "!r:hs2.test", "slot_id": "m.call#ROOM", "member_id": "x",
                    "member": {"id": "x", "claimed_device_id": "D1"}}
        fed_auth = x_matrix(hs1.signing_key(), "hs1.test", "hs2.test", FED, fed_body)
        local = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test", "slot_id": "m.call#ROOM",
                 "member_id": "m"}
        remote = dict(local, url="wss://sfu.hs2.test", room_id="!r:hs2.test",
                      server_name="hs2.test")
        T = "/_matrix/client/v1/rtc/livekit/get_token"
        # (weight, daemon, method, path, body, headers, expected status)
        mix = [
            (60, hs1, "POST", T, local, "tok_{u}", 200),
            (10, hs1, "GET", "/_matrix/client/v1/rtc/transports", None, "tok_{u}", 200),
            (8, hs1, "POST", T, local, "nope_{u}", 401),
            (5, hs1, "POST", T, "{bad json", "tok_{u}", 400),
            (5, hs1, "GET", "/no/such/path", None, None, 404),
            (5, hs1, "GET", "/healthz", None, None, 200),
            (4, hs1, "POST", T, remote, "tok_{u}", 200),
            (3, hs2, "POST", FED, fed_body, fed_auth, 200),
        ]
        plan = [m for m in mix for _ in range(m[0])]
        errors, counts = [], [0] * THREADS

        def worker(t):
            conns = {}
            for i in range(t, N, THREADS):
                _, d, method, path, body, auth, want = plan[i % len(plan)]
                c = conns.get(d.name)
                if c is None:
                    c = conns[d.name] = http.client.HTTPConnection(d.mrtc.host, d.mrtc.port,
                                                                   timeout=30)
                headers = {}
                if auth:
                    headers["Authorization"] = (auth if auth.startswith("X-Matrix")
                                                else "Bearer " + auth.format(u=i % 20))
                data = body if isinstance(body, str) or body is None else json.dumps(body)
                try:
                    c.request(method, path, body=data, headers=headers)
                    r = c.getresponse()
                    r.read()
                    status = r.status
                except (OSError, http.client.HTTPException) as e:
                    status = repr(e)
                    conns.pop(d.name).close()
                if status != want:
                    errors.append((path, want, status))
                counts[t] += 1

        # Warm-up: caches, keys, pooled connections.
        global N
        n_total, N = N, 2000
        ths = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        [t.start() for t in ths]
        [t.join() for t in ths]
        N = n_total
        rss_before = {s.name: rss_kib(s.mrtc.proc.pid) for s in (hs1, hs2)}
        errors.clear()
        counts[:] = [0] * THREADS
        start = time.monotonic()
        ths = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        [t.start() for t in ths]
        [t.join() for t in ths]
        elapsed = time.monotonic() - start
        rss_after = {s.name: rss_kib(s.mrtc.proc.pid) for s in (hs1, hs2)}
        print(f"\nsoak: {sum(counts)} requests in {elapsed:.1f}s ({sum(counts)/elapsed:.0f}/s), "
              f"{len(errors)} unexpected; {'ASan build' if asan else 'plain build'}")
        for name in rss_before:
            print(f"soak: RSS of mrtc-transportd for {name}: {rss_before[name]} KiB before, "
                  f"{rss_after[name]} KiB after")
        self.assertEqual(sum(counts), N)
        self.assertEqual(errors[:10], [])
        if not asan:
            for name in rss_before:
                self.assertLess(rss_after[name] - rss_before[name], 4096, name)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
