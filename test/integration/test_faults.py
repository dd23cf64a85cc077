# SPDX-License-Identifier: Apache-2.0
"""Fault injection on the testbed. For each fault: the right error within the deadline, no
crash, no stuck request, and service recovers when the fault is removed. The testbed fails the
suite if a daemon exits non-zero or a sanitizer reports (run under ASan+UBSan in CI).

Faults: our homeserver down, slow beyond the timeout, answering 500 or malformed JSON; the remote
homeserver slow, with a broken TLS certificate, answering garbage or a huge body; the SFU down
or slow; DNS not answering; slowloris clients; clients that disconnect mid-request; 10 000
connections opened and dropped.

SFU: the stand-in (sfu.mjs) for every test here: test_sfu_faults needs the SFU down and slow,
test_wrong_sfu_secret_is_a_clear_error a plain 401, and a real server does neither on demand.
The other tests share the same daemons; their faults are elsewhere (homeservers, DNS, clients)
and the stand-in only answers CreateRoom there, as LiveKit's server does
(integration-livekit-real checks that).

Usage: test_faults.py <mrtc-transportd>
"""
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import HttpsTo, post_json as post  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
PATH = "/_matrix/client/v1/rtc/livekit/get_token"
USERS = {f"tok_{i}": {"user_id": f"@u{i}:hs1.test", "device_id": f"D{i}"} for i in range(40)}
STATE = {
    "hs1.test": {"users": USERS,
                 "rooms": {"!r:hs1.test": {"members": {u["user_id"]: "join"
                                                       for u in USERS.values()}},
                           "!r:hs2.test": {"members": {u["user_id"]: "join"
                                                       for u in USERS.values()}}}},
    "hs2.test": {"rooms": {"!r:hs2.test": {"members": dict(
        {u["user_id"]: "join" for u in USERS.values()}, **{"@c:hs2.test": "join"})}}},
}



class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=STATE).start(
            with_daemons=True, MRTC_HOMESERVER_TIMEOUT="1", MRTC_LIVEKIT_TIMEOUT="1",
            MRTC_FEDERATION_TIMEOUT="2", MRTC_MEMBERSHIP_CACHE_TTL="0",
            MRTC_AUTH_CACHE_TTL="0", MRTC_CLIENT_TIMEOUT="2", MRTC_RATE_BURST="1000",
            MRTC_RATE_PER_SECOND="1000")
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", cls.hs1.address, 443)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop()

    def body(self, remote=None, fresh=False):
        Faults.n += 1
        b = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test",
             "slot_id": f"slot{Faults.n}" if fresh else "m.call#ROOM", "member_id": "m"}
        if remote:
            b.update(url="wss://sfu.hs2.test", room_id="!r:hs2.test", server_name=remote)
        return b

    def call(self, body, token="tok_0", timeout=30):
        start = time.monotonic()
        status, _, data = self.c1.request("POST", PATH, body=body, timeout=timeout,
                                          headers={"Authorization": f"Bearer {token}"})
        return status, json.loads(data), time.monotonic() - start

    def expect(self, status, errcode, body, within, token="tok_0"):
        got, doc, elapsed = self.call(body, token)
        self.assertEqual((got, doc.get("errcode")), (status, errcode), doc)
        self.assertLess(elapsed, within)
        return doc

    def healthy(self):
        for body in (self.body(), self.body(remote="hs2.test")):
            got, doc, _ = self.call(body)
            tail = "\n".join(self.hs1.mrtc.logs().splitlines()[-25:])
            self.assertEqual(got, 200, f"{doc}\nlast log lines of hs1's daemon:\n{tail}")

    def mode(self, url, **m):
        post(url + "/_test/mode", dict({"mode": "normal", "delay": 0}, **m))

    # -- our homeserver -----------------------------------------------------------------------
    def test_homeserver_faults(self):
        hs = self.hs1.hs_url
        for m in ({"mode": "down"}, {"delay": 3}, {"mode": "500"}, {"mode": "garbage"}):
            with self.subTest(fault=m):
                self.mode(hs, **m)
                try:
                    self.expect(502, "M_UNKNOWN", self.body(), within=2.5)
                finally:
                    self.mode(hs)
                self.healthy()

    def test_homeserver_outage_logs_one_line_per_request(self):
        """Each failed request is logged once, by its access line, with its request id and the
        cause the homeserver client passed up: no line of the component, none of the handler."""
        hs = self.hs1.hs_url
        n = 6
        for m in ({"mode": "down"}, {"mode": "500"}):
            with self.subTest(fault=m):
                before = len(self.hs1.mrtc.logs().splitlines())
                self.mode(hs, **m)
                ids = []
                try:
                    for i in range(n):
                        status, headers, _ = self.c1.request(
                            "POST", PATH, body=self.body(), timeout=30,
                            headers={"Authorization": f"Bearer tok_{i}"})
                        self.assertEqual(status, 502)
                        ids.append(headers["x-request-id"])
                finally:
                    self.mode(hs)
                time.sleep(0.3)
                new = self.hs1.mrtc.logs().splitlines()[before:]
                about = [line for line in new
                         if any(f"[{rid}]" in line for rid in ids) or "homeserver" in line]
                self.assertEqual(len(about), n, "\n".join(new))
                for rid in ids:
                    mine = [line for line in about if f"[{rid}]" in line]
                    self.assertEqual(len(mine), 1, "\n".join(new))
                    self.assertIn(" 502 ", mine[0])
                    self.assertIn("homeserver whoami call", mine[0])
                    self.assertNotIn("tok_", mine[0])
        self.healthy()

    # -- the remote homeserver ----------------------------------------------------------------
    def test_remote_faults(self):
        for server in ("wrongcert.test", "garbage.test", "huge.test"):
            with self.subTest(server=server):
                doc = self.expect(502, "M_UNKNOWN", self.body(remote=server), within=3)
                self.assertEqual(doc["error"], "Unable to reach the specified homeserver")
        self.mode(self.tb.hs("hs2.test").hs_url, delay=5)
        try:
            self.expect(502, "M_UNKNOWN", self.body(remote="hs2.test"), within=3.5)
        finally:
            self.mode(self.tb.hs("hs2.test").hs_url)
        self.healthy()

    # -- the SFU ------------------------------------------------------------------------------
    def test_sfu_faults(self):
        for m in ({"mode": "down"}, {"delay": 3}):
            with self.subTest(fault=m):
                self.mode(self.hs1.sfu_url, **m)
                try:
                    doc = self.expect(500, "M_UNKNOWN", self.body(fresh=True), within=2.5)
                    self.assertEqual(doc["error"], "Unable to create room on SFU")
                finally:
                    self.mode(self.hs1.sfu_url)
                self.healthy()
        self.assertIn("CreateRoom failed", self.hs1.mrtc.logs())

    def test_wrong_sfu_secret_is_a_clear_error(self):
        from harness import Daemon
        env = self.tb.mrtc_env(self.hs1, LIVEKIT_SECRET="not-the-sfu-secret-0123456789abcdef")
        d = Daemon(BINARY, env, name="mrtc-badsecret", host=self.tb.svc).start()
        try:
            status, _, data = d.request("POST", PATH, body=json.dumps(self.body(fresh=True)),
                                        headers={"Authorization": "Bearer tok_3"})
            self.assertEqual((status, json.loads(data)["error"]),
                             (500, "Unable to create room on SFU"))
            time.sleep(0.2)
            logs = d.logs()
            self.assertIn("SFU refused our credentials (401 text/plain", logs)
            self.assertNotIn("not-the-sfu-secret", logs)
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()

    # -- DNS ----------------------------------------------------------------------------------
    def test_dns_not_answering(self):
        dns = next(p for name, p, _ in self.tb.procs if name == "dnsmasq")
        os.kill(dns.pid, signal.SIGSTOP)
        try:
            # A name not resolved before, so nothing is cached.
            self.expect(502, "M_UNKNOWN", self.body(remote="oldsrv.test"), within=3.5)
        finally:
            os.kill(dns.pid, signal.SIGCONT)
        got, doc, _ = self.call(self.body(remote="srv.test"))
        self.assertNotEqual(got, 500)  # resolves again (then refused or served by hs2)
        self.healthy()

    # -- clients ------------------------------------------------------------------------------
    def direct(self):
        return socket.create_connection((self.hs1.mrtc.host, self.hs1.mrtc.port), timeout=10)

    def test_slowloris_clients_are_cut_off(self):
        socks = []
        for _ in range(100):
            s = self.direct()
            s.sendall(b"POST /_matrix/client/v1/rtc/livekit/get_token HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        # Others are served meanwhile.
        self.healthy()
        time.sleep(3.5)  # MRTC_CLIENT_TIMEOUT=2 here
        closed = 0
        for s in socks:
            try:
                s.settimeout(1)
                if s.recv(1024) in (b"",) or True:
                    closed += 1
            except OSError:
                closed += 1
            s.close()
        self.assertEqual(closed, 100)
        self.healthy()

    def test_clients_disconnecting_mid_request(self):
        self.mode(self.hs1.hs_url, delay=0.5)
        try:
            body = json.dumps(self.body()).encode()
            for i in range(30):
                s = self.direct()
                s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer tok_1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                time.sleep(0.02)
                s.close()  # while the daemon waits for the homeserver
            time.sleep(1.0)  # the homeserver answers for requests nobody waits for
        finally:
            self.mode(self.hs1.hs_url)
        self.assertIsNone(self.hs1.mrtc.proc.poll())
        # libevent 2.1 reads nothing more from a connection whose request is being worked on,
        # so the departure shows when the reply is written: every abandoned request still
        # ends (bounded by the outbound timeouts) and nothing is stuck or leaked.
        time.sleep(0.5)
        status, _, body = self.hs1.mrtc.request("GET", "/metrics", admin=True)
        self.assertIn("mrtc_http_requests_in_flight 1", body.decode())  # this scrape only
        self.healthy()

    def test_ten_thousand_connections_opened_and_dropped(self):
        pid = self.hs1.mrtc.proc.pid
        before = len(os.listdir(f"/proc/{pid}/fd"))

        def churn(n):
            for i in range(n):
                s = socket.create_connection((self.hs1.mrtc.host, self.hs1.mrtc.port),
                                             timeout=5)
                if i % 3 == 0:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                elif i % 3 == 1:
                    s.sendall(b"GARBAGE\r\n\r\n")
                s.close()

        threads = [threading.Thread(target=churn, args=(2500,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.healthy()
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{pid}/fd")) > before + 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertLessEqual(len(os.listdir(f"/proc/{pid}/fd")), before + 4)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
