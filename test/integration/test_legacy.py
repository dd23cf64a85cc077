# SPDX-License-Identifier: Apache-2.0
"""lk-jwt-service drop-in on the testbed: the daemon is started with an lk-jwt-service
environment only (LIVEKIT_URL, LIVEKIT_KEY_FILE, LIVEKIT_FULL_ACCESS_HOMESERVERS,
LIVEKIT_JWT_BIND) plus the testbed's CA, DNS and loopback allowance. OpenID tokens are checked
with the users' homeservers found through federation resolution (plain 8448, .well-known only,
SRV only) over verified TLS.

The SFU is LiveKit's own server (Testbed(livekit=True)): the rooms the daemon creates are read
back with ListRooms and its tokens are checked by the server (/rtc/validate). No test here needs
a fault, so the stand-in SFU is not used.

Usage: test_legacy.py <mrtc-transportd>
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
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import Daemon  # noqa: E402
from testbed import LIVEKIT_KEY, Testbed  # noqa: E402

BINARY = None
STATE = {
    "hs1.test": {"openid": {"oid_alice": "@alice:hs1.test", "oid_other": "@mallory:hs2.test"}},
    "hs2.test": {"openid": {"oid_carol": "@carol:hs2.test", "oid_wk": "@dan:wk.test",
                            "oid_srv": "@erin:srv.test"}},
}


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def claims_of(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


class Legacy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(state=STATE, livekit=True).start()
        hs1 = cls.tb.hs("hs1.test")
        cls.keyfile = tempfile.NamedTemporaryFile("w", suffix=".key", delete=False)
        cls.keyfile.write(f"{LIVEKIT_KEY}:{hs1.secret}\n")
        cls.keyfile.close()
        env = {
            # what an lk-jwt-service deployment sets
            "LIVEKIT_URL": "wss://sfu.hs1.test",
            "LIVEKIT_KEY_FILE": cls.keyfile.name,
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": "hs1.test, example.org",
            # the testbed: its LiveKit server's API, CA, DNS, and loopback addresses as peers
            "MRTC_LIVEKIT_API_URL": hs1.lk_api_url,
            "MRTC_CA_FILE": cls.tb.ca,
            "MRTC_DNS_SERVER": f"{cls.tb.svc}:{cls.tb.dns_port}",
            "MRTC_FEDERATION_ALLOW_CIDRS": "127.0.0.0/8",
            # delegated delayed leave, on the default store (drop-in mode too): SQLite in the
            # daemon's own MRTC_STATE_DIR, in the test's temporary folder
            "MRTC_STATE_DIR": cls.tb.path("state-legacy"),
            "MRTC_DELAYED_CONNECT_WAIT": "2", "MRTC_MIN_DELAY_MS": "1000",
            "MRTC_DELAYED_POLL_MS": "300",
        }
        cls.d = Daemon(BINARY, env, name="mrtc-legacy", host=cls.tb.svc)
        del cls.d.env["MRTC_BIND"]
        cls.d.env["LIVEKIT_JWT_BIND"] = f"{cls.tb.svc}:{cls.d.port}"
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        logs = cls.d.logs()
        cls.d.close()
        os.unlink(cls.keyfile.name)
        cls.tb.stop()
        assert rc == 0, rc
        assert "lk-jwt-service drop-in mode" in logs
        for secret in ("oid_alice", "oid_carol", "de_leg", cls.tb.hs("hs1.test").secret):
            assert secret not in logs, f"{secret} reached the log"

    def post(self, path, body):
        status, h, data = self.d.request("POST", path, body=json.dumps(body),
                                         headers={"Content-Type": "application/json"})
        self.assertEqual(h.get("access-control-allow-origin"), "*")
        return status, json.loads(data)

    def lk_rooms(self):
        """The rooms on hs1's LiveKit server (ListRooms)."""
        return self.tb.livekit_rooms("hs1.test")

    def get_token_body(self, token="oid_alice", server="hs1.test", user="@alice:hs1.test",
                       room="!r1:hs1.test"):
        return {"room_id": room, "slot_id": "m.call#ROOM",
                "openid_token": {"access_token": token, "token_type": "Bearer",
                                 "matrix_server_name": server, "expires_in": 3600},
                "member": {"id": "mem1", "claimed_user_id": user, "claimed_device_id": "DEV1"}}

    def test_full_access_get_token(self):
        status, doc = self.post("/get_token", self.get_token_body(room="!full:hs1.test"))
        self.assertEqual(status, 200, doc)
        self.assertEqual(set(doc), {"url", "jwt"})
        self.assertEqual(doc["url"], "wss://sfu.hs1.test")
        c = claims_of(doc["jwt"])
        self.assertEqual(c["sub"], lk_hash("@alice:hs1.test", "DEV1", "mem1"))
        self.assertEqual(c["video"]["room"], lk_hash("!full:hs1.test", "m.call#ROOM"))
        self.assertIs(c["video"]["canPublish"], True)
        self.assertIs(c["video"]["roomCreate"], False)
        # The daemon created the room on LiveKit with its timeouts, and LiveKit accepts the token.
        room = self.lk_rooms().get(c["video"]["room"])
        self.assertIsNotNone(room, "the daemon did not create the room on LiveKit")
        self.assertEqual((room["empty_timeout"], room["departure_timeout"]), (300, 20))
        self.assertEqual(self.tb.livekit_validate("hs1.test", doc["jwt"]), (200, "success"))

    def test_full_access_sfu_get(self):
        status, doc = self.post("/sfu/get", {
            "room": "!legacy:hs1.test", "device_id": "OLDDEV",
            "openid_token": {"access_token": "oid_alice", "matrix_server_name": "hs1.test"}})
        self.assertEqual(status, 200, doc)
        c = claims_of(doc["jwt"])
        self.assertEqual(c["sub"], "@alice:hs1.test:OLDDEV")
        self.assertEqual(c["video"]["room"], lk_hash("!legacy:hs1.test", "m.call#ROOM"))
        self.assertIs(c["video"]["canPublish"], True)

    def test_restricted_user(self):
        status, doc = self.post("/get_token", self.get_token_body(
            token="oid_carol", server="hs2.test", user="@carol:hs2.test", room="!rx:hs1.test"))
        self.assertEqual(status, 200, doc)
        self.assertIs(claims_of(doc["jwt"])["video"]["canPublish"], False)
        # Restricted users never create rooms: LiveKit has none, and refuses the token for it.
        self.assertNotIn(lk_hash("!rx:hs1.test", "m.call#ROOM"), self.lk_rooms())
        self.assertEqual(self.tb.livekit_validate("hs1.test", doc["jwt"])[0], 404)

    def test_homeserver_found_via_wellknown_and_srv(self):
        for token, server, user in (("oid_wk", "wk.test", "@dan:wk.test"),
                                    ("oid_srv", "srv.test", "@erin:srv.test")):
            with self.subTest(server=server):
                status, doc = self.post("/get_token", self.get_token_body(
                    token=token, server=server, user=user))
                self.assertEqual(status, 200, doc)
                self.assertEqual(claims_of(doc["jwt"])["sub"], lk_hash(user, "DEV1", "mem1"))

    def test_unauthorised(self):
        cases = {
            "token the homeserver rejects": self.get_token_body(token="oid_nope"),
            "sub of another server": self.get_token_body(token="oid_other",
                                                         user="@mallory:hs2.test"),
            "claimed user mismatch": self.get_token_body(user="@bob:hs1.test"),
            "server name that does not resolve": self.get_token_body(server="nowhere.test"),
            "blocked address": self.get_token_body(server="private.test"),
            "invalid server name": self.get_token_body(server="bad name"),
        }
        for name, body in cases.items():
            with self.subTest(name=name):
                status, doc = self.post("/get_token", body)
                self.assertEqual((status, doc), (401, {
                    "errcode": "M_UNAUTHORIZED", "error": "The request could not be authorised."}))

    def test_missing_fields_messages(self):
        b = self.get_token_body()
        cases = [
            ("/get_token", dict(b, room_id=""),
             "The request body is missing `room_id` or `slot_id`"),
            ("/get_token", {k: v for k, v in b.items() if k != "slot_id"},
             "The request body is missing `room_id` or `slot_id`"),
            ("/get_token", dict(b, member={"id": "m", "claimed_user_id": "@alice:hs1.test"}),
             "The request body `member` is missing a `id`, `claimed_user_id` or "
             "`claimed_device_id`"),
            ("/get_token", dict(b, openid_token={"access_token": "x"}),
             "The request body `openid_token` is missing a `access_token` or "
             "`matrix_server_name`"),
            ("/get_token", dict(b, delay_id="d1"),
             "The request body is missing `delay_id`, `delay_timeout` or `delay_cs_api_url`"),
            ("/get_token", dict(b, delay_id="d1", delay_timeout=10, delay_cs_api_url="ftp://x"),
             "`delay_cs_api_url` must be an https:// URL"),
            ("/sfu/get", {"openid_token": {"access_token": "x", "matrix_server_name": "hs1.test"}},
             "Missing room parameter"),
            ("/sfu/get", {"room": "!r:hs1.test", "openid_token": {"access_token": "x"}},
             "Missing OpenID token parameters"),
        ]
        for path, body, msg in cases:
            with self.subTest(msg=msg, path=path):
                self.assertEqual(self.post(path, body),
                                 (400, {"errcode": "M_BAD_JSON", "error": msg}))
        # MRTC_MIN_DELAY_MS=1000 here: a shorter delay_timeout is refused (issue 16 finding 3)
        body = dict(b, delay_id="d1", delay_timeout=999, delay_cs_api_url="https://hs1.test")
        self.assertEqual(self.post("/get_token", body),
                         (400, {"errcode": "M_INVALID_PARAM",
                                "error": "`delay_timeout` is below this service's minimum"}))
        for raw in ("not json", "[]", '{"room_id": 5}', '{"member": "x"}'):
            status, _, data = self.d.request("POST", "/get_token", body=raw)
            self.assertEqual((status, json.loads(data)),
                             (400, {"errcode": "M_NOT_JSON", "error": "Error reading request"}))

    def test_methods_cors_and_health(self):
        for path in ("/get_token", "/sfu/get"):
            status, h, data = self.d.request("GET", path)
            self.assertEqual((status, json.loads(data)["errcode"]), (405, "M_UNRECOGNIZED"))
            status, h, data = self.d.request("OPTIONS", path, headers={
                "Origin": "https://call.example", "Access-Control-Request-Method": "POST"})
            self.assertIn(status, (200, 204))
            self.assertEqual(h["access-control-allow-origin"], "*")
            self.assertIn("POST", h["access-control-allow-methods"])
            self.assertIn("Content-Type", h["access-control-allow-headers"])
        for method in ("GET", "HEAD"):
            self.assertEqual(self.d.request(method, "/healthz")[0], 200)
        # The MSC4195 paths are not mounted in drop-in mode.
        status, _, data = self.d.request("GET", "/_matrix/client/v1/rtc/transports")
        self.assertEqual((status, json.loads(data)["errcode"]), (404, "M_UNRECOGNIZED"))

    def delayed(self, delay_id, user):
        hs = self.tb.hs("hs1.test").hs_url
        req = urllib.request.Request(hs + "/_test/delayed", method="POST", data=json.dumps(
            {"delay_id": delay_id, "user_id": user, "delay": 5000}).encode())
        urllib.request.urlopen(req).close()

    def delayed_actions(self, delay_id):
        with urllib.request.urlopen(self.tb.hs("hs1.test").hs_url + "/_test/delayed") as r:
            return [a["action"] for a in json.load(r).get(delay_id, {}).get("actions", [])]

    def delegation(self, **kw):
        b = self.get_token_body(**kw)
        b.update(delay_id="de_leg", delay_timeout=5000, delay_cs_api_url="https://hs1.test")
        return b

    def test_delegate_delayed_leave(self):
        self.delayed("de_leg", "@alice:hs1.test")
        self.assertEqual(self.post("/delegate_delayed_leave", self.delegation()), (200, {}))
        deadline = time.monotonic() + 8
        while "send" not in self.delayed_actions("de_leg") and time.monotonic() < deadline:
            time.sleep(0.2)
        acts = self.delayed_actions("de_leg")
        self.assertIn("restart", acts)  # kept alive while waiting for the participant
        self.assertEqual(acts.count("send"), 1)  # who never came: sent after the wait

    def test_delegation_refusals(self):
        restricted = self.delegation(token="oid_carol", server="hs2.test",
                                     user="@carol:hs2.test")
        self.assertEqual(self.post("/delegate_delayed_leave", restricted), (403, {
            "errcode": "M_FORBIDDEN",
            "error": "Delegation of delayed events is only supported for full access users"}))
        self.assertEqual(self.post("/get_token", restricted), (400, {
            "errcode": "M_BAD_JSON",
            "error": "Delegation of delayed events is only supported for full access users"}))
        b = self.delegation()
        del b["delay_timeout"]
        self.assertEqual(self.post("/delegate_delayed_leave", b)[1]["error"],
                         "The request body is missing `delay_id`, `delay_timeout` or "
                         "`delay_cs_api_url`")
        b = self.delegation()
        b["member"] = {"id": "x"}
        self.assertEqual(self.post("/delegate_delayed_leave", b)[1]["error"],
                         "The request body `member` is missing `id`, `claimed_user_id` or "
                         "`claimed_device_id`")
        b = self.delegation()
        b["delay_cs_api_url"] = "http://hs1.test"
        self.assertEqual(self.post("/delegate_delayed_leave", b)[0], 400)

    def test_delay_url_resolved_and_guarded_before_answer(self):
        """Issue 16 finding 3: a delay_cs_api_url whose host does not resolve, or resolves only
        to addresses the outbound guard refuses, is refused before any 200, and no job calls
        it."""
        cases = {
            "https://nowhere.test": "`delay_cs_api_url`'s host does not resolve",
            "https://private.test": "`delay_cs_api_url` points at an address this service "
                                    "does not call",
            "https://10.1.2.3:8448": "`delay_cs_api_url` points at an address this service "
                                     "does not call",
            "https://[::1]/": "`delay_cs_api_url` points at an address this service does "
                              "not call",
        }
        for url, msg in cases.items():
            for path in ("/delegate_delayed_leave", "/get_token"):
                with self.subTest(url=url, path=path):
                    b = self.delegation(room="!badurl:hs1.test")
                    b.update(delay_id="de_bad", delay_cs_api_url=url)
                    self.assertEqual(self.post(path, b), (400, {"errcode": "M_INVALID_PARAM",
                                                                "error": msg}))
        # No job was stored for the room.
        import sqlite3
        db = sqlite3.connect(f"file:{self.tb.path('state-legacy', 'store.db')}?mode=ro",
                             uri=True)
        try:
            n = db.execute("SELECT COUNT(*) FROM jobs WHERE room_id = ?",
                           ("!badurl:hs1.test",)).fetchone()[0]
        finally:
            db.close()
        self.assertEqual(n, 0)

    def test_get_token_with_delegation(self):
        self.delayed("de_leg2", "@alice:hs1.test")
        b = self.get_token_body(room="!withdel:hs1.test")
        b.update(delay_id="de_leg2", delay_timeout=5000, delay_cs_api_url="https://hs1.test/")
        status, doc = self.post("/get_token", b)
        self.assertEqual(status, 200, doc)
        deadline = time.monotonic() + 5
        while "restart" not in self.delayed_actions("de_leg2") and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertIn("restart", self.delayed_actions("de_leg2"))

    def test_lk_jwt_service_environment_checks(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LIVEKIT_URL": "wss://x.example",
               "LIVEKIT_KEY": "k", "LIVEKIT_SECRET": "s", "LIVEKIT_JWT_PORT": "8089",
               "MRTC_ADMIN_BIND": "127.0.0.1:1"}
        r = subprocess.run([BINARY, "--check-config"], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        env["LIVEKIT_JWT_BIND"] = ":8090"
        r = subprocess.run([BINARY, "--check-config"], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("LIVEKIT_JWT_PORT", r.stderr)
        env.pop("LIVEKIT_JWT_BIND")
        env["LIVEKIT_INSECURE_SKIP_VERIFY_TLS"] = "YES_I_KNOW_WHAT_I_AM_DOING"
        r = subprocess.run([BINARY, "--check-config"], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("MRTC_CA_FILE", r.stderr)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
