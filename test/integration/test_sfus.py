# SPDX-License-Identifier: Apache-2.0
"""Several SFUs for one homeserver on the testbed: hs1's daemon has two of LiveKit's own servers
(Testbed(livekit={"hs1.test": 2})), SFU 1 at wss://sfu.hs1.test with the usual variables and
SFU 2 at wss://sfu2.hs1.test (LIVEKIT_URL_2, key and secret of its own from *_FILE), each with
its webhooks pointed at the daemon's /sfu_webhook. /rtc/transports lists both in order, each
with its livekit_service_url; get_token (client-server, federation through hs2's daemon, the
OpenID endpoints under each service URL) mints for the SFU its url names: the server it is for
accepts it (a participant joins with LiveKit's own client, @livekit/rtc-node, or its
/rtc/validate says so) and the other server refuses it; a url of neither is 400. Rooms are
created, delegated jobs polled, watched participants removed (the client sees itself removed)
and webhooks taken from the right server; /readyz and /metrics name each SFU (SFU 2 killed and
started again); the watch reloaded after a restart removes from the right server. Configuration
problems are reported by --check-config; secrets stay out of --help.

Every test uses the real servers; the only fault no real server produces, a webhook with SFU 2's
key and a wrong secret, is signed by livekit-server-sdk (lk.mjs). hs2 runs no LiveKit server:
its daemon only forwards the federated request (its RoomService calls go to the stand-in).

Usage: test_sfus.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest


HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.join(os.path.dirname(HERE), "testbed")
sys.path.insert(0, TESTBED)
from harness import HttpsTo, metric_samples, RemembersFailure, get_json as get, post_json as post  # noqa: E402
from testbed import LiveKitClients, Testbed  # noqa: E402

BINARY = None
USERS = {f"tok_{n}": {"user_id": f"@{n}:hs1.test", "device_id": f"DEV_{n}"}
         for n in ("alice", "bob", "carol", "dave", "frank", "gina")}
MEMBERS = {u["user_id"]: "join" for u in USERS.values()}
MEMBERS["@erin:hs2.test"] = "join"
# A Matrix room per test that joins a LiveKit room: SFU 2 is killed and started again by one
# test, and the daemon remembers the rooms it created for a while (it would not create them
# again on the fresh server).
ROOMS = [f"!{r}:hs1.test" for r in ("call", "deleg", "carol", "dave", "frank", "gina")]
STATE = {
    "hs1.test": {"users": USERS, "openid": {"oid_alice": "@alice:hs1.test"},
                 "rooms": {r: {"members": dict(MEMBERS)} for r in ROOMS}},
    "hs2.test": {"users": {"tok_erin": {"user_id": "@erin:hs2.test", "device_id": "DEV_erin"}},
                 "rooms": {"!call:hs1.test": {"members": dict(MEMBERS)}}},
}
SFU1 = "wss://sfu.hs1.test"
SFU2 = "wss://sfu2.hs1.test"
SLOT = "m.call#ROOM"
FAST = {"MRTC_DELAYED_POLL_MS": "300", "MRTC_DELAYED_CONNECT_WAIT": "3",
        "MRTC_MEMBERSHIP_RECHECK": "1", "MRTC_MEMBERSHIP_CACHE_TTL": "0",
        "MRTC_RATE_BURST": "1000", "MRTC_MIN_DELAY_MS": "1000",
        "MRTC_READINESS_INTERVAL": "1", "MRTC_LIVEKIT_TIMEOUT": "3"}
DELEGATE = "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave"
GET_TOKEN = "/_matrix/client/v1/rtc/livekit/get_token"


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


ROOM = lk_hash("!call:hs1.test", SLOT)


class Sfus(RemembersFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=STATE, livekit={"hs1.test": 2})
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.hs1.extra_env = {"MRTC_STORE": "sqlite:" + cls.tb.path("jobs.db")}
        cls.tb.start(with_daemons=True, **FAST)
        try:
            cls.lk1, cls.lk2 = cls.hs1.livekits
            cls.lk_log = open(cls.tb.path("lkclient.log"), "w")
            cls.lk = LiveKitClients(cls.lk_log)
            cls.node = subprocess.Popen(["node", os.path.join(TESTBED, "lk.mjs")], cwd=TESTBED,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        except BaseException:
            cls.tb.stop(failed=True)
            raise
        cls.d = cls.hs1.mrtc
        cls.normal_env = dict(cls.d.env)
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", cls.hs1.address, 443)
        cls.c2 = HttpsTo(cls.tb.ca, "hs2.test", cls.tb.hs("hs2.test").address, 443)

    @classmethod
    def tearDownClass(cls):
        cls.lk.close()
        cls.lk_log.close()
        cls.node.stdin.close()
        cls.node.wait(timeout=10)
        cls.tb.stop(failed=cls.failed)

    # -- helpers ------------------------------------------------------------------------------
    def sfu(self, n):
        return self.lk1 if n == 1 else self.lk2

    def token(self, name, url, member="m1", client=None, token=None, room="!call:hs1.test"):
        body = {"url": url, "room_id": room, "slot_id": SLOT, "member": {"id": member}}
        status, _, data = (client or self.c1).request(
            "POST", GET_TOKEN, body=body, headers={"Authorization": f"Bearer {token or 'tok_' + name}"})
        return status, json.loads(data)

    def ident(self, name, member="m1"):
        u = USERS[f"tok_{name}"]
        return lk_hash(u["user_id"], u["device_id"], member)

    def join(self, pid, n, jwt):
        """A participant @pid joins SFU @n with LiveKit's own client and token @jwt."""
        return self.lk(op="join", id=pid, url=self.sfu(n).ws_url, token=jwt)

    def validate(self, n, jwt):
        """SFU @n's own verdict on a participant token: 200 it accepts it, 401 it does not."""
        return self.tb.livekit_validate(self.sfu(n), jwt)[0]

    def removed_by_server(self, pid):
        """Whether the client @pid was disconnected by a RemoveParticipant."""
        st = self.lk(op="state", id=pid)
        return st["disconnected"] and st["reason"] == "PARTICIPANT_REMOVED"

    def service_calls(self, n, method, ident):
        """SFU @n's log lines of RoomService @method calls about @ident."""
        return [line for line in self.tb.livekit_log_lines(self.sfu(n), "RoomService." + method)
                if ident in line]

    def readyz(self):
        status, _, body = self.d.request("GET", "/readyz", admin=True)
        return status, json.loads(body)

    def metrics(self):
        status, _, body = self.d.request("GET", "/metrics", admin=True)
        self.assertEqual(status, 200)
        return metric_samples(body.decode())

    def until(self, cond, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.1)
        return cond()

    def membership(self, name, room, membership):
        post(self.hs1.hs_url + "/_test/patch", {"room": room, "member": f"@{name}:hs1.test",
                                                "membership": membership})

    def stored_admissions(self, ident):
        with sqlite3.connect(self.tb.path("jobs.db")) as db:
            return db.execute("SELECT sfu_url, room_name FROM watch WHERE identity = ?",
                              (ident,)).fetchall()

    def admitted_on_sfu2(self, name, join=True):
        """@name gets a token for SFU 2 in its own room and (@join) joins SFU 2 with it; the
        admission is stored with SFU 2's url within WATCH_FLUSH_MS (250 ms). Returns the
        identity."""
        room = f"!{name}:hs1.test"
        status, doc = self.token(name, SFU2, room=room)
        self.assertEqual(status, 200, doc)
        if join:
            r = self.join(name, 2, doc["jwt"])
            self.assertTrue(r["ok"], r)
        ident = self.ident(name)
        self.assertTrue(self.until(lambda: self.stored_admissions(ident) == [
            (SFU2, lk_hash(room, SLOT))], timeout=5), self.stored_admissions(ident))
        return ident

    def restart(self, env, while_stopped=lambda: None):
        """Stops the daemon, calls @while_stopped, starts it again with @env."""
        self.assertEqual(self.d.stop(), 0)
        while_stopped()
        self.d.env = env
        self.d.start()

    def restart_as_usual(self):
        if self.d.env != self.normal_env:
            self.d.stop()
            self.d.env = dict(self.normal_env)
            self.d.start()

    # -- tests --------------------------------------------------------------------------------
    def test_transports_list_every_sfu_in_order(self):
        """No SFU involved: the list the daemon advertises."""
        status, _, data = self.c1.request("GET", "/_matrix/client/v1/rtc/transports",
                                          headers={"Authorization": "Bearer tok_alice"})
        self.assertEqual(status, 200, data)
        self.assertEqual(json.loads(data), {"rtc_transports": [
            {"type": "livekit", "url": SFU1,
             "livekit_service_url": "https://hs1.test/livekit/jwt"},
            {"type": "livekit", "url": SFU2,
             "livekit_service_url": "https://hs1.test/livekit/jwt/2"}]})

    def test_client_tokens_signed_for_the_sfu_of_the_url(self):
        """The real servers: alice joins each with the token for it (the daemon created the room
        there: the servers create none themselves) and is refused by the other with it."""
        s1, t1 = self.token("alice", SFU1)
        s2, t2 = self.token("alice", SFU2 + "/")  # a trailing slash names the same SFU
        self.assertEqual((s1, s2), (200, 200), (t1, t2))
        for n, doc in ((1, t1), (2, t2)):
            with self.subTest(sfu=n):
                r = self.join(f"alice-{n}", n, doc["jwt"])
                self.assertTrue(r["ok"], r)
                self.assertEqual((r["identity"], r["room"]), (self.ident("alice"), ROOM))
                r = self.join(f"alice-{n}-at-{3 - n}", 3 - n, doc["jwt"])
                self.assertFalse(r.get("ok"), f"SFU {3 - n} accepted SFU {n}'s token")
                self.assertIn("401 Unauthorized", r["error"])
        self.assertIn(ROOM, self.tb.livekit_rooms(self.lk2))
        for n in (1, 2):
            self.lk(op="leave", id=f"alice-{n}")
        for url in ("wss://sfu3.hs1.test", "wss://sfu.hs2.test/x", "https://sfu2.hs1.test"):
            status, doc = self.token("alice", url)
            self.assertEqual(status, 400, (url, doc))
            self.assertEqual(doc["errcode"], "M_INVALID_PARAM")

    def test_federated_token_for_the_second_sfu(self):
        """The real servers judge the token hs1's daemon minted for erin of hs2."""
        body = {"url": SFU2, "room_id": "!call:hs1.test", "slot_id": SLOT,
                "member": {"id": "mf"}, "server_name": "hs1.test"}
        status, _, data = self.c2.request("POST", GET_TOKEN, body=body,
                                          headers={"Authorization": "Bearer tok_erin"})
        self.assertEqual(status, 200, data)
        jwt = json.loads(data)["jwt"]
        self.assertEqual((self.validate(2, jwt), self.validate(1, jwt)), (200, 401))
        status, _, data = self.c2.request("POST", GET_TOKEN, body=dict(body, url="wss://no.hs1.test"),
                                          headers={"Authorization": "Bearer tok_erin"})
        self.assertEqual(status, 400, data)
        self.assertEqual(json.loads(data)["errcode"], "M_INVALID_PARAM")

    def test_openid_endpoints_under_each_service_url(self):
        """The real servers judge the tokens of lk-jwt-service's endpoints."""
        oid = {"access_token": "oid_alice", "token_type": "Bearer",
               "matrix_server_name": "hs1.test", "expires_in": 3600}
        get_token = {"room_id": "!call:hs1.test", "slot_id": SLOT, "openid_token": oid,
                     "member": {"id": "mo", "claimed_user_id": "@alice:hs1.test",
                                "claimed_device_id": "DEV_alice"}}
        sfu_get = {"room": "!call:hs1.test", "device_id": "DEV_alice", "openid_token": oid}
        for prefix, n, url in (("/livekit/jwt", 1, SFU1), ("/livekit/jwt/2", 2, SFU2)):
            for path, body in (("/get_token", get_token), ("/sfu/get", sfu_get)):
                status, _, data = self.c1.request("POST", prefix + path, body=body)
                self.assertEqual(status, 200, (prefix, path, data))
                doc = json.loads(data)
                self.assertEqual(doc["url"], url)
                self.assertEqual((self.validate(n, doc["jwt"]), self.validate(3 - n, doc["jwt"])),
                                 (200, 401), (prefix, path))
        # No third SFU: nginx passes the path, the daemon does not know it.
        status, _, _ = self.c1.request("POST", "/livekit/jwt/3/get_token", body=get_token)
        self.assertEqual(status, 404)

    def test_readiness_and_metrics_per_sfu(self):
        """The real SFU 2 killed (SIGKILL: down, connections refused) and started again."""
        self.assertTrue(self.until(lambda: self.readyz()[0] == 200))
        status, doc = self.readyz()
        self.assertEqual(doc["sfus"], [{"sfu": 1, "url": SFU1, "ready": True},
                                       {"sfu": 2, "url": SFU2, "ready": True}])
        m = self.metrics()
        self.assertEqual(m[("mrtc_sfu_up", (("sfu", "2"),))], 1)
        self.assertGreaterEqual(m[("mrtc_roomservice_calls_total",
                                   (("result", "ok"), ("sfu", "2")))], 1)
        self.tb.stop_livekit(self.lk2)
        down = time.monotonic()
        try:
            self.assertTrue(self.until(lambda: not self.readyz()[1]["sfus"][1]["ready"]))
            # Three missed probes at MRTC_READINESS_INTERVAL=1 s.
            print(f"/readyz named SFU 2 not ready {time.monotonic() - down:.2f} s after it "
                  "went down", file=sys.stderr)
            status, doc = self.readyz()
            # The first SFU still serves: the daemon stays ready, naming the one that is not.
            self.assertEqual(status, 200, doc)
            self.assertIs(doc["checks"]["sfu"], True)
            self.assertEqual(doc["sfus"][0]["ready"], True)
            self.assertEqual(doc["sfus"][1], {"sfu": 2, "url": SFU2, "ready": False})
            m = self.metrics()
            self.assertEqual(m[("mrtc_sfu_up", (("sfu", "2"),))], 0)
            self.assertEqual(m[("mrtc_sfu_up", (("sfu", "1"),))], 1)
            self.assertIn("SFU 2 (wss://sfu2.hs1.test) probe failed", self.d.logs())
        finally:
            self.tb.start_livekit(self.lk2)
        self.assertTrue(self.until(lambda: self.readyz()[1]["sfus"][1]["ready"]))

    def test_delegation_and_webhook_on_the_second_sfu(self):
        """The real servers and their webhooks. bob delegates his leave for SFU 2 and is in the
        call on both servers (the same identity, the same room name): leaving SFU 1 (its real
        participant_left, signed with SFU 1's key) does not end the job of SFU 2, which polls
        SFU 2 only; leaving SFU 2 sends the leave, once. A webhook with SFU 2's key and a wrong
        secret, a fault no real server sends, is signed by livekit-server-sdk and refused."""
        hs, room = self.hs1.hs_url, "!deleg:hs1.test"
        ident = self.ident("bob")
        post(hs + "/_test/delayed", {"delay_id": "de_b", "delay": 2000, "state": "scheduled",
                                     "user_id": "@bob:hs1.test", "room_id": room})
        jwts = {}
        for n, url in ((1, SFU1), (2, SFU2)):
            status, doc = self.token("bob", url, room=room)
            self.assertEqual(status, 200, doc)
            jwts[n] = doc["jwt"]
        body = {"url": SFU2, "room_id": room, "slot_id": SLOT, "member": {"id": "m1"},
                "delay_id": "de_b"}
        status, _, data = self.c1.request("POST", DELEGATE, body=body,
                                          headers={"Authorization": "Bearer tok_bob"})
        self.assertEqual(status, 200, data)
        for n in (1, 2):
            r = self.join(f"bob-{n}", n, jwts[n])
            self.assertTrue(r["ok"], r)

        def actions():
            ev = get(hs + "/_test/delayed").get("de_b", {})
            return [a["action"] for a in ev.get("actions", [])]
        self.assertTrue(self.until(lambda: "restart" in actions()))
        self.lk(op="leave", id="bob-1")
        self.assertTrue(self.until(lambda: [
            line for line in self.tb.livekit_log_lines(self.lk1, '"event": "participant_left"')
            if ident in line]), "SFU 1 sent no participant_left")
        time.sleep(1.5)
        self.assertNotIn("send", actions())
        # A wrong secret for SFU 2's key: refused.
        event = json.dumps({"event": "participant_left", "room": {"name": lk_hash(room, SLOT)},
                            "participant": {"identity": ident}})
        self.node.stdin.write(json.dumps({"op": "webhook", "key": self.lk2.key,
                                          "secret": "not-the-secret", "body": event}) + "\n")
        self.node.stdin.flush()
        forged = json.loads(self.node.stdout.readline())["token"]
        status, _, _ = self.d.request("POST", "/sfu_webhook", body=event, headers={
            "Authorization": forged, "Content-Type": "application/webhook+json"})
        self.assertEqual(status, 401)
        time.sleep(1.0)
        self.assertNotIn("send", actions())
        self.lk(op="leave", id="bob-2")
        self.assertTrue(self.until(lambda: "send" in actions(), timeout=10))
        time.sleep(1.0)
        self.assertEqual(actions().count("send"), 1)
        self.assertTrue(self.service_calls(2, "GetParticipant", ident))
        self.assertFalse(self.service_calls(1, "GetParticipant", ident))

    def test_watch_removes_from_the_sfu_it_admitted_on(self):
        """The real SFU 2: carol, admitted there, leaves the Matrix room; the watch removes her
        (her client sees PARTICIPANT_REMOVED), and asks SFU 1 nothing about her."""
        ident = self.admitted_on_sfu2("carol")
        self.membership("carol", "!carol:hs1.test", "leave")
        self.assertTrue(self.until(lambda: self.removed_by_server("carol"), timeout=10),
                        self.lk(op="state", id="carol"))
        self.assertTrue(self.service_calls(2, "RemoveParticipant", ident))
        self.assertFalse(self.service_calls(1, "RemoveParticipant", ident))

    def test_watch_after_a_restart_removes_from_the_sfu_it_admitted_on(self):
        """The real SFU 2: dave is admitted and joins there; the store keeps the SFU (its url)
        with the admission; the daemon stops, dave leaves the room, the daemon starts again: the
        watch, reloaded from the store, removes dave from SFU 2, not SFU 1, and forgets the
        stored admission."""
        self.removed_after_a_restart("dave", dict(self.normal_env))

    def test_watch_after_renumbering_follows_the_url(self):
        """The real servers: frank is admitted and joins SFU 2; the daemon restarts with the two
        SFUs swapped (SFU 2's url, key and secret are now LIVEKIT_URL...): the stored admission
        names its SFU by url, so frank, who left the room meanwhile, is removed from the server
        he is on (now number 1), not from the other one."""
        lk1, lk2, normal = self.lk1, self.lk2, self.normal_env
        swapped = {k: v for k, v in normal.items() if "_2" not in k}
        swapped.update({"LIVEKIT_URL": SFU2, "LIVEKIT_KEY": lk2.key, "LIVEKIT_SECRET": lk2.secret,
                        "MRTC_LIVEKIT_API_URL": lk2.api_url,
                        "LIVEKIT_URL_2": SFU1, "LIVEKIT_KEY_2": lk1.key,
                        "LIVEKIT_SECRET_2": lk1.secret, "MRTC_LIVEKIT_API_URL_2": lk1.api_url})
        self.removed_after_a_restart("frank", swapped)

    def removed_after_a_restart(self, name, env):
        ident = self.admitted_on_sfu2(name)
        room = f"!{name}:hs1.test"
        try:
            self.restart(env, lambda: self.membership(name, room, "leave"))
            self.assertTrue(self.until(lambda: self.removed_by_server(name), timeout=10),
                            self.d.logs())
            self.assertTrue(self.service_calls(2, "RemoveParticipant", ident))
            self.assertFalse(self.service_calls(1, "RemoveParticipant", ident))
            self.assertTrue(self.until(lambda: self.stored_admissions(ident) == [], timeout=5),
                            self.stored_admissions(ident))
        finally:
            self.membership(name, room, "join")
            self.restart_as_usual()

    def test_watch_on_an_sfu_no_longer_configured_is_dropped(self):
        """No participant needed (nobody is removed): gina is admitted on SFU 2; the daemon
        restarts without SFU 2: her stored admission is dropped with a warning (no SFU to
        remove her from), not moved to SFU 1."""
        ident = self.admitted_on_sfu2("gina", join=False)
        try:
            self.restart({k: v for k, v in self.d.env.items() if "_2" not in k})
            self.assertTrue(self.until(lambda: "which is not configured any more" in
                                       self.d.logs(), timeout=5), self.d.logs())
            self.assertEqual(self.stored_admissions(ident), [])
        finally:
            self.restart_as_usual()

    def test_check_config_names_every_problem(self):
        """No SFU involved: --check-config and --help only."""
        KEY2, SECRET2 = self.lk2.key, self.lk2.secret  # noqa: N806
        base = {k: v for k, v in self.tb.mrtc_env(self.hs1).items()
                if k not in self.hs1.extra_env and "_2" not in k}
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
