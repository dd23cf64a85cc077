# SPDX-License-Identifier: Apache-2.0
"""Element Call 0.26.1, unmodified, as the client: its dist/ served by the testbed's nginx, run as
a widget in headless Chromium (playwright-core) inside a small host page on matrix-widget-api
(test/clients/element_call/host.html). The host answers the widget actions from the test
homeserver and the daemon (OpenID from request_token, transports from /rtc/transports); Element
Call then has to find the transport, get a token from the daemon's /sfu/get on its own and open
LiveKit's signalling WebSocket to the test SFU through nginx, which verifies the access_token
with livekit-server-sdk and records room, identity and grants. (The stand-in, not LiveKit's
server: it records every handshake, also one that must never happen. The real call on LiveKit's
own server is test_element_call_livekit.py.)

Participants, starting together in one call (Element Call 0.26.1 is multi-SFU: each publishes on
its own transport and subscribes at the others'): @alice:hs1.test, @carol:hs2.test (hs1's daemon
checks her OpenID token at hs2.test), and @mallory:hs1.test, whose host page claims a join the
homeserver does not know of: no token, no connection. Screenshots and each
page's console go to the testbed folder (element-call/), kept when the test fails.

Usage: test_element_call.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import subprocess
import shutil
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EC = os.path.join(HERE, "element_call")
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "testbed"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
from harness import get_json  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
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


class ElementCall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        joined = {"@alice:hs1.test": "join", "@carol:hs2.test": "join"}
        state = {}
        for name, (server, user, device, token) in USERS.items():
            # MSC4140 advertised: Element Call then schedules its leave as a delayed event.
            st = state.setdefault(server, {"users": {}, "rooms": {ROOM: {"members": joined}},
                                           "unstable_features": {"org.matrix.msc4140": True}})
            st["users"][token] = {"user_id": user, "device_id": device}
        cls.tb = Testbed(mrtc_binary=BINARY, state=state)
        serve_clients(cls.tb)
        cls.tb.start(with_daemons=True, LIVEKIT_FULL_ACCESS_HOMESERVERS="hs1.test,hs2.test")
        cls.out = cls.tb.path("element-call")
        os.makedirs(cls.out)
        try:
            cls.results = cls.run_browser()
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

    @classmethod
    def run_browser(cls):
        tb = cls.tb
        participants = []
        # Signalling connections each is expected to open: its own transport, plus the call's
        # focus (alice's) for carol; mallory none.
        for name, conns in (("alice", 1), ("carol", 2), ("mallory", 0)):
            server, user, device, token = USERS[name]
            participants.append({"name": name, "origin": f"https://{server}", "userId": user,
                                 "deviceId": device, "accessToken": token, "roomId": ROOM,
                                 "waitMs": 40000, "connections": conns,
                                 "extraState": [member(user, 5)] if name == "mallory" else []})
        cfg = {"participants": participants, "sfus": [s.sfu_url for s in tb.servers.values()],
               "waitMs": 40000}
        return run_driver(tb, cls.out, cfg)

    def connections(self, server):
        return get_json(self.tb.hs(server).sfu_url + "/_test/connections")["connections"]

    def connection(self, server, identity):
        """The one verified signalling connection of @identity at @server's SFU."""
        found = [c for c in self.connections(server) if c.get("identity") == identity]
        self.assertEqual(len(found), 1, f"{identity} at {server}'s SFU: {found}")
        c = found[0]
        self.assertTrue(c["ok"], c)
        self.assertTrue(c["path"].startswith("/rtc"), c)
        self.assertEqual(c["room"], ROOM_NAME, "the token names another LiveKit room")
        self.assertEqual(c["grants"].get("room"), ROOM_NAME)
        self.assertTrue(c["grants"].get("roomJoin"), c)
        return c

    def member_id(self, name):
        _, user, _, _ = USERS[name]
        ids = {e["content"].get("membershipID") for e in self.results[name]["stateEvents"]
               if e["type"] == "org.matrix.msc3401.call.member" and e["content"]}
        self.assertEqual(len(ids), 1, f"{name}'s call.member events: {ids}")
        return ids.pop()

    def token_requests(self, name):
        res = self.results.get(name)
        self.assertIsNotNone(res, "no result from the browser driver")
        return res["tokenRequests"]

    def test_1_local_user_connects(self):
        """alice publishes on her own transport: /sfu/get at hs1's daemon, hs1's SFU."""
        _, user, device, _ = USERS["alice"]
        reqs = self.token_requests("alice")
        self.assertIn([f"{SERVICE['hs1.test']}/sfu/get", 200], reqs,
                      f"last widget action {self.results['alice']['lastAction']}")
        c = self.connection("hs1.test", f"{user}:{device}")  # lk-jwt-service's legacy identity
        self.assertTrue(c["grants"].get("canPublish"), c)
        # Its leave is scheduled through the host as a delayed, empty call.member event.
        key = f"_{user}_{device}_m.call"
        leaves = [d for d in self.results["alice"]["delayed"]
                  if d["type"] == "org.matrix.msc3401.call.member" and d["state_key"] == key]
        self.assertTrue(leaves, self.results["alice"]["delayed"])
        self.assertEqual(leaves[0]["content"], {})
        self.assertGreater(leaves[0]["delay"], 0)

    def test_2_remote_user_joins_the_same_room(self):
        """carol (hs2) publishes on her own transport (hs2's daemon and SFU) and, for the call's
        focus that alice's membership names, gets a token from hs1's daemon (OpenID checked at
        hs2.test over federation) and connects to hs1's SFU: same LiveKit room everywhere."""
        _, user, device, _ = USERS["carol"]
        reqs = self.token_requests("carol")
        self.assertIn([f"{SERVICE['hs2.test']}/sfu/get", 200], reqs)
        self.assertIn([f"{SERVICE['hs1.test']}/get_token", 200], reqs)
        own = self.connection("hs2.test", f"{user}:{device}")
        focus = self.connection("hs1.test", lk_hash(user, device, self.member_id("carol")))
        alice = self.connection("hs1.test", "@alice:hs1.test:ALICEDEV")
        self.assertEqual(own["room"], alice["room"])
        self.assertEqual(focus["room"], alice["room"])
        asked = get_json(self.tb.hs("hs2.test").hs_url + "/_test/requests")["requests"]
        self.assertIn("/_matrix/federation/v1/openid/userinfo", [r["path"] for r in asked],
                      "carol's OpenID token was not checked at her homeserver")

    def test_3_non_member_gets_nothing(self):
        """mallory's host claims a join his homeserver does not know of."""
        _, user, device, _ = USERS["mallory"]
        reqs = self.token_requests("mallory")
        self.assertTrue(reqs, "mallory's Element Call never asked for a token (last widget "
                        f"action {self.results['mallory']['lastAction']}): nothing was tested")
        self.assertEqual([r for r in reqs if r[1] == 200], [], "tokens handed out")
        # Refused, his Element Call may never send a call.member event, so his hashed identity
        # is not known: every connection at every SFU must be alice's or carol's instead.
        allowed = set()
        for name in ("alice", "carol"):
            _, u, d, _ = USERS[name]
            allowed.add(f"{u}:{d}")
            allowed |= {lk_hash(u, d, e["content"].get("membershipID"))
                        for e in self.results[name]["stateEvents"]
                        if e["type"] == "org.matrix.msc3401.call.member" and e["content"]}
        for server in self.tb.servers:
            conns = self.connections(server)
            self.assertTrue(conns, f"no connection at all at {server}'s SFU")
            self.assertEqual([c for c in conns if c.get("identity") not in allowed], [],
                             f"someone other than alice and carol connected to {server}'s SFU")


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
