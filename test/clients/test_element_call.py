# SPDX-License-Identifier: Apache-2.0
"""A real call: Element Call 0.26.1, unmodified, as the client, against LiveKit's own server (one
per homeserver, the release test/deps.sh pins; the stand-in SFU is not involved). Element Call's
dist/ is served by the testbed's nginx and runs as a widget in headless Chromium (playwright-core,
fake camera and microphone) inside a small host page on matrix-widget-api
(test/clients/element_call/host.html), which answers the widget actions from the test homeserver
and the daemon (OpenID from request_token, transports from /rtc/transports, delayed events
scheduled at the homeserver). Element Call has to find the transport, get its tokens from the
daemons on its own and join LiveKit through wss://sfu.<hs> (nginx, TLS).

Participants, starting together in one call (Element Call 0.26.1 is multi-SFU: each publishes on
its own transport and subscribes at the others'): @alice:hs1.test and @carol:hs2.test (each
daemon checks the other server's user's OpenID token at her homeserver over federation), and
@mallory:hs1.test, whose host page claims a join the homeserver does not know of: no token, and
never in a LiveKit room.

What is asserted, and from where:
- LiveKit's side (RoomService ListParticipants on each server, room-scoped admin tokens made
  here): alice and carol are in the call's room on both servers, each publishing audio and video
  on her own; nobody else is; after alice's page closed, she is gone.
- Subscriptions: LiveKit's server API does not show who subscribes to what, so this is the
  clients' side: every RTCPeerConnection of each page is recorded and its getStats() read; each
  page must receive audio and video from the other's server (bytes flow only for a subscribed
  track) and send its own to its own server.
- The leave: alice's page closes without hanging up; the test homeserver records each MSC4140
  management call, and the delayed leave Element Call scheduled and delegated to hs1's daemon is
  sent exactly once.
With a daemon that puts another room in its tokens, LiveKit refuses the signalling ("requested
room does not exist") and the test fails.

Screenshots, each page's console and the state events sent go to the testbed folder
(element-call/), kept when the test fails.

Usage: test_element_call.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

import jwt  # python3-jwt: room-scoped admin tokens for ListParticipants

HERE = os.path.dirname(os.path.abspath(__file__))
EC = os.path.join(HERE, "element_call")
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "testbed"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
from harness import RemembersFailure, get_json  # noqa: E402
from testbed import LIVEKIT_KEY, Testbed  # noqa: E402

BINARY = None
CALLERS = ("alice", "carol")
ROOM = "!call:hs1.test"
USERS = {
    "alice": ("hs1.test", "@alice:hs1.test", "ALICEDEV", "tok_alice"),
    "carol": ("hs2.test", "@carol:hs2.test", "CAROLDEV", "tok_carol"),
    "mallory": ("hs1.test", "@mallory:hs1.test", "MALLORYDEV", "tok_mallory"),
}


SERVICE = {"hs1.test": "https://hs1.test/livekit/jwt", "hs2.test": "https://hs2.test/livekit/jwt"}


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


ROOM_NAME = lk_hash(ROOM, "m.call#ROOM")  # the LiveKit room of the call (lk-jwt-service's alias)


def state_event(type_, state_key, content, sender="@alice:hs1.test", n=0):
    return {"type": type_, "state_key": state_key, "content": content, "sender": sender,
            "room_id": ROOM, "event_id": f"$init{n}", "origin_server_ts": 1700000000000 + n,
            "unsigned": {}}


def member(user, n):
    return state_event("m.room.member", user, {"membership": "join"}, sender=user, n=n)


def serve_clients(tb):
    """Element Call's dist/, matrix-widget-api and the host page, served by @tb's nginx at
    /_client/ (set before tb.start())."""
    modules = os.path.join(EC, "node_modules")
    for pkg in ("@element-hq/element-call-embedded", "matrix-widget-api", "playwright-core"):
        if not os.path.isdir(os.path.join(modules, pkg)):
            raise RuntimeError(f"{pkg} missing: run `npm install` in {EC}")
    web = tb.path("web")
    os.makedirs(web)
    # Copies, not links: nginx workers (user nobody) may not traverse the checkout's folders
    # (a clone under a 0700 home or temporary folder).
    shutil.copytree(os.path.join(modules, "@element-hq", "element-call-embedded", "dist"),
                    os.path.join(web, "ec"))
    shutil.copytree(os.path.join(modules, "matrix-widget-api", "dist"),
                    os.path.join(web, "mxwidgets"))
    shutil.copy(os.path.join(EC, "host.html"), os.path.join(web, "host.html"))
    tb.client_root = web


def initial_state():
    """The call room's state as every participant's host page starts with it."""
    return [state_event("m.room.create", "", {"creator": "@alice:hs1.test",
                                              "room_version": "10"}),
            state_event("m.room.name", "", {"name": "mrtc call"}, n=1),
            state_event("m.room.join_rules", "", {"join_rule": "invite"}, n=2),
            member("@alice:hs1.test", 3), member("@carol:hs2.test", 4)]


def run_driver(tb, out, cfg):
    """Runs run.mjs with @cfg (participants and the mode) plus what reaching @tb takes;
    returns its JSON lines by "name"."""
    pem = subprocess.run(["openssl", "x509", "-in", tb.path("server.pem"), "-pubkey",
                          "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         check=True, capture_output=True).stdout
    rules = ", ".join(f"MAP {n} {s.address}" for s in tb.servers.values()
                      for n in (s.name, "sfu." + s.name))
    cfg = dict({"out": out, "spki": base64.b64encode(hashlib.sha256(der).digest()).decode(),
                "resolverRules": rules, "state": initial_state(), "sfus": []}, **cfg)
    path = tb.path("element-call.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run(["node", os.path.join(EC, "run.mjs"), path], capture_output=True,
                       text=True, timeout=170)
    with open(os.path.join(out, "driver.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"browser driver failed:\n{r.stderr[-3000:]}")
    found = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            found[d["name"]] = d
    return found


def admin_token(secret):
    now = int(time.time())
    return jwt.encode({"iss": LIVEKIT_KEY, "sub": "mrtc-test", "nbf": now - 10,
                       "exp": now + 900, "video": {"roomAdmin": True, "room": ROOM_NAME}},
                      secret, algorithm="HS256")


class RealCall(RemembersFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        joined = {USERS[n][1]: "join" for n in CALLERS}
        state = {}
        for name, (server, user, device, token) in USERS.items():
            # MSC4140 advertised: Element Call then schedules its leave as a delayed event.
            st = state.setdefault(server, {"users": {}, "rooms": {ROOM: {"members": joined}},
                                           "unstable_features": {"org.matrix.msc4140": True}})
            st["users"][token] = {"user_id": user, "device_id": device}
        cls.tb = Testbed(mrtc_binary=BINARY, state=state, livekit=True)
        # Delegation uses each daemon's default store (SQLite in its own MRTC_STATE_DIR).
        serve_clients(cls.tb)
        try:
            cls.tb.start(with_daemons=True, LIVEKIT_FULL_ACCESS_HOMESERVERS="hs1.test,hs2.test",
                         MRTC_MIN_DELAY_MS="1000")
            cls.out = cls.tb.path("element-call")
            os.makedirs(cls.out)
            participants = []
            for name, (server, user, device, token) in USERS.items():
                participants.append({"name": name, "origin": f"https://{server}",
                                     "userId": user, "deviceId": device, "accessToken": token,
                                     "roomId": ROOM, "extraState": [member(user, 5)]
                                     if name == "mallory" else []})
            hs1 = cls.tb.hs("hs1.test")
            cfg = {"participants": participants, "waitMs": 60000, "realCall": {
                "livekit": [{"name": s.name, "api": s.lk_api_url, "room": ROOM_NAME,
                             "token": admin_token(s.secret)} for s in cls.tb.servers.values()],
                "receivers": list(CALLERS), "leave": "alice", "leaveUser": USERS["alice"][1],
                "homeserver": hs1.hs_url, "leaveWaitMs": 30000}}
            cls.results = run_driver(cls.tb, cls.out, cfg)
        except BaseException:
            cls.tb.stop(failed=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop(failed=cls.failed)

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
        # carol stays on her own server (at alice's, Element Call may leave once nobody
        # publishes there).
        self.assertIn(self.identity("carol", "hs2.test"), self.in_room(lk["after"], "hs2.test"))
        log = self.tb.hs("hs1.test").mrtc.logs()
        self.assertIn("ended: leave event sent", log)


    def token_requests(self, name):
        res = self.results.get(name)
        self.assertIsNotNone(res, "no result from the browser driver")
        return res["tokenRequests"]

    def test_4_tokens_from_each_daemon(self):
        """alice gets her own transport's token from hs1's daemon (/sfu/get) and one for
        carol's transport from hs2's (/get_token, her OpenID token checked at hs1.test over
        federation); carol the other way round. alice's leave was scheduled as a delayed, empty
        call.member event through the host."""
        for name, other in (("alice", "hs2.test"), ("carol", "hs1.test")):
            home, user, device, _ = USERS[name]
            reqs = self.token_requests(name)
            self.assertIn([f"{SERVICE[home]}/sfu/get", 200], reqs,
                          f"last widget action {self.results[name]['lastAction']}")
            self.assertIn([f"{SERVICE[other]}/get_token", 200], reqs)
            asked = get_json(self.tb.hs(home).hs_url + "/_test/requests")["requests"]
            self.assertIn("/_matrix/federation/v1/openid/userinfo", [r["path"] for r in asked],
                          f"{name}'s OpenID token was not checked at her homeserver")
        _, user, device, _ = USERS["alice"]
        key = f"_{user}_{device}_m.call"
        leaves = [d for d in self.results["alice"]["delayed"]
                  if d["type"] == "org.matrix.msc3401.call.member" and d["state_key"] == key]
        self.assertTrue(leaves, self.results["alice"]["delayed"])
        self.assertEqual(leaves[0]["content"], {})
        self.assertGreater(leaves[0]["delay"], 0)

    def test_5_non_member_gets_nothing(self):
        """mallory's host claims a join his homeserver does not know of: no token, and he is in
        no LiveKit room (test_1 also checks that each room holds alice and carol only)."""
        reqs = self.token_requests("mallory")
        self.assertTrue(reqs, "mallory's Element Call never asked for a token (last widget "
                        f"action {self.results['mallory']['lastAction']}): nothing was tested")
        self.assertEqual([r for r in reqs if r[1] == 200], [], "tokens handed out")
        _, user, device, _ = USERS["mallory"]
        for server in self.tb.servers:
            ps = self.in_room(self.livekit()["during"], server)
            self.assertFalse([i for i in ps if i.startswith(user)], ps)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
