# SPDX-License-Identifier: Apache-2.0
"""A real call: Element Call 0.26.1, unmodified, in headless Chromium (the host page and driver of
test_element_call.py), against LiveKit's own server (one per homeserver, the release test/deps.sh
pins; the stand-in SFU is not involved). @alice:hs1.test and @carol:hs2.test each get their
tokens from their own homeserver's daemon, join the LiveKit room of the call with Chromium's fake
camera and microphone, and must see and hear each other; then alice's page closes without
hanging up, and the delayed leave she delegated to hs1's daemon must be sent, once.

What is asserted, and from where:
- LiveKit's side (RoomService ListParticipants on each server, room-scoped admin tokens made
  here): alice and carol are in the call's room, each with published audio and video tracks;
  after alice's page closed, she is gone.
- Subscriptions: LiveKit's server API does not expose who subscribes to what, so this is the
  clients' side: every RTCPeerConnection of each page is recorded and its getStats() read; each
  page must receive audio and video bytes (which only flow for a subscribed track), over a
  connection to a LiveKit server of the testbed.
- The leave: the test homeserver records each management call of a delayed event (MSC4140); the
  one Element Call scheduled for alice is sent exactly once.

Usage: test_element_call_livekit.py <mrtc-transportd>
"""
import os
import sys
import time
import unittest

import jwt  # python3-jwt: room-scoped admin tokens for ListParticipants

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "testbed"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.path.insert(0, HERE)
from harness import get_json  # noqa: E402
from testbed import LIVEKIT_KEY, Testbed  # noqa: E402
from test_element_call import ROOM, ROOM_NAME, USERS, lk_hash, run_driver, serve_clients  # noqa: E402

BINARY = None
CALLERS = ("alice", "carol")


def admin_token(secret):
    now = int(time.time())
    return jwt.encode({"iss": LIVEKIT_KEY, "sub": "mrtc-test", "nbf": now - 10,
                       "exp": now + 900, "video": {"roomAdmin": True, "room": ROOM_NAME}},
                      secret, algorithm="HS256")


class RealCall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        joined = {USERS[n][1]: "join" for n in CALLERS}
        state = {}
        for name in CALLERS:
            server, user, device, token = USERS[name]
            st = state.setdefault(server, {"users": {}, "rooms": {ROOM: {"members": joined}},
                                           "unstable_features": {"org.matrix.msc4140": True}})
            st["users"][token] = {"user_id": user, "device_id": device}
        cls.tb = Testbed(mrtc_binary=BINARY, state=state, livekit=True)
        for s in cls.tb.servers.values():  # delegation needs a job store, one per daemon
            s.extra_env = {"MRTC_STORE": "sqlite:" + cls.tb.path(f"jobs-{s.name}.db")}
        serve_clients(cls.tb)
        try:
            cls.tb.start(with_daemons=True, LIVEKIT_FULL_ACCESS_HOMESERVERS="hs1.test,hs2.test",
                         MRTC_MIN_DELAY_MS="1000")
            cls.out = cls.tb.path("element-call")
            os.makedirs(cls.out)
            participants = []
            for name in CALLERS:
                server, user, device, token = USERS[name]
                participants.append({"name": name, "origin": f"https://{server}",
                                     "userId": user, "deviceId": device, "accessToken": token,
                                     "roomId": ROOM})
            hs1 = cls.tb.hs("hs1.test")
            cfg = {"participants": participants, "waitMs": 60000, "realCall": {
                "livekit": [{"name": s.name, "api": s.lk_api_url, "room": ROOM_NAME,
                             "token": admin_token(s.secret)} for s in cls.tb.servers.values()],
                "leave": "alice", "leaveUser": USERS["alice"][1],
                "homeserver": hs1.hs_url, "leaveWaitMs": 30000}}
            cls.results = run_driver(cls.tb, cls.out, cfg)
        except BaseException:
            cls.tb.stop(failed=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop(failed=cls.failed)

    failed = False

    def run(self, result=None):
        r = super().run(result)
        if result and (result.failures or result.errors):
            type(self).failed = True
        return r

    def livekit(self):
        lk = self.results.get("livekit")
        self.assertIsNotNone(lk, f"no LiveKit snapshot from the driver: {list(self.results)}")
        return lk

    def in_room(self, snapshot, server):
        """identity -> participant in the call's room at @server's LiveKit."""
        ps = snapshot[server]
        self.assertIsInstance(ps, list, f"ListParticipants at {server}: {ps}")
        return {p["identity"]: p for p in ps}

    def identity(self, name, server):
        """Who @name is at @server's LiveKit: at its own server the identity of the token from
        /sfu/get (lk-jwt-service's user:device), at the other one the hashed identity of the
        token from that server's /get_token (user, device and the member id of its
        org.matrix.msc3401.call.member event)."""
        home, user, device, _ = USERS[name]
        if server == home:
            return f"{user}:{device}"
        ids = {e["content"].get("membershipID") for e in self.results[name]["stateEvents"]
               if e["type"] == "org.matrix.msc3401.call.member" and e["content"]}
        self.assertEqual(len(ids), 1, f"{name}'s call.member events: {ids}")
        return lk_hash(user, device, ids.pop())

    def test_1_both_in_the_real_rooms(self):
        """Each LiveKit server lists, in the call's room, its own user publishing audio and
        video (camera and microphone), and the other server's user as a participant there
        (subscribing: no tracks of its own). Multi-SFU: each publishes on its own transport."""
        during = self.livekit()["during"]
        for server in self.tb.servers:
            ps = self.in_room(during, server)
            for name in CALLERS:
                ident = self.identity(name, server)
                self.assertIn(ident, ps, f"{name} not in the room at {server}: {list(ps)}")
                tracks = {(t["type"], t.get("source")) for t in ps[ident].get("tracks", [])}
                if USERS[name][0] == server:
                    self.assertEqual(tracks, {("AUDIO", "MICROPHONE"), ("VIDEO", "CAMERA")})
                else:
                    self.assertEqual(tracks, set())
            self.assertEqual(len(ps), 2, list(ps))

    def test_2_each_receives_the_others_media(self):
        """Each page receives audio and video from the other's server (the port of the
        connection's selected remote candidate is that LiveKit server's ICE port), and sends
        its own to its own server."""
        for name in CALLERS:
            home = USERS[name][0]
            other = [s for s in self.tb.servers.values() if s.name != home][0]
            own = self.tb.hs(home)
            media = self.results[name].get("media", [])

            def on(s, pc):
                if not pc["remote"]:
                    return False
                host, _, port = pc["remote"].split("/")[0].rpartition(":")
                return host in ("", s.svc) and int(port) in (s.lk_tcp_port, s.lk_udp_port)
            for kind in ("audio", "video"):
                got = [pc for pc in media if on(other, pc) and any(
                    i["kind"] == kind and i["bytes"] > 0 for i in pc["inbound"])]
                self.assertTrue(got, f"{name} receives no {kind} from {other.name}: {media}")
                sent = [pc for pc in media if on(own, pc) and any(
                    o["kind"] == kind and o["bytes"] > 0 for o in pc["outbound"])]
                self.assertTrue(sent, f"{name} sends no {kind} to {home}: {media}")

    def test_3_leave_sent_once(self):
        """alice's page closes: her delegated leave is sent once, and LiveKit drops her."""
        lk = self.livekit()
        self.assertIsNotNone(lk["sentMs"], "alice's delayed leave was never sent")
        events = get_json(self.tb.hs("hs1.test").hs_url + "/_test/delayed")
        alice = [e for e in events.values() if e["user_id"] == USERS["alice"][1]]
        sends = [a for e in alice for a in e.get("actions", []) if a["action"] == "send"]
        self.assertEqual(len(sends), 1, alice)
        for server in self.tb.servers:
            after = self.in_room(lk["after"], server)
            self.assertNotIn(self.identity("alice", server), after)
            self.assertIn(self.identity("carol", server), after)
        log = self.tb.hs("hs1.test").mrtc.logs()
        self.assertIn("ended: leave event sent", log)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
