# SPDX-License-Identifier: Apache-2.0
"""Several SFUs for one homeserver on the testbed: hs1's daemon has its usual SFU and a second
one (LIVEKIT_URL_2, key and secret from *_FILE), a second stand-in SFU process with a key and
secret of its own. /rtc/transports lists both in order, each with its livekit_service_url;
get_token (client-server, federation through hs2's daemon, the OpenID endpoints under each
service URL) mints for the SFU its url names, tokens checked by each SFU's livekit-server-sdk
TokenVerifier; a url of neither is 400. Rooms are created, delegated jobs polled, watched
participants removed and webhooks verified on the right SFU; /readyz and /metrics name each
SFU. Configuration problems are reported by --check-config; secrets stay out of --help.

Usage: test_sfus.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.join(os.path.dirname(HERE), "testbed")
sys.path.insert(0, TESTBED)
sys.path.insert(0, HERE)
from harness import HttpsTo, RemembersFailure, get_json as get, post_json as post  # noqa: E402
from testbed import Testbed, free_port, wait_for  # noqa: E402

BINARY = None
USERS = {f"tok_{n}": {"user_id": f"@{n}:hs1.test", "device_id": f"DEV_{n}"}
         for n in ("alice", "bob", "carol", "dave", "frank", "gina")}
MEMBERS = {u["user_id"]: "join" for u in USERS.values()}
MEMBERS["@erin:hs2.test"] = "join"
STATE = {
    "hs1.test": {"users": USERS, "openid": {"oid_alice": "@alice:hs1.test"},
                 "rooms": {"!call:hs1.test": {"members": dict(MEMBERS)}}},
    "hs2.test": {"users": {"tok_erin": {"user_id": "@erin:hs2.test", "device_id": "DEV_erin"}},
                 "rooms": {"!call:hs1.test": {"members": dict(MEMBERS)}}},
}
SFU1 = "wss://sfu.hs1.test"
SFU2 = "wss://sfu2.hs1.test"
KEY2 = "APIsecond"
SECRET2 = "secret-second-" + os.urandom(8).hex()
FAST = {"MRTC_DELAYED_POLL_MS": "300", "MRTC_DELAYED_CONNECT_WAIT": "3",
        "MRTC_MEMBERSHIP_RECHECK": "1", "MRTC_MEMBERSHIP_CACHE_TTL": "0",
        "MRTC_RATE_BURST": "1000", "MRTC_MIN_DELAY_MS": "1000",
        "MRTC_READINESS_INTERVAL": "1", "MRTC_LIVEKIT_TIMEOUT": "1"}
DELEGATE = "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave"
GET_TOKEN = "/_matrix/client/v1/rtc/livekit/get_token"


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


ROOM = lk_hash("!call:hs1.test", "m.call#ROOM")


class Sfus(RemembersFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mrtc-sfus-")
        for name, value in (("key2", KEY2), ("secret2", SECRET2)):
            with open(os.path.join(cls.tmp, name), "w") as f:
                f.write(value + "\n")
        cls.tb = Testbed(mrtc_binary=BINARY, state=STATE)
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.sfu2_port = free_port(cls.tb.svc)
        cls.sfu2_url = f"http://{cls.tb.svc}:{cls.sfu2_port}"
        cls.hs1.extra_env = {
            "LIVEKIT_URL_2": SFU2,
            "LIVEKIT_KEY_2_FILE": os.path.join(cls.tmp, "key2"),
            "LIVEKIT_SECRET_2_FILE": os.path.join(cls.tmp, "secret2"),
            "MRTC_LIVEKIT_API_URL_2": cls.sfu2_url,
            "MRTC_STORE": "sqlite:" + cls.tb.path("jobs.db"),
        }
        cls.tb.start(with_daemons=True, **FAST)
        try:
            cls.tb.spawn("sfu2-hs1.test", ["node", os.path.join(TESTBED, "sfu.mjs"), "--port",
                         str(cls.sfu2_port), "--host", cls.tb.svc, "--key", KEY2,
                         "--secret", SECRET2])
            wait_for(lambda: get(cls.sfu2_url + "/_test/rooms") is not None, "second SFU")
        except Exception:
            cls.tb.stop(failed=True)
            raise
        cls.d = cls.hs1.mrtc
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", cls.hs1.address, 443)
        cls.c2 = HttpsTo(cls.tb.ca, "hs2.test", cls.tb.hs("hs2.test").address, 443)

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop(failed=cls.failed)
        for name in ("key2", "secret2"):
            os.unlink(os.path.join(cls.tmp, name))
        os.rmdir(cls.tmp)

    # -- helpers ------------------------------------------------------------------------------
    def sfu(self, n):
        return self.hs1.sfu_url if n == 1 else self.sfu2_url

    def verifies(self, n, jwt):
        """Whether SFU @n's livekit-server-sdk TokenVerifier (its key and secret) accepts it."""
        return post(self.sfu(n) + "/_test/verify", {"token": jwt})["ok"]

    def calls(self, n, method):
        return [c for c in get(self.sfu(n) + "/_test/calls")["calls"] if c["method"] == method]

    def token(self, name, url, member="m1", client=None, token=None):
        body = {"url": url, "room_id": "!call:hs1.test", "slot_id": "m.call#ROOM",
                "member": {"id": member}}
        status, _, data = (client or self.c1).request(
            "POST", GET_TOKEN, body=body, headers={"Authorization": f"Bearer {token or 'tok_' + name}"})
        return status, json.loads(data)

    def ident(self, name, member="m1"):
        u = USERS[f"tok_{name}"]
        return lk_hash(u["user_id"], u["device_id"], member)

    def readyz(self):
        status, _, body = self.d.request("GET", "/readyz", admin=True)
        return status, json.loads(body)

    def metrics(self):
        status, _, body = self.d.request("GET", "/metrics", admin=True)
        self.assertEqual(status, 200)
        out = {}
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def until(self, cond, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.1)
        return cond()

    # -- tests --------------------------------------------------------------------------------
    def test_transports_list_every_sfu_in_order(self):
        status, _, data = self.c1.request("GET", "/_matrix/client/v1/rtc/transports",
                                          headers={"Authorization": "Bearer tok_alice"})
        self.assertEqual(status, 200, data)
        self.assertEqual(json.loads(data), {"rtc_transports": [
            {"type": "livekit", "url": SFU1,
             "livekit_service_url": "https://hs1.test/livekit/jwt"},
            {"type": "livekit", "url": SFU2,
             "livekit_service_url": "https://hs1.test/livekit/jwt/2"}]})

    def test_client_tokens_signed_for_the_sfu_of_the_url(self):
        post(self.sfu(2) + "/_test/calls", {})
        s1, t1 = self.token("alice", SFU1)
        s2, t2 = self.token("alice", SFU2 + "/")  # a trailing slash names the same SFU
        self.assertEqual((s1, s2), (200, 200), (t1, t2))
        self.assertTrue(self.verifies(1, t1["jwt"]))
        self.assertFalse(self.verifies(2, t1["jwt"]))
        self.assertTrue(self.verifies(2, t2["jwt"]))
        self.assertFalse(self.verifies(1, t2["jwt"]))
        # The room was created on the second SFU, with its own key.
        created = self.calls(2, "CreateRoom")
        self.assertTrue(any(c["body"]["name"] == ROOM and c["status"] == 200 for c in created),
                        created)
        for url in ("wss://sfu3.hs1.test", "wss://sfu.hs2.test/x", "https://sfu2.hs1.test"):
            status, doc = self.token("alice", url)
            self.assertEqual(status, 400, (url, doc))
            self.assertEqual(doc["errcode"], "M_INVALID_PARAM")

    def test_federated_token_for_the_second_sfu(self):
        body = {"url": SFU2, "room_id": "!call:hs1.test", "slot_id": "m.call#ROOM",
                "member": {"id": "mf"}, "server_name": "hs1.test"}
        status, _, data = self.c2.request("POST", GET_TOKEN, body=body,
                                          headers={"Authorization": "Bearer tok_erin"})
        self.assertEqual(status, 200, data)
        jwt = json.loads(data)["jwt"]
        self.assertTrue(self.verifies(2, jwt))
        self.assertFalse(self.verifies(1, jwt))
        status, _, data = self.c2.request("POST", GET_TOKEN, body=dict(body, url="wss://no.hs1.test"),
                                          headers={"Authorization": "Bearer tok_erin"})
        self.assertEqual(status, 400, data)
        self.assertEqual(json.loads(data)["errcode"], "M_INVALID_PARAM")

    def test_openid_endpoints_under_each_service_url(self):
        oid = {"access_token": "oid_alice", "token_type": "Bearer",
               "matrix_server_name": "hs1.test", "expires_in": 3600}
        get_token = {"room_id": "!call:hs1.test", "slot_id": "m.call#ROOM", "openid_token": oid,
                     "member": {"id": "mo", "claimed_user_id": "@alice:hs1.test",
                                "claimed_device_id": "DEV_alice"}}
        sfu_get = {"room": "!call:hs1.test", "device_id": "DEV_alice", "openid_token": oid}
        for prefix, n, url in (("/livekit/jwt", 1, SFU1), ("/livekit/jwt/2", 2, SFU2)):
            for path, body in (("/get_token", get_token), ("/sfu/get", sfu_get)):
                status, _, data = self.c1.request("POST", prefix + path, body=body)
                self.assertEqual(status, 200, (prefix, path, data))
                doc = json.loads(data)
                self.assertEqual(doc["url"], url)
                self.assertTrue(self.verifies(n, doc["jwt"]), (prefix, path))
                self.assertFalse(self.verifies(3 - n, doc["jwt"]), (prefix, path))
        # No third SFU: nginx passes the path, the daemon does not know it.
        status, _, _ = self.c1.request("POST", "/livekit/jwt/3/get_token", body=get_token)
        self.assertEqual(status, 404)

    def test_readiness_and_metrics_per_sfu(self):
        self.assertTrue(self.until(lambda: self.readyz()[0] == 200))
        status, doc = self.readyz()
        self.assertEqual(doc["sfus"], [{"sfu": 1, "url": SFU1, "ready": True},
                                       {"sfu": 2, "url": SFU2, "ready": True}])
        m = self.metrics()
        self.assertEqual(m[("mrtc_sfu_up", (("sfu", "2"),))], 1)
        self.assertGreaterEqual(m[("mrtc_roomservice_calls_total",
                                   (("result", "ok"), ("sfu", "2")))], 1)
        post(self.sfu(2) + "/_test/mode", {"mode": "down"})
        down = time.monotonic()
        try:
            self.assertTrue(self.until(lambda: not self.readyz()[1]["sfus"][1]["ready"]))
            # Three missed probes at MRTC_READINESS_INTERVAL=1 s (each timing out after 1 s).
            print(f"/readyz named SFU 2 not ready {time.monotonic() - down:.2f} s after it "
                  "went down", file=sys.stderr)
            status, doc = self.readyz()
            # The first SFU still serves: the daemon stays ready, naming the one that is not.
            self.assertEqual(status, 200, doc)
            self.assertIs(doc["checks"]["sfu"], True)
            self.assertEqual(doc["sfus"][0]["ready"], True)
            self.assertEqual(doc["sfus"][1], {"sfu": 2, "url": SFU2, "ready": False})
            self.assertEqual(self.metrics()[("mrtc_sfu_up", (("sfu", "2"),))], 0)
            self.assertIn("SFU 2 (wss://sfu2.hs1.test) probe failed", self.d.logs())
        finally:
            post(self.sfu(2) + "/_test/mode", {"mode": "normal"})
        self.assertTrue(self.until(lambda: self.readyz()[1]["sfus"][1]["ready"]))

    def test_delegation_and_webhook_on_the_second_sfu(self):
        hs = self.hs1.hs_url
        post(hs + "/_test/delayed", {"delay_id": "de_b", "delay": 2000, "state": "scheduled",
                                     "user_id": "@bob:hs1.test", "room_id": "!call:hs1.test"})
        body = {"url": SFU2, "room_id": "!call:hs1.test", "slot_id": "m.call#ROOM",
                "member": {"id": "m1"}, "delay_id": "de_b"}
        status, _, data = self.c1.request("POST", DELEGATE, body=body,
                                          headers={"Authorization": "Bearer tok_bob"})
        self.assertEqual(status, 200, data)
        ident = self.ident("bob")
        post(self.sfu(2) + "/_test/participant", {"room": ROOM, "identity": ident, "present": True})

        def actions():
            ev = get(hs + "/_test/delayed").get("de_b", {})
            return [a["action"] for a in ev.get("actions", [])]
        self.assertTrue(self.until(lambda: "restart" in actions()))
        # The job polls the second SFU only (it asks the first about nobody named bob).
        self.assertTrue(any(c["body"].get("identity") == ident
                            for c in self.calls(2, "GetParticipant")))
        self.assertFalse(any(c["body"] and c["body"].get("identity") == ident
                             for c in self.calls(1, "GetParticipant")))
        time.sleep(0.8)  # past the connect wait would not matter: bob is connected
        event = {"event": "participant_left", "room": {"name": ROOM},
                 "participant": {"identity": ident}}
        hook = f"http://{self.d.host}:{self.d.port}/sfu_webhook"
        # Signed by the first SFU: a valid hook, but about the first SFU, where bob is not.
        self.assertEqual(post(self.sfu(1) + "/_test/webhook", {"url": hook, "event": event})
                         ["status"], 200)
        # A wrong secret for the second SFU's key: refused.
        self.assertEqual(post(self.sfu(2) + "/_test/webhook",
                              {"url": hook, "event": event, "secret": "not-the-secret"})
                         ["status"], 401)
        time.sleep(1.0)
        self.assertNotIn("send", actions())
        post(self.sfu(2) + "/_test/participant", {"room": ROOM, "identity": ident,
                                                  "present": False})
        self.assertEqual(post(self.sfu(2) + "/_test/webhook", {"url": hook, "event": event})
                         ["status"], 200)
        self.assertTrue(self.until(lambda: "send" in actions(), timeout=5))
        time.sleep(1.0)
        self.assertEqual(actions().count("send"), 1)

    def test_watch_removes_from_the_sfu_it_admitted_on(self):
        post(self.sfu(1) + "/_test/calls", {})
        post(self.sfu(2) + "/_test/calls", {})
        status, doc = self.token("carol", SFU2)
        self.assertEqual(status, 200, doc)
        ident = self.ident("carol")
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": "@carol:hs1.test", "membership": "leave"})
        self.assertTrue(self.until(lambda: any(
            c["body"].get("identity") == ident for c in self.calls(2, "RemoveParticipant")),
            timeout=10))
        self.assertFalse(any(c["body"] and c["body"].get("identity") == ident
                             for c in self.calls(1, "RemoveParticipant")))

    def test_watch_after_a_restart_removes_from_the_sfu_it_admitted_on(self):
        """dave is admitted on SFU 2; the store keeps the SFU (its url) with the admission; the
        daemon stops, dave leaves the room, the daemon starts again: the watch, reloaded from the
        store, removes dave from SFU 2, not SFU 1, and forgets the stored admission."""
        import sqlite3
        post(self.sfu(1) + "/_test/calls", {})
        post(self.sfu(2) + "/_test/calls", {})
        status, doc = self.token("dave", SFU2)
        self.assertEqual(status, 200, doc)
        ident = self.ident("dave")

        def rows():
            with sqlite3.connect(self.tb.path("jobs.db")) as db:
                return db.execute("SELECT sfu_url, room_name, identity FROM watch"
                                  " WHERE identity = ?", (ident,)).fetchall()
        # Written within WATCH_FLUSH_MS (250 ms).
        self.assertTrue(self.until(lambda: rows() == [(SFU2, ROOM, ident)], timeout=5), rows())
        self.assertEqual(self.d.stop(), 0)
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": "@dave:hs1.test", "membership": "leave"})
        try:
            self.d.start()

            def removed(n):
                return any(c["body"] and c["body"].get("identity") == ident
                           for c in self.calls(n, "RemoveParticipant"))
            self.assertTrue(self.until(lambda: removed(2), timeout=10), self.d.logs())
            self.assertFalse(removed(1))
            self.assertTrue(self.until(lambda: rows() == [], timeout=5), rows())
        finally:
            post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                    "member": "@dave:hs1.test",
                                                    "membership": "join"})

    def test_watch_after_renumbering_follows_the_url(self):
        """frank is admitted on SFU 2; the daemon restarts with the two SFUs swapped (SFU 2's
        url, key and secret are now LIVEKIT_URL...): the stored admission names its SFU by url,
        so frank, who left the room meanwhile, is removed from the SFU he is on (now number 1),
        not from the other one."""
        import sqlite3
        from testbed import LIVEKIT_KEY
        post(self.sfu(1) + "/_test/calls", {})
        post(self.sfu(2) + "/_test/calls", {})
        status, doc = self.token("frank", SFU2)
        self.assertEqual(status, 200, doc)
        ident = self.ident("frank")

        def rows():
            with sqlite3.connect(self.tb.path("jobs.db")) as db:
                return db.execute("SELECT sfu_url FROM watch WHERE identity = ?",
                                  (ident,)).fetchall()
        self.assertTrue(self.until(lambda: rows() == [(SFU2,)], timeout=5), rows())
        normal = dict(self.d.env)
        self.assertEqual(self.d.stop(), 0)
        swapped = {k: v for k, v in normal.items() if "_2" not in k}
        swapped.update({"LIVEKIT_URL": SFU2, "LIVEKIT_KEY": KEY2, "LIVEKIT_SECRET": SECRET2,
                        "MRTC_LIVEKIT_API_URL": self.sfu2_url,
                        "LIVEKIT_URL_2": normal["LIVEKIT_URL"], "LIVEKIT_KEY_2": LIVEKIT_KEY,
                        "LIVEKIT_SECRET_2": normal["LIVEKIT_SECRET"],
                        "MRTC_LIVEKIT_API_URL_2": normal["MRTC_LIVEKIT_API_URL"]})
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": "@frank:hs1.test",
                                                "membership": "leave"})
        try:
            self.d.env = swapped
            self.d.start()

            def removed(n):
                return any(c["body"] and c["body"].get("identity") == ident
                           for c in self.calls(n, "RemoveParticipant"))
            self.assertTrue(self.until(lambda: removed(2), timeout=10), self.d.logs())
            self.assertFalse(removed(1))
            self.assertTrue(self.until(lambda: rows() == [], timeout=5), rows())
        finally:
            post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                    "member": "@frank:hs1.test",
                                                    "membership": "join"})
            self.d.stop()
            self.d.env = normal
            self.d.start()

    def test_watch_on_an_sfu_no_longer_configured_is_dropped(self):
        """gina is admitted on SFU 2; the daemon restarts without SFU 2: her stored admission
        is dropped with a warning (no SFU to remove her from), not moved to SFU 1."""
        import sqlite3
        status, doc = self.token("gina", SFU2)
        self.assertEqual(status, 200, doc)
        ident = self.ident("gina")

        def rows():
            with sqlite3.connect(self.tb.path("jobs.db")) as db:
                return db.execute("SELECT sfu_url FROM watch WHERE identity = ?",
                                  (ident,)).fetchall()
        self.assertTrue(self.until(lambda: rows() == [(SFU2,)], timeout=5), rows())
        normal = dict(self.d.env)
        self.assertEqual(self.d.stop(), 0)
        try:
            self.d.env = {k: v for k, v in normal.items() if "_2" not in k}
            self.d.start()
            self.assertTrue(self.until(lambda: "which is not configured any more" in
                                       self.d.logs(), timeout=5), self.d.logs())
            self.assertEqual(rows(), [])
        finally:
            self.d.stop()
            self.d.env = normal
            self.d.start()

    def test_check_config_names_every_problem(self):
        base = {k: v for k, v in self.tb.mrtc_env(self.hs1).items()
                if k not in self.hs1.extra_env}
        base["PATH"] = os.environ.get("PATH", "")

        def check(**extra):
            env = dict(base, **extra)
            r = subprocess.run([BINARY, "--check-config"], env=env, capture_output=True,
                               text=True, timeout=30)
            return r.returncode, r.stdout + r.stderr

        rc, out = check(LIVEKIT_URL_2=SFU2, LIVEKIT_KEY_2=KEY2, LIVEKIT_SECRET_2=SECRET2)
        self.assertEqual(rc, 0, out)
        self.assertNotIn(SECRET2, out)
        rc, out = check(LIVEKIT_URL_2=SFU2)
        self.assertNotEqual(rc, 0)
        self.assertIn("LIVEKIT_KEY_2", out)
        self.assertIn("LIVEKIT_SECRET_2", out)
        rc, out = check(LIVEKIT_URL_3=SFU2, LIVEKIT_KEY_3=KEY2, LIVEKIT_SECRET_3=SECRET2)
        self.assertNotEqual(rc, 0)
        self.assertIn("LIVEKIT_URL_2 is not set", out)
        rc, out = check(LIVEKIT_URL_2=SFU1 + "/", LIVEKIT_KEY_2=KEY2, LIVEKIT_SECRET_2=SECRET2)
        self.assertNotEqual(rc, 0)
        self.assertIn("is the URL of SFU 1 already", out)
        rc, out = check(LIVEKIT_URL_2="http://sfu2.hs1.test", LIVEKIT_KEY_2=KEY2,
                        LIVEKIT_SECRET_2=SECRET2, MRTC_LIVEKIT_API_URL_2="ftp://x")
        self.assertNotEqual(rc, 0)
        self.assertIn("LIVEKIT_URL_2", out)
        self.assertIn("MRTC_LIVEKIT_API_URL_2", out)
        rc, out = check(LIVEKIT_URL_2=SFU2, LIVEKIT_KEY_2=KEY2, LIVEKIT_SECRET_2=SECRET2,
                        LIVEKIT_SECRET_2_FILE="/nonexistent")
        self.assertNotEqual(rc, 0)
        self.assertIn("set both LIVEKIT_SECRET_2 and LIVEKIT_SECRET_2_FILE", out)
        self.assertNotIn(SECRET2, out)
        many = {}
        for n in range(2, 10):
            many.update({f"LIVEKIT_URL_{n}": f"wss://sfu{n}.hs1.test", f"LIVEKIT_KEY_{n}": "k",
                         f"LIVEKIT_SECRET_{n}": "s"})
        rc, out = check(**many)
        self.assertNotEqual(rc, 0)
        self.assertIn("LIVEKIT_URL_9", out)
        self.assertIn("at most 8 SFUs", out)
        r = subprocess.run([BINARY, "--help"], env=dict(base, LIVEKIT_SECRET_2=SECRET2),
                           capture_output=True, text=True, timeout=30)
        self.assertIn("LIVEKIT_SECRET_2", r.stdout)
        self.assertNotIn(SECRET2, r.stdout)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
