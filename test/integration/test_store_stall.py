# SPDX-License-Identifier: Apache-2.0
"""A stalled Redis never stalls the event loop (issue 17's acceptance).

One daemon on the testbed's Redis with 1 000 delegated delayed-leave jobs (made through the
delegate endpoint); then redis-server is stopped with SIGSTOP (connections stay open, nothing
answers: every command waits for its timeout) for longer than the lease TTL, and local
`get_token` is measured with wrk at 64 connections meanwhile, from the client side. The p99
must stay under 10 ms (a loaded machine whose baseline p99, measured just before with Redis
running, is itself over 5 ms: under twice that plus 10 ms; a sanitizer build: under 250 ms or
that, whichever is larger). After SIGCONT
nothing is lost: every one of the 1 000 jobs is driven again (its delayed event restarted after
the SIGCONT) and still stored in Redis.

Usage: test_store_stall.py <mrtc-transportd>
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import Daemon, get_json as get  # noqa: E402
import wrkrun  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
N_JOBS = 1000
N_USERS = 10
CONNS = 64
SECONDS = 4
P99_MS = 10.0
P99_MS_SANITIZED = 250.0
DELAY_MS = 20000  # each job restarts its delayed event every 16 s
DELEGATE = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave"
TOKEN = "/_matrix/client/v1/rtc/livekit/get_token"

USERS = {f"tok_u{i}": {"user_id": f"@u{i}:hs1.test", "device_id": f"DEV{i}"}
         for i in range(N_USERS)}
USERS["tok_b"] = {"user_id": "@b:hs1.test", "device_id": "DEVB"}
EVENTS = {f"stall_{i}": {"user_id": f"@u{i % N_USERS}:hs1.test", "delay": DELAY_MS,
                         "state": "scheduled", "room_id": "!call:hs1.test"}
          for i in range(N_JOBS)}
STATE = {"hs1.test": {
    "users": USERS,
    "rooms": {"!call:hs1.test": {"members": {u["user_id"]: "join" for u in USERS.values()}}},
    "delayed_events": EVENTS,
    "delayed_mode": {"single": True},
}}


def sanitized(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in out


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def wrk(host, port, script, conns, seconds):
    return wrkrun.run(host, port, script, conns, seconds, timeout=5)


class StoreStall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(state=STATE).start()
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.redis = cls.tb.start_redis()
        cls.redis_proc = next(p for name, p, _ in cls.tb.procs if name == "redis")
        env = cls.tb.mrtc_env(
            cls.hs1, MRTC_STORE=cls.redis, MRTC_LEASE_TTL_MS="3000", MRTC_MIN_DELAY_MS="1000",
            MRTC_DELAYED_POLL_MS="60000", MRTC_DELAYED_CONNECT_WAIT="3600",
            MRTC_RATE_PER_SECOND="1000000", MRTC_RATE_BURST="1000000", MRTC_LOG_LEVEL="warn",
            MRTC_MEMBERSHIP_CACHE_TTL="300", MRTC_AUTH_CACHE_TTL="3600")
        cls.d = Daemon(BINARY, env, name="mrtc-stall", host=cls.tb.svc).start()
        f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        body = {"url": "wss://sfu.hs1.test", "room_id": "!call:hs1.test",
                "slot_id": "m.call#ROOM", "member_id": "m"}
        f.write(f'wrk.method = "POST"\nwrk.path = "{TOKEN}"\n'
                f'wrk.body = {json.dumps(json.dumps(body))}\n'
                'wrk.headers = { ["Authorization"] = "Bearer tok_b", '
                '["Content-Type"] = "application/json" }\n')
        f.close()
        cls.script = f.name

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.script)
        try:
            cls.redis_proc.send_signal(signal.SIGCONT)
        except OSError:
            pass
        rc = cls.d.stop()
        logs = cls.d.logs()
        cls.d.close()
        cls.tb.stop()
        problems = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                "runtime error:") if m in logs]
        if rc not in (0, None):
            problems.append(f"exit {rc}")
        if "stall_" in logs:
            problems.append("a delay_id reached the log")
        assert not problems, problems

    def redis_cli(self, *args):
        host, port = self.redis[len("redis://"):].rsplit(":", 1)
        return subprocess.run(["redis-cli", "-h", host, "-p", port, *args],
                              capture_output=True, text=True, timeout=10).stdout

    def delegate(self, i):
        body = {"url": "wss://sfu.hs1.test", "room_id": "!call:hs1.test",
                "slot_id": "m.call#ROOM", "member": {"id": f"m{i}"}, "delay_id": f"stall_{i}"}
        status, _, data = self.d.request("POST", DELEGATE, body=json.dumps(body), headers={
            "Authorization": f"Bearer tok_u{i % N_USERS}"}, timeout=30)
        return status, data

    def restarted_after(self, t):
        events = get(self.hs1.hs_url + "/_test/delayed")
        return {k for k, e in events.items() if k.startswith("stall_") and
                any(a["action"] == "restart" and a["time"] > t for a in e.get("actions", []))}

    def test_stalled_redis_does_not_stall_tokens(self):
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(self.delegate, range(N_JOBS)))
        bad = [(s, d[:200]) for s, d in results if s != 200]
        self.assertEqual(bad, [], "every delegation is taken")
        made_s = time.monotonic() - t0
        stored = int(self.redis_cli("SCARD", "mrtc:{hs1.test}:jobs").strip() or 0)
        self.assertEqual(stored, N_JOBS, "every job is in Redis before the stall")
        # Every job started (its first restart) before the stall.
        deadline = time.monotonic() + 60
        while len(self.restarted_after(0)) < N_JOBS and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(len(self.restarted_after(0)), N_JOBS)

        base = wrk(self.d.host, self.d.port, self.script, CONNS, SECONDS)
        self.redis_proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.5)
            stalled = wrk(self.d.host, self.d.port, self.script, CONNS, SECONDS)
            status, _, data = self.d.request("GET", "/readyz", admin=True, timeout=5)
            ready = json.loads(data)
            # Longer than the lease TTL: leases run out meanwhile.
            time.sleep(1.0)
        finally:
            self.redis_proc.send_signal(signal.SIGCONT)
        resumed_at = time.time()
        print(f"\n{N_JOBS} jobs delegated in {made_s:.1f} s")
        for name, r in (("Redis running", base), ("Redis stopped (SIGSTOP)", stalled)):
            print(f"local get_token, {CONNS} conn, {SECONDS} s, {name}: {r['rps']:.0f} req/s, "
                  f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']} "
                  f"{r['socket_errors']}")
        print(f"/readyz during the stall: {status} store={ready.get('store')}")
        self.assertEqual(stalled["non2xx"], 0, stalled["out"])
        self.assertEqual(base["non2xx"], 0, base["out"])
        self.assertEqual(status, 200)
        # The acceptance bound holds on a machine that serves the baseline itself well under
        # it; on a loaded one (shared CI, several suites at once) scheduling alone costs tens
        # of milliseconds, and the stall may then cost no more than the baseline's own p99
        # again (the old code blocked the loop 250 ms per Redis attempt: far over either).
        if sanitized(BINARY):
            bound = max(P99_MS_SANITIZED, 2 * base["p99"] + P99_MS)
        elif base["p99"] <= P99_MS / 2:
            bound = P99_MS
        else:
            bound = 2 * base["p99"] + P99_MS
            print(f"note: loaded machine (baseline p99 {base['p99']:.1f} ms, load average "
                  f"{loadavg()}): bound {bound:.0f} ms")
        self.assertLess(stalled["p99"], bound, stalled["out"])

        # Nothing lost: every job is driven again after SIGCONT and still stored.
        deadline = time.monotonic() + 90
        again = set()
        while time.monotonic() < deadline:
            again = self.restarted_after(resumed_at)
            if len(again) == N_JOBS:
                break
            time.sleep(1)
        print(f"jobs restarted after SIGCONT: {len(again)} of {N_JOBS}, the last "
              f"{time.time() - resumed_at:.1f} s after it")
        self.assertEqual(len(again), N_JOBS)
        stored = int(self.redis_cli("SCARD", "mrtc:{hs1.test}:jobs").strip() or 0)
        self.assertEqual(stored, N_JOBS)
        sent = [k for k, e in get(self.hs1.hs_url + "/_test/delayed").items()
                if k.startswith("stall_") and e.get("state") != "scheduled"]
        self.assertEqual(sent, [], "no leave was sent: every participant may still come")


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
