# SPDX-License-Identifier: Apache-2.0
"""Abuse of the real daemon, as an attacker would try it from one machine, over real sockets:
a slowloris client cut by the whole-request deadline, ambiguous request framing refused, the
SQLite store created 0600, descriptor exhaustion that neither spins nor floods the log, connection
caps, /readyz timing as README states it, client hang-ups that cancel their outbound work, key
fetches capped, operator URLs capped, and the membership watch over 5 000 participants.

Issue 16's findings and where each is tested:
  1 key-fetch amplification   test_key_fetches_capped*, integration-flood (test_flood.py)
  2 hang-ups                   test_hangups_cancel_outbound_work
  3 delegation abuse           test_legacy.py: minimum delay, delay URL resolved and guarded;
                               test_delayed.py: minimum delay, give-up after failing
  4 federation deadline        test_federation_io.py: test_one_deadline_covers_wellknown_redirects
  5 direct listener            test_slowloris_cut_by_whole_request_deadline,
                               test_ambiguous_framing_refused
  6 SQLite store mode          test_sqlite_store_is_private
  7 silent truncation          test_overlong_operator_urls_refused
  8 Redis guarded flag         test_delayed.py: test_store_round_trips_every_field
  9 membership watch           test_watch_walks_every_participant
  10 connected participant     test_delayed.py: test_failing_homeserver_does_not_drop_...
  11 readiness timing          test_readyz_homeserver_check_after_three_intervals

Usage: test_abuse.py <mrtc-transportd>
"""
import json
import os
import re
import resource
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Daemon, free_port, get_json, post_json  # noqa: E402

BINARY = None
SECRET = "integration-secret-0123456789abcdef"
BASE_ENV = {"LIVEKIT_URL": "wss://sfu.example.org", "LIVEKIT_KEY": "devkey",
            "LIVEKIT_SECRET": SECRET}
KEY_LINE = "ed25519 a_1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n"
HOMESERVER = os.path.join(os.path.dirname(HERE), "testbed", "homeserver.py")
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))


def raw(d, data, timeout=5):
    """Sends @data on a new connection to the daemon's main listener; returns all it answers."""
    with socket.create_connection((d.host, d.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
        return out


def parse(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers, body


class Homeserver:
    """The testbed's homeserver (test/testbed/homeserver.py) on a free loopback port."""

    def __init__(self, state):
        self.dir = tempfile.TemporaryDirectory(prefix="abuse-hs-")
        self.key = os.path.join(self.dir.name, "signing.key")
        with open(self.key, "w") as f:
            f.write(KEY_LINE)
        st = os.path.join(self.dir.name, "state.json")
        with open(st, "w") as f:
            json.dump(state, f)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", HOMESERVER, "--port", str(self.port), "--server-name",
             "hs1.test", "--signing-key", self.key, "--state", st],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("homeserver.py did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.stop()
        self.dir.cleanup()


def homeserver_env(hs):
    return dict(BASE_ENV, MRTC_SERVER_NAME="hs1.test", MRTC_HOMESERVER_URL=hs.url,
                MRTC_PUBLIC_BASE_URL="https://hs1.test",
                MRTC_SIGNING_KEY_FILE=hs.key, MRTC_HOMESERVER_ADMIN_TOKEN="admin-token")


class Abuse(unittest.TestCase):
    def daemon(self, env=None, **kw):
        d = Daemon(BINARY, dict(BASE_ENV, **(env or {})), name="abuse", **kw)
        self.addCleanup(d.close)
        return d

    def count_limited(self, conns, wait):
        """How many of @conns were answered (within @wait s each) with 429 M_LIMIT_EXCEEDED;
        any other answer fails the test."""
        n = 0
        for c in conns:
            c.settimeout(wait)
            try:
                status, _, data = parse(c.recv(65536))
            except socket.timeout:
                continue
            self.assertEqual((status, json.loads(data)["errcode"]), (429, "M_LIMIT_EXCEEDED"))
            n += 1
        return n

    def stopped_cleanly(self, d):
        rc = d.stop()
        logs = d.logs()
        self.assertEqual(rc, 0, logs[-3000:])
        self.assertNotIn(SECRET, logs)
        return logs

    # -- finding 5: the direct listener ---------------------------------------------------------
    def test_slowloris_cut_by_whole_request_deadline(self):
        d = self.daemon({"MRTC_CLIENT_TIMEOUT": "2"}).start()
        s = socket.create_connection((d.host, d.port), timeout=5)
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed_after = None
        try:
            while time.monotonic() - start < 8:
                # One byte every 0.5 s: well inside the per-byte timeout of 2 s.
                time.sleep(0.5)
                try:
                    s.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    closed_after = time.monotonic() - start
                    break
                s.settimeout(0.01)
                try:
                    if s.recv(4096) == b"":
                        closed_after = time.monotonic() - start
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed_after = time.monotonic() - start
                    break
        finally:
            s.close()
        self.assertIsNotNone(closed_after, "a client sending a byte every 0.5 s was never cut")
        self.assertLess(closed_after, 3.5)
        print(f"slowloris connection closed after {closed_after:.2f} s (MRTC_CLIENT_TIMEOUT=2)")
        status, _, _ = d.request("GET", "/healthz")
        self.assertEqual(status, 200)
        logs = self.stopped_cleanly(d)
        self.assertIn("request not complete within 2s", logs)

    def test_ambiguous_framing_refused(self):
        d = self.daemon().start()
        cases = {
            "two Content-Length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Content-Length: 7\r\n\r\n{}",
            "POST, two Content-Length": b"POST /get_token HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Type: application/json\r\n"
                                        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        }
        for name, req in cases.items():
            with self.subTest(case=name):
                status, headers, body = parse(raw(d, req))
                self.assertEqual(status, 400, body)
                self.assertEqual(headers.get("content-type"), "application/json")
                self.assertEqual(headers.get("connection", "").lower(), "close")
                doc = json.loads(body)
                self.assertEqual(doc["errcode"], "M_UNKNOWN")
                self.assertIn("Content-Length", doc["error"])
        # Content-Length with Transfer-Encoding: libevent 2.1 refuses it itself, before any
        # request reaches us (its own HTML 400, then closes).
        answer = raw(d, b"POST /get_token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        status, headers, _ = parse(answer)
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("connection", "").lower(), "close")
        # Identical repeated lengths are not ambiguous.
        status, _, _ = parse(raw(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"))
        self.assertEqual(status, 200)
        self.stopped_cleanly(d)

    # -- finding 6: the SQLite store ------------------------------------------------------------
    def test_sqlite_store_is_private(self):
        tmp = tempfile.TemporaryDirectory(prefix="abuse-store-")
        self.addCleanup(tmp.cleanup)
        db = os.path.join(tmp.name, "jobs.sqlite")
        old = os.umask(0o022)
        try:
            d = self.daemon({"MRTC_STORE": f"sqlite:{db}"}).start()
        finally:
            os.umask(old)
        found = {}
        for suffix in ("", "-wal", "-shm"):
            p = db + suffix
            if os.path.exists(p):
                found[suffix or "db"] = stat.S_IMODE(os.stat(p).st_mode)
        self.stopped_cleanly(d)
        self.assertIn("db", found)
        self.assertIn("-wal", found)
        for name, mode in found.items():
            self.assertEqual(mode & 0o077, 0, f"{name} is {oct(mode)}")

    # -- descriptors ----------------------------------------------------------------------------
    def test_descriptor_exhaustion_pauses_accepting(self):
        # A connection cap above the descriptor limit, so that accept() itself runs out.
        d = self.daemon({"MRTC_INBOUND_MAX": "1000"})
        limit = 64

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        d.proc = subprocess.Popen([d.binary], env=d.env, stdout=d.log, stderr=subprocess.STDOUT,
                                  preexec_fn=low_limit)
        deadline = time.monotonic() + 10
        while True:
            try:
                if d.request("GET", "/healthz", admin=True)[0] == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, d.logs())
            time.sleep(0.05)
        held = []
        for _ in range(150):
            held.append(socket.create_connection((d.host, d.port), timeout=5))
        time.sleep(2)  # the daemon is out of descriptors the whole time
        for s in held:
            s.close()
        # The daemon answers again once the connections are gone.
        start = time.monotonic()
        while True:
            try:
                status, _, _ = d.request("GET", "/healthz", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic() - start, 10, d.logs()[-3000:])
            time.sleep(0.1)
        print(f"answering again {time.monotonic() - start:.2f} s after the connections closed")
        logs = self.stopped_cleanly(d)
        lines = logs.splitlines()
        print(f"log lines with {limit} descriptors and 150 connections held for 2 s: "
              f"{len(lines)}")
        self.assertLess(len(lines), 100, "\n".join(lines[:50]))
        self.assertIn(f"descriptor limit: {limit}", logs)
        self.assertIn("pausing accepts", logs)

    def test_inbound_connections_capped(self):
        cap = 20
        d = self.daemon({"MRTC_INBOUND_MAX": str(cap)}).start()
        held = [socket.create_connection((d.host, d.port), timeout=5) for _ in range(2 * cap)]
        self.addCleanup(lambda: [s.close() for s in held])
        time.sleep(0.5)
        closed = 0
        for s in held:
            s.settimeout(0.05)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed += 1
        print(f"{2 * cap} idle connections with MRTC_INBOUND_MAX={cap}: {closed} closed at accept")
        self.assertEqual(closed, cap)
        # The admin listener is not counted; the main one answers again once some close.
        self.assertEqual(d.request("GET", "/healthz", admin=True)[0], 200)
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                if d.request("GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        logs = self.stopped_cleanly(d)
        self.assertIn("connections open (MRTC_INBOUND_MAX)", logs)
        self.assertIn(f"connections at once: {cap} inbound", logs)

    def test_outbound_connections_capped(self):
        users = {"tok_1": {"user_id": "@u1:hs1.test", "device_id": "D1"}}
        hs = Homeserver({"users": users, "rooms": {"!r:hs1.test": {"members": {
            "@u1:hs1.test": "join"}}}})
        self.addCleanup(hs.close)
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1024)
        self.addCleanup(hole.close)
        cap = 10
        d = self.daemon(dict(homeserver_env(hs), MRTC_FEDERATION_ALLOW_CIDRS="127.0.0.0/8",
                             MRTC_OUTBOUND_MAX=str(cap), MRTC_RATE_BURST="10000",
                             MRTC_RATE_PER_SECOND="10000", MRTC_AUTH_CACHE_TTL="300",
                             MRTC_MEMBERSHIP_CACHE_TTL="300", MRTC_LOG_LEVEL="warn")).start()

        def outbound_open():
            _, _, body = d.request("GET", "/metrics", admin=True)
            return int(re.search(rb"^mrtc_outbound_connections_open (\d+)", body,
                                 re.M).group(1))

        server = f"127.0.0.1:{hole.getsockname()[1]}"
        body = json.dumps({"room_id": "!r:hs1.test", "slot_id": "m.call#ROOM",
                           "url": "wss://sfu.example.org", "member": {"id": "m"},
                           "member_id": "m", "server_name": server}).encode()
        d.request("POST", "/_matrix/client/v1/rtc/livekit/get_token", headers={
            "Authorization": "Bearer tok_1"}, body=body.replace(server.encode(), b"hs1.test"))
        req = (b"POST /_matrix/client/v1/rtc/livekit/get_token HTTP/1.1\r\nHost: x\r\n"
               b"Authorization: Bearer tok_1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        clients = []
        for _ in range(3 * cap):
            s = socket.create_connection((d.host, d.port), timeout=5)
            self.addCleanup(s.close)
            s.sendall(req)
            clients.append(s)
        limited = self.count_limited(clients, 0.3)
        opened = outbound_open()
        print(f"{3 * cap} relays to a silent server, MRTC_OUTBOUND_MAX={cap}: {opened} "
              f"outbound connections open, {limited} answered 429")
        self.assertLessEqual(opened, cap)
        self.assertGreaterEqual(limited, 2 * cap - 1)  # one may be the homeserver's keep-alive
        _, _, metrics = d.request("GET", "/metrics", admin=True)
        self.assertIn(f"mrtc_outbound_connections_max {cap}".encode(), metrics)
        refused = int(re.search(rb"^mrtc_outbound_connections_refused_total (\d+)", metrics,
                                re.M).group(1))
        self.assertGreaterEqual(refused, limited)
        for s in clients:
            s.close()
        self.stopped_cleanly(d)

    # -- finding 11: readiness timing -----------------------------------------------------------
    def test_readyz_homeserver_check_after_three_intervals(self):
        hs = Homeserver({"users": {}})
        self.addCleanup(hs.close)
        d = self.daemon(dict(homeserver_env(hs), MRTC_READINESS_INTERVAL="1",
                             MRTC_HOMESERVER_TIMEOUT="1")).start()

        def hs_check():
            _, _, body = d.request("GET", "/readyz", admin=True)
            return json.loads(body)["checks"]["homeserver"]

        deadline = time.monotonic() + 10
        while not hs_check():
            self.assertLess(time.monotonic(), deadline, d.logs())
            time.sleep(0.1)
        # Stop the homeserver right after a probe was answered: the daemon logs nothing for a
        # good probe, so wait for the check to stay true while probes come every second.
        time.sleep(1.5)
        hs.stop()
        stopped = time.monotonic()
        while hs_check():
            self.assertLess(time.monotonic() - stopped, 10)
            time.sleep(0.05)
        flipped = time.monotonic() - stopped
        logs = d.logs()
        # The first failed probe comes one interval after the last good one.
        self.assertIn("homeserver probe failed", logs)
        print(f"/readyz homeserver check false {flipped:.2f} s after the homeserver stopped "
              "(interval 1 s)")
        # The last good probe was at most one interval before the stop: three intervals after
        # it the check is false, so within (2, 3] s of the stop, plus polling slack.
        self.assertGreater(flipped, 1.9)
        self.assertLess(flipped, 3.3)
        self.stopped_cleanly(d)

    # -- finding 2: client hang-ups ---------------------------------------------------------------
    def test_hangups_cancel_outbound_work(self):
        users = {f"tok_{i}": {"user_id": f"@u{i}:hs1.test", "device_id": f"D{i}"}
                 for i in range(4)}
        hs = Homeserver({"users": users, "rooms": {"!r:hs1.test": {"members": {
            u["user_id"]: "join" for u in users.values()}}}})
        self.addCleanup(hs.close)
        # A "resident server" that accepts connections and never answers.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1024)
        self.addCleanup(hole.close)
        accepted = []
        stop = threading.Event()

        def accept_all():
            hole.settimeout(0.2)
            while not stop.is_set():
                try:
                    accepted.append(hole.accept()[0])
                except socket.timeout:
                    pass
                except OSError:
                    return

        t = threading.Thread(target=accept_all, daemon=True)
        t.start()
        self.addCleanup(lambda: [c.close() for c in accepted])
        self.addCleanup(stop.set)
        d = self.daemon(dict(homeserver_env(hs), MRTC_FEDERATION_ALLOW_CIDRS="127.0.0.0/8",
                             MRTC_FEDERATION_TIMEOUT="10", MRTC_RATE_BURST="10000",
                             MRTC_RATE_PER_SECOND="10000", MRTC_AUTH_CACHE_TTL="300",
                             MRTC_MEMBERSHIP_CACHE_TTL="300", MRTC_LOG_LEVEL="warn")).start()

        def outbound_open():
            _, _, body = d.request("GET", "/metrics", admin=True)
            m = re.search(rb"^mrtc_outbound_connections_open (\d+)", body, re.M)
            return int(m.group(1))

        idle = outbound_open()
        server = f"127.0.0.1:{hole.getsockname()[1]}"
        body = json.dumps({"room_id": "!r:hs1.test", "slot_id": "m.call#ROOM",
                           "url": "wss://sfu.example.org", "member": {"id": "m"},
                           "member_id": "m", "server_name": server}).encode()
        req = (b"POST /_matrix/client/v1/rtc/livekit/get_token HTTP/1.1\r\nHost: x\r\n"
               b"Authorization: Bearer tok_1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        # One request first, to fill the token and membership caches: the 200 below go straight
        # to the relay.
        d.request("POST", "/_matrix/client/v1/rtc/livekit/get_token", headers={
            "Authorization": "Bearer tok_1"}, body=body.replace(server.encode(), b"hs1.test"))
        clients = []
        for _ in range(200):
            s = socket.create_connection((d.host, d.port), timeout=5)
            s.sendall(req)
            clients.append(s)
        # Wait until the relays are under way (connections to the silent server).
        deadline = time.monotonic() + 10
        while outbound_open() < idle + 150:
            self.assertLess(time.monotonic(), deadline,
                            f"relays did not start: {outbound_open()} open\n{d.logs()[-3000:]}")
            time.sleep(0.1)
        peak = outbound_open()
        for s in clients:
            s.close()
        closed = time.monotonic()
        while outbound_open() > idle:
            self.assertLess(time.monotonic() - closed, 1.0,
                            f"{outbound_open()} outbound connections still open (idle {idle})")
            time.sleep(0.02)
        fell = time.monotonic() - closed
        print(f"200 relays hung up: outbound connections {peak} -> {idle} in {fell:.2f} s")
        self.stopped_cleanly(d)

    # -- finding 1: key-fetch amplification --------------------------------------------------------
    def test_key_fetches_capped(self):
        hs = Homeserver({"users": {}})
        self.addCleanup(hs.close)
        holes = []
        for _ in range(40):  # "resident servers" that accept and never answer
            h = socket.socket()
            h.bind(("127.0.0.1", 0))
            h.listen(64)
            holes.append(h)
            self.addCleanup(h.close)
        cap = 10
        d = self.daemon(dict(homeserver_env(hs), MRTC_FEDERATION_ALLOW_CIDRS="127.0.0.0/8",
                             MRTC_FEDERATION_TIMEOUT="10", MRTC_KEY_FETCH_MAX=str(cap),
                             MRTC_LOG_LEVEL="warn")).start()

        def outbound_open():
            _, _, body = d.request("GET", "/metrics", admin=True)
            return int(re.search(rb"^mrtc_outbound_connections_open (\d+)", body,
                                 re.M).group(1))

        idle = outbound_open()
        body = json.dumps({"user_id": "@u:x", "room_id": "!r:hs1.test"}).encode()
        clients = []
        for h in holes:
            origin = f"127.0.0.1:{h.getsockname()[1]}"
            auth = (f'X-Matrix origin="{origin}",destination="hs1.test",key="ed25519:a",'
                    f'sig="{"A" * 86}"')
            req = (b"POST /_matrix/federation/v1/rtc/livekit/get_token HTTP/1.1\r\n"
                   b"Host: x\r\nContent-Type: application/json\r\nAuthorization: " +
                   auth.encode() + b"\r\nContent-Length: " + str(len(body)).encode() +
                   b"\r\n\r\n" + body)
            c = socket.create_connection((d.host, d.port), timeout=5)
            c.sendall(req)
            clients.append(c)
        limited = 0
        start = time.monotonic()
        for c in clients:
            c.settimeout(max(0.05, 2 - (time.monotonic() - start)))
            try:
                answer = c.recv(65536)
            except socket.timeout:
                continue
            status, headers, data = parse(answer)
            self.assertEqual(status, 429, data)
            doc = json.loads(data)
            self.assertEqual(doc["errcode"], "M_LIMIT_EXCEEDED")
            self.assertGreater(doc["retry_after_ms"], 0)
            self.assertIn("retry-after", headers)
            limited += 1
        opened = outbound_open()
        print(f"{len(clients)} unauthenticated requests naming fresh origins, cap {cap}: "
              f"{limited} answered 429, outbound connections {opened} (idle {idle})")
        self.assertEqual(limited, len(clients) - cap)
        self.assertLessEqual(opened, idle + cap)
        # Those still waiting hang up: their fetches, waited for by nobody, are cancelled.
        for c in clients:
            c.close()
        closed = time.monotonic()
        while outbound_open() > idle:
            self.assertLess(time.monotonic() - closed, 1.0)
            time.sleep(0.02)
        self.stopped_cleanly(d)

    def test_key_fetches_capped_per_client_address(self):
        hs = Homeserver({"users": {}})
        self.addCleanup(hs.close)
        holes = []
        for _ in range(14):
            h = socket.socket()
            h.bind(("127.0.0.1", 0))
            h.listen(64)
            holes.append(h)
            self.addCleanup(h.close)
        d = self.daemon(dict(homeserver_env(hs), MRTC_FEDERATION_ALLOW_CIDRS="127.0.0.0/8",
                             MRTC_KEY_FETCH_MAX="100", MRTC_KEY_FETCH_PER_PEER="4",
                             MRTC_LOG_LEVEL="warn")).start()
        body = json.dumps({"user_id": "@u:x", "room_id": "!r:hs1.test"}).encode()

        def send(h, client):
            # As nginx on loopback passes it: the client's address last in X-Forwarded-For.
            auth = (f'X-Matrix origin="127.0.0.1:{h.getsockname()[1]}",destination="hs1.test",'
                    f'key="ed25519:a",sig="{"A" * 86}"')
            c = socket.create_connection((d.host, d.port), timeout=5)
            self.addCleanup(c.close)
            c.sendall(b"POST /_matrix/federation/v1/rtc/livekit/get_token HTTP/1.1\r\n"
                      b"Host: x\r\nAuthorization: " + auth.encode() +
                      b"\r\nX-Forwarded-For: 192.0.2.9, " + client.encode() +
                      b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            return c

        def limited(conns):
            return self.count_limited(conns, 1)

        first = [send(h, "198.51.100.1") for h in holes[:10]]
        self.assertEqual(limited(first), 6)
        # Another client address has its own allowance.
        other = [send(h, "198.51.100.2") for h in holes[10:]]
        self.assertEqual(limited(other), 0)
        for c in first + other:
            c.close()
        # An IPv6 client counts as its /64 (what one machine gets): two addresses of one /64
        # share an allowance, another /64 has its own.
        time.sleep(0.5)  # the hang-ups above cancel those fetches
        v6 = [send(h, f"2001:db8:0:1::{i + 1}") for i, h in enumerate(holes[:6])]
        self.assertEqual(limited(v6), 2)
        v6_other = [send(h, "2001:db8:0:2::1") for h in holes[6:9]]
        self.assertEqual(limited(v6_other), 0)
        for c in v6 + v6_other:
            c.close()
        self.stopped_cleanly(d)


    # -- finding 7: operator URLs are length-capped -------------------------------------------
    def test_overlong_operator_urls_refused(self):
        key = tempfile.NamedTemporaryFile("w", suffix=".key", delete=False)
        self.addCleanup(os.unlink, key.name)
        key.write(KEY_LINE)
        key.close()
        base = dict(BASE_ENV, MRTC_SERVER_NAME="hs1.test", MRTC_HOMESERVER_URL="http://hs.test",
                    MRTC_SIGNING_KEY_FILE=key.name, MRTC_HOMESERVER_ADMIN_TOKEN="admin-token",
                    MRTC_PUBLIC_BASE_URL="https://hs1.test", PATH=os.environ["PATH"])
        ok = subprocess.run([BINARY, "--check-config"], env=base, capture_output=True,
                            text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        long_path = "/" + "a" * 1100
        for var, url in (("MRTC_HOMESERVER_URL", "http://hs.test" + long_path),
                         ("LIVEKIT_URL", "wss://sfu.example.org" + long_path),
                         ("MRTC_LIVEKIT_API_URL", "https://sfu.example.org" + long_path),
                         ("MRTC_PUBLIC_BASE_URL", "https://hs1.test" + long_path)):
            with self.subTest(var=var):
                r = subprocess.run([BINARY, "--check-config"], env=dict(base, **{var: url}),
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(f"{var}: longer than 1024 characters", r.stderr)
        # 1024 characters exactly are accepted.
        edge = "http://hs.test/" + "a" * (1024 - len("http://hs.test/"))
        r = subprocess.run([BINARY, "--check-config"], env=dict(base, MRTC_HOMESERVER_URL=edge),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- finding 9: the membership watch walks every participant -------------------------------
    def test_watch_walks_every_participant(self):
        from concurrent.futures import ThreadPoolExecutor
        import http.client
        from testbed import Testbed
        n, period = 5000, 10
        room = "!big:hs1.test"
        members = {f"@wild_{i}:hs1.test": "join" for i in range(n)}
        tb = Testbed(state={"hs1.test": {"wildcard_users": True,
                                         "rooms": {room: {"members": members}}}}).start()
        failed = True
        try:
            hs1 = tb.hs("hs1.test")
            d = Daemon(BINARY, tb.mrtc_env(
                hs1, MRTC_MEMBERSHIP_BACKEND="msc4502", MRTC_APPSERVICE_TOKEN=hs1.appservice_token,
                MRTC_MEMBERSHIP_RECHECK=str(period), MRTC_MEMBERSHIP_CACHE_TTL="0",
                MRTC_STORE="sqlite:" + tb.path("watch.db"), MRTC_LOG_LEVEL="warn",
                MRTC_TOKEN_TTL="3600"), name="abuse-watch", host=tb.svc).start()
            self.addCleanup(d.close)
            body = json.dumps({"room_id": room, "slot_id": "m.call#ROOM",
                               "url": hs1.livekit_url, "member": {"id": "m"},
                               "member_id": "m"})
            local = threading.local()
            conns = []

            def mint(i, attempt=0):
                if not hasattr(local, "conn"):
                    local.conn = http.client.HTTPConnection(d.host, d.port, timeout=30)
                    conns.append(local.conn)
                local.conn.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                                   body=body, headers={"Authorization": f"Bearer wild_{i}",
                                                       "Content-Type": "application/json"})
                resp = local.conn.getresponse()
                resp.read()
                if resp.status == 502 and attempt < 3:  # the test homeserver, overloaded
                    time.sleep(0.5)
                    return mint(i, attempt + 1)
                return resp.status

            start = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(mint, range(n)))
            for c in conns:
                c.close()
            print(f"{n} participants admitted in {time.monotonic() - start:.1f} s")
            self.assertEqual(statuses.count(200), n, {s: statuses.count(s) for s in statuses})
            # The last one admitted leaves the Matrix room.
            post_json(hs1.sfu_url + "/_test/calls", {})
            post_json(hs1.hs_url + "/_test/patch", {"room": room, "member": f"@wild_{n - 1}:hs1.test",
                                                    "membership": "leave"})
            left = time.monotonic()

            def removed():
                return [c for c in get_json(hs1.sfu_url + "/_test/calls")["calls"]
                        if c["method"] == "RemoveParticipant"]
            while not removed():
                self.assertLess(time.monotonic() - left, 2 * period + 5,
                                f"not removed from the SFU\n{d.logs()[-2000:]}")
                time.sleep(0.2)
            took = time.monotonic() - left
            print(f"participant {n - 1} of {n} removed from the SFU {took:.1f} s after leaving "
                  f"(watch period {period} s)")
            self.assertLess(took, 2 * period)
            self.assertEqual(len(removed()), 1)
            self.stopped_cleanly(d)
            failed = False
        finally:
            tb.stop(failed=failed)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
