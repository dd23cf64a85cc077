# SPDX-License-Identifier: Apache-2.0
"""The daemon against LiveKit's own server (livekit-server, the release test/deps.sh pins), one per
homeserver, in the configuration the testbed writes (no --dev: the daemon's key and secret,
`room.auto_create: false`, webhooks to the daemon's /sfu_webhook, ICE on the testbed's loopback
address). Every test here uses the real server; the stand-in SFU (sfu.mjs) is not involved. The
participants are LiveKit's own client, @livekit/rtc-node, and the server is read back through
livekit-server-sdk's RoomServiceClient (test/testbed/lkclient.mjs).

The delayed-leave jobs poll the SFU once when delegated and then only every 60 s
(MRTC_DELAYED_POLL_MS=60000), so whatever happens within a test's few seconds after that first
poll was driven by LiveKit's webhooks.

Usage: test_livekit_real.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.request

import jwt  # python3-jwt: re-signs the daemon's tokens with one claim changed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "testbed"))
sys.path.insert(0, HERE)
from harness import RemembersFailure, post_json as post, get_json as get  # noqa: E402
from testbed import LIVEKIT_KEY, LiveKitClients, Testbed  # noqa: E402

BINARY = None
CS = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
USERS = {f"tok_{n}": {"user_id": f"@{n}:hs1.test", "device_id": f"DEV_{n}"} for n in NAMES}
ROOMS = ("!call:hs1.test", "!kick:hs1.test", "!fin:hs1.test")
STATE = {"hs1.test": {"users": USERS, "rooms": {r: {"members": {
    u["user_id"]: "join" for u in USERS.values()}} for r in ROOMS}}}
ENV = {"MRTC_DELAYED_POLL_MS": "60000", "MRTC_DELAYED_CONNECT_WAIT": "8",
       "MRTC_MEMBERSHIP_RECHECK": "1", "MRTC_MEMBERSHIP_CACHE_TTL": "0",
       "MRTC_RATE_BURST": "1000", "MRTC_MIN_DELAY_MS": "1000"}
SLOT = "m.call#ROOM"


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


class RealLiveKit(RemembersFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=STATE, livekit=True)
        try:
            cls.tb.start(with_daemons=True, **ENV)  # the default store: each daemon its own
            cls.hs1 = cls.tb.hs("hs1.test")
            cls.hs2 = cls.tb.hs("hs2.test")
            cls.lk_log = open(cls.tb.path("lkclient.log"), "w")
            cls.lk = LiveKitClients(cls.lk_log)
        except BaseException:
            cls.tb.stop(failed=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lk.close()
        cls.lk_log.close()
        logs = "".join(s.mrtc.logs() for s in cls.tb.servers.values())
        cls.tb.stop(failed=cls.failed)
        assert "de_" not in logs, "a delay_id reached the log"

    # -- helpers ------------------------------------------------------------------------------
    def token(self, name, room="!call:hs1.test", member="m1", server=None):
        """A LiveKit token from the daemon (client-server get_token)."""
        s = server or self.hs1
        status, _, data = s.mrtc.request(
            "POST", CS + "/get_token", headers={"Authorization": f"Bearer tok_{name}"},
            body=json.dumps({"url": s.livekit_url, "room_id": room, "slot_id": SLOT,
                             "member": {"id": member}}))
        self.assertEqual(status, 200, data)
        return json.loads(data)["jwt"]

    def ident(self, name, member="m1"):
        u = USERS[f"tok_{name}"]
        return lk_hash(u["user_id"], u["device_id"], member)

    def lk_url(self, s=None):
        """Where rtc-node reaches the server: its plain signalling port on loopback (the public
        wss://sfu.<hs> through nginx is what the browser test uses)."""
        return f"ws://{(s or self.hs1).svc}:{(s or self.hs1).lk_port}"

    def join(self, pid, token, publish=False, s=None):
        return self.lk(op="join", id=pid, url=self.lk_url(s), token=token, publish=publish)

    def svc(self, op, s=None, **kw):
        s = s or self.hs1
        return self.lk(op=op, url=s.lk_api_url, key=LIVEKIT_KEY, secret=s.secret, **kw)

    def participants(self, room_id):
        out = self.svc("participants", room=lk_hash(room_id, SLOT))
        self.assertNotIn("error", out)
        return {p["identity"]: p for p in out["participants"]}

    def wait_for(self, cond, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.2)
        return cond()

    def delayed_event(self, delay_id, name, room_id, delay=30000):
        post(self.hs1.hs_url + "/_test/delayed", {
            "delay_id": delay_id, "delay": delay, "user_id": USERS[f"tok_{name}"]["user_id"],
            "room_id": room_id})

    def delegate(self, name, delay_id, room_id, member="m1"):
        status, _, data = self.hs1.mrtc.request(
            "POST", CS + "/delegate_delayed_leave", headers={"Authorization": f"Bearer tok_{name}"},
            body=json.dumps({"url": self.hs1.livekit_url, "room_id": room_id, "slot_id": SLOT,
                             "member": {"id": member}, "delay_id": delay_id}))
        self.assertEqual(status, 200, data)

    def actions(self, delay_id):
        ev = get(self.hs1.hs_url + "/_test/delayed").get(delay_id, {})
        return [a["action"] for a in ev.get("actions", [])]

    def lk_log_lines(self, s, what):
        return self.tb.livekit_log_lines(s.name, what)

    # -- tests --------------------------------------------------------------------------------
    def test_1_create_room_with_the_daemons_timeouts(self):
        """get_token makes the daemon call CreateRoom; ListRooms shows its timeouts."""
        self.token("alice")
        rooms = {r["name"]: r for r in self.svc("rooms")["rooms"]}
        room = rooms.get(lk_hash("!call:hs1.test", SLOT))
        self.assertIsNotNone(room, f"no such room on LiveKit: {list(rooms)}")
        self.assertEqual(room["emptyTimeout"], 300)
        self.assertEqual(room["departureTimeout"], 20)
        created = self.lk_log_lines(self.hs1, "RoomService.CreateRoom")
        self.assertTrue(created and '"status": "200"' in created[-1], created)

    def test_2_tokens_accepted_and_media_flows(self):
        """Two users' tokens from the daemon join; each subscribes to the other's track."""
        a = self.join("a2", self.token("alice", member="m2"), publish=True)
        b = self.join("b2", self.token("bob", member="m2"), publish=True)
        self.assertTrue(a["ok"], a)
        self.assertTrue(b["ok"], b)
        self.assertEqual(a["identity"], self.ident("alice", "m2"))
        self.assertEqual(a["room"], lk_hash("!call:hs1.test", SLOT))
        ps = self.participants("!call:hs1.test")
        for name in ("alice", "bob"):
            p = ps.get(self.ident(name, "m2"))
            self.assertIsNotNone(p, f"{name} not listed by ListParticipants: {list(ps)}")
            self.assertTrue(p["permission"]["canPublish"])
            self.assertFalse(p["permission"].get("canUpdateMetadata", False))
        self.assertTrue(self.wait_for(lambda: all(ps[self.ident(n, "m2")]["tracks"] for n in (
            "alice", "bob")) if (ps := self.participants("!call:hs1.test")) else False),
            "no published track listed")
        self.assertTrue(self.wait_for(
            lambda: self.ident("bob", "m2") in self.lk(op="state", id="a2")["subscribed"] and
            self.ident("alice", "m2") in self.lk(op="state", id="b2")["subscribed"]),
            "the participants did not subscribe to each other's tracks")
        self.lk(op="leave", id="a2")
        self.lk(op="leave", id="b2")

    def test_3_tokens_the_server_refuses(self):
        """LiveKit itself refuses: another room, an expired token, another server's secret."""
        good = self.token("carol")
        claims = jwt.decode(good, self.hs1.secret, algorithms=["HS256"])
        now = int(time.time())
        other = dict(claims, video=dict(claims["video"], room=lk_hash("!other:hs1.test", SLOT)))
        expired = dict(claims, nbf=now - 7200, exp=now - 3600)
        cases = {  # what LiveKit answers (rtc-node's error carries the status and reason)
            "another room": (jwt.encode(other, self.hs1.secret, algorithm="HS256"),
                             "404 Not Found - requested room does not exist"),
            "expired": (jwt.encode(expired, self.hs1.secret, algorithm="HS256"),
                        "token is expired"),
            "hs2's secret": (jwt.encode(claims, self.hs2.secret, algorithm="HS256"),
                             "401 Unauthorized"),
        }
        for what, (tok, why) in cases.items():
            with self.subTest(what):
                r = self.join("c3-" + what, tok)
                self.assertFalse(r.get("ok"), f"LiveKit accepted the token ({what})")
                self.assertIn(why, r["error"])
        self.assertNotIn(self.ident("carol"), self.participants("!call:hs1.test"))
        ok = self.join("c3", good)  # the untouched token is accepted
        self.assertTrue(ok["ok"], ok)
        self.lk(op="leave", id="c3")

    def test_4_membership_watch_removes_a_real_participant(self):
        """dave leaves the Matrix room: the daemon's RemoveParticipant disconnects him."""
        r = self.join("d4", self.token("dave", room="!kick:hs1.test"))
        self.assertTrue(r["ok"], r)
        self.assertIn(self.ident("dave"), self.participants("!kick:hs1.test"))
        time.sleep(1.5)
        self.assertFalse(self.lk(op="state", id="d4")["disconnected"])
        post(self.hs1.hs_url + "/_test/patch", {"room": "!kick:hs1.test",
                                                "member": "@dave:hs1.test", "membership": "leave"})
        self.assertTrue(self.wait_for(lambda: self.lk(op="state", id="d4")["disconnected"]),
                        "dave still connected")
        st = self.lk(op="state", id="d4")
        self.assertEqual(st["reason"], "PARTICIPANT_REMOVED", st)
        self.assertNotIn(self.ident("dave"), self.participants("!kick:hs1.test"))
        self.assertTrue(self.lk_log_lines(self.hs1, "RoomService.RemoveParticipant"))
        self.lk(op="leave", id="d4")

    def test_5_real_webhooks_drive_delegated_leave(self):
        """erin delegates, then joins: participant_joined keeps the leave back past the connect
        wait (8 s; the next poll is 60 s away); participant_left sends it, once."""
        tok = self.token("erin", member="m5")
        self.delayed_event("de_erin", "erin", "!call:hs1.test")
        self.delegate("erin", "de_erin", "!call:hs1.test", member="m5")
        time.sleep(1.0)  # the job's first poll (GetParticipant: not there yet)
        r = self.join("e5", tok)
        self.assertTrue(r["ok"], r)
        time.sleep(11)  # past MRTC_DELAYED_CONNECT_WAIT: still connected, nothing sent
        self.assertNotIn("send", self.actions("de_erin"))
        self.assertIn("restart", self.actions("de_erin"))
        self.lk(op="leave", id="e5")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_erin"), timeout=10),
                        "participant_left did not send the leave")
        time.sleep(1.5)
        self.assertEqual(self.actions("de_erin").count("send"), 1)
        self.assertTrue(self.lk_log_lines(self.hs1, '"event": "participant_left"'))

    def test_6_get_participant_sees_a_real_participant(self):
        """frank joins, then delegates: the job's GetParticipant finds him on the SFU."""
        r = self.join("f6", self.token("frank", member="m6"))
        self.assertTrue(r["ok"], r)
        ident = self.ident("frank", "m6")
        # His participant_joined webhook comes before the job exists, so only the poll can
        # tell the job that he is there.
        self.assertTrue(self.wait_for(lambda: [
            line for line in self.lk_log_lines(self.hs1, '"event": "participant_joined"')
            if ident in line]))
        time.sleep(1.0)
        self.delayed_event("de_frank", "frank", "!call:hs1.test")
        self.delegate("frank", "de_frank", "!call:hs1.test", member="m6")
        self.assertTrue(self.wait_for(
            lambda: "participant of @frank:hs1.test is on the SFU" in self.hs1.mrtc.logs()))
        polls = [line for line in self.lk_log_lines(self.hs1, "RoomService.GetParticipant")
                 if ident in line]
        self.assertTrue(polls and '"status": "200"' in polls[-1], polls)
        self.lk(op="leave", id="f6")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_frank"), timeout=10))

    def test_7_room_finished_sends_the_leave(self):
        """The room is deleted while alice's job waits for her: room_finished sends it, well
        before the 8 s connect wait would have."""
        r = self.join("b7", self.token("bob", room="!fin:hs1.test", member="m7"))
        self.assertTrue(r["ok"], r)
        self.token("alice", room="!fin:hs1.test", member="m7")
        self.delayed_event("de_alice7", "alice", "!fin:hs1.test")
        start = time.monotonic()
        self.delegate("alice", "de_alice7", "!fin:hs1.test", member="m7")
        time.sleep(0.5)
        out = self.svc("delete_room", room=lk_hash("!fin:hs1.test", SLOT))
        self.assertNotIn("error", out)
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_alice7"), timeout=10))
        self.assertLess(time.monotonic() - start, 7.5, "sent by the connect wait, not the webhook")
        self.assertTrue(self.lk_log_lines(self.hs1, '"event": "room_finished"'))
        self.lk(op="leave", id="b7")

    def test_8_the_stand_in_answers_as_livekit_does(self):
        """The stand-in SFU the fault tests use answers RoomService calls as LiveKit's server
        does: status, content type and Twirp error code, for each case here."""
        def call(url, method, body, secret, grant):
            now = int(time.time())
            tok = jwt.encode({"iss": LIVEKIT_KEY, "sub": "mrtc-test", "nbf": now - 10,
                              "exp": now + 300, "video": grant}, secret, algorithm="HS256")
            req = urllib.request.Request(f"{url}/twirp/livekit.RoomService/{method}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {tok}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, ctype, data = r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as e:
                status, ctype, data = e.code, e.headers["Content-Type"], e.read()
            code = json.loads(data).get("code") if ctype.startswith("application/json") else None
            return status, ctype.split(";")[0], code
        s = self.hs1
        room = lk_hash("!call:hs1.test", SLOT)
        self.token("alice")  # the room exists on both: the daemon's CreateRoom
        cases = {
            "wrong secret": ("CreateRoom", {"name": room}, "wrong-secret", {"roomCreate": True}),
            "create": ("CreateRoom", {"name": room, "empty_timeout": 300}, s.secret,
                       {"roomCreate": True}),
            "absent participant": ("GetParticipant", {"room": room, "identity": "nobody"},
                                   s.secret, {"roomAdmin": True, "room": room}),
            "grant for another room": ("GetParticipant", {"room": room, "identity": "nobody"},
                                       s.secret, {"roomAdmin": True, "room": "elsewhere"}),
            "no roomCreate grant": ("CreateRoom", {"name": "r2"}, s.secret, {"roomJoin": True}),
        }
        post(s.sfu_url + "/_test/mode", {"mode": "normal"})
        for what, (method, body, secret, grant) in cases.items():
            with self.subTest(what):
                real = call(s.lk_api_url, method, body, secret, grant)
                stand_in = call(s.sfu_url, method, body, secret, grant)
                self.assertEqual(stand_in, real)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
