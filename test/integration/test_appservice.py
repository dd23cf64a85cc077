#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Application-service mode end to end on the testbed: hs1's daemon runs behind a Synapse
stand-in (test/testbed/synapse_proxy.py: MSC4512 proxying and fed_proxy, MSC4502 is_joined),
registered with the file the daemon itself writes; hs2's daemon runs in homeserver mode. Calls
in both directions through nginx over TLS, tokens checked by the LiveKit server they are for
(LiveKit's own, one per homeserver: a participant joins with each, using LiveKit's client
@livekit/rtc-node, and the other homeserver's server refuses it) and against matrix-js-sdk 43's
identity; the federation request is signed by hs1's homeserver (fed_proxy) one way and by hs2's
daemon the other; each fed_proxy refusal mapped; hs_token refusals; a delegated leave managed as
the user, its participant a real one on the real server; /versions features in /readyz and the
choice of the stable is_joined; the registration read as Synapse reads it.

No test here needs an SFU fault, so the stand-in SFU is not used.

Usage: test_appservice.py <mrtc-transportd>
"""
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

# test_token_flow puts test/testbed on the path.
from test_token_flow import FED_UNSTABLE, TESTBED, UNSTABLE, V1, claims_of, lk_hash
from harness import HttpsTo, get_json, post_json
from synapse_proxy import RegistrationError, load_registration
from testbed import LiveKitClients, Testbed

BINARY = None
SCOPE = "urn:matrix:client:io.element.msc4502:rooms:is_joined"


def state():
    join = lambda ids: {u: "join" for u in ids}  # noqa: E731
    return {
        "hs1.test": {
            "users": {"tok_alice": {"user_id": "@alice:hs1.test", "device_id": "ALICEDEV"},
                      "tok_bob": {"user_id": "@bob:hs1.test", "device_id": "BOBDEV"}},
            "rooms": {"!local:hs1.test": {"members": join(["@alice:hs1.test"])},
                      "!call:hs2.test": {"members": join(["@alice:hs1.test"])},
                      "!x:denied.test": {"members": join(["@alice:hs1.test"])},
                      "!x:nowhere.test": {"members": join(["@alice:hs1.test"])},
                      "!hs1room:hs1.test": {"members": join(["@alice:hs1.test",
                                                             "@carol:hs2.test"])}},
            "delayed_mode": {"auth": True, "single": True},
            "openid": {"oid_alice": "@alice:hs1.test", "oid_bob": "@bob:hs1.test"},
        },
        "hs2.test": {
            "users": {"tok_carol": {"user_id": "@carol:hs2.test", "device_id": "CAROLDEV"}},
            "rooms": {"!call:hs2.test": {"members": join(["@alice:hs1.test",
                                                          "@carol:hs2.test"])},
                      "!hs1room:hs1.test": {"members": join(["@carol:hs2.test"])}},
        },
    }


def body(room, url, member="m1", device="ALICEDEV", **extra):
    b = {"url": url, "room_id": room, "slot_id": "m.call#ROOM",
         "member": {"id": member, "claimed_device_id": device}}
    b.update(extra)
    return b


class AppService(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=state(), appservice=("hs1.test",),
                         livekit=True)
        cls.tb.hs("hs1.test").deny = ["denied.test"]
        cls.tb.hs("hs1.test").extra_env = {
            "MRTC_DELAYED_POLL_MS": "300",
            "MRTC_DELAYED_CONNECT_WAIT": "3", "MRTC_MIN_DELAY_MS": "1000",
            "MRTC_HOMESERVER_TIMEOUT": "15"}
        cls.tb.hs("hs1.test").proxy_timeout = 6  # Synapse's 30 s, shortened
        cls.tb.start(with_daemons=True, MRTC_MEMBERSHIP_CACHE_TTL="0",
                     MRTC_READINESS_INTERVAL="1", MRTC_FEDERATION_TIMEOUT="5")
        cls.hs1, cls.hs2 = cls.tb.hs("hs1.test"), cls.tb.hs("hs2.test")
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", cls.hs1.address, 443)
        cls.c2 = HttpsTo(cls.tb.ca, "hs2.test", cls.hs2.address, 443)
        cls.node = subprocess.Popen(["node", os.path.join(TESTBED, "lk.mjs")], cwd=TESTBED,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        cls.lk_log = open(cls.tb.path("lkclient.log"), "w")
        cls.lk = LiveKitClients(cls.lk_log)
        cls.pids = itertools.count()
        cls.wait_ready()

    @classmethod
    def wait_ready(cls, want=200):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, _, data = cls.hs1.mrtc.request("GET", "/readyz", admin=True)
            if status == want:
                return json.loads(data)
            time.sleep(0.2)
        raise AssertionError(f"/readyz never answered {want}: {data}")

    @classmethod
    def tearDownClass(cls):
        cls.node.stdin.close()
        cls.node.wait(timeout=10)
        cls.lk.close()
        cls.lk_log.close()
        for s in cls.tb.servers.values():
            logs = s.mrtc.logs()
            assert "tok_" not in logs, "an access token reached the log"
            for secret in (getattr(s, "as_token", None), getattr(s, "hs_token", None)):
                assert not secret or secret not in logs, "an appservice token reached the log"
        cls.tb.stop()

    # -- helpers ------------------------------------------------------------------------------
    def identity(self, user, device, member):
        self.node.stdin.write(json.dumps({"op": "identity", "user": user, "device": device,
                                          "member": member}) + "\n")
        self.node.stdin.flush()
        return json.loads(self.node.stdout.readline())["identity"]

    def call(self, client, token, b, path=UNSTABLE, headers=None):
        h = {"Authorization": f"Bearer {token}"} if token else {}
        h.update(headers or {})
        status, _, data = client.request("POST", path, body=b, headers=h)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"raw": data}

    def direct(self, path, b, headers, method="POST"):
        """To hs1's daemon as Synapse would call it (tests of the way in)."""
        status, _, data = self.hs1.mrtc.request(method, path, body=json.dumps(b),
                                                headers=headers)
        return status, json.loads(data or b"{}")

    def join(self, name, token, leave=True):
        """A participant joins @name's real LiveKit server with @token (LiveKit's own client);
        returns its answer ({"ok": true, "identity", "room", "id"} or {"ok": false, "error"}),
        and leaves again unless @leave is false."""
        pid = f"p{next(self.pids)}"
        r = self.lk(op="join", id=pid, url=self.tb.livekit_server(name).ws_url, token=token)
        if r.get("ok") and leave:
            self.lk(op="leave", id=pid)
        return dict(r, id=pid)

    def accepted(self, name, token):
        r = self.join(name, token)
        self.assertTrue(r["ok"], f"{name}'s LiveKit refused the token: {r}")
        return r

    def refused(self, name, token):
        r = self.join(name, token)
        self.assertFalse(r["ok"], f"{name}'s LiveKit accepted the token")
        self.assertIn("401 Unauthorized", r["error"])

    def proxied(self, clear=False):
        url = self.hs1.proxy_url + "/_test/proxy_requests"
        if clear:
            return post_json(url, {})["requests"]
        return get_json(url)["requests"]

    def hs_state(self, name):
        return get_json(self.tb.hs(name).hs_url + "/_test/state")

    def set_hs_state(self, name, st):
        post_json(self.tb.hs(name).hs_url + "/_test/state", st)

    # -- the registration ---------------------------------------------------------------------
    def test_registration_read_as_synapse_reads_it(self):
        path = self.tb.path("hs1.test.registration.yaml")
        reg = load_registration(path, "hs1.test")
        self.assertEqual(reg["proxy_prefix"], "rtc/livekit")
        self.assertEqual(reg["proxy_url"], f"http://{self.hs1.mrtc.host}:{self.hs1.mrtc.port}")
        self.assertEqual(reg["scopes"], {SCOPE})
        self.assertIsNone(reg["url"])  # no transactions wanted
        self.assertIs(reg["rate_limited"], False)
        self.assertEqual(len(reg["users"]), 1)
        ns = reg["users"][0]
        self.assertIs(ns["exclusive"], False)
        import re
        self.assertTrue(re.fullmatch(ns["regex"], "@alice:hs1.test"))
        self.assertFalse(re.fullmatch(ns["regex"], "@alice:hs1Xtest"))
        self.assertFalse(re.fullmatch(ns["regex"], "@carol:hs2.test"))
        for tok in (reg["as_token"], reg["hs_token"]):
            self.assertRegex(tok, r"^[0-9a-f]{64}$")
        self.assertNotEqual(reg["as_token"], reg["hs_token"])
        # Exactly the keys Synapse 1.161/1.162 reads (nothing un-prefixed).
        import yaml
        with open(path) as f:
            keys = set(yaml.safe_load(f))
        self.assertEqual(keys, {"id", "url", "as_token", "hs_token", "sender_localpart",
                                "rate_limited", "namespaces",
                                "io.element.msc4512.proxy_prefix",
                                "io.element.msc4512.proxy_url", "io.element.msc4502.scopes"})
        # Two registrations never share tokens.
        again = subprocess.run([BINARY, "--print-appservice-registration", "http://x:1"],
                               env={"MRTC_SERVER_NAME": "hs1.test"}, capture_output=True,
                               text=True, check=True).stdout
        self.assertNotIn(reg["as_token"], again)
        # The two common mistakes, as Synapse sees them.
        with open(path) as f:
            text = f.read()
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
            bad.write(text.replace(SCOPE, "urn:matrix:client:rooms:is_joined"))
            bad.flush()
            with self.assertRaisesRegex(RegistrationError, "Unknown application service scope"):
                load_registration(bad.name, "hs1.test")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
            bad.write(text.replace("io.element.msc4512.", "").replace("io.element.msc4502.", ""))
            bad.flush()
            r = load_registration(bad.name, "hs1.test")
            self.assertEqual((r["proxy_url"], r["scopes"]), (None, set()))
        # The environment lines carry the same tokens.
        self.assertIn(f"MRTC_APPSERVICE_TOKEN={reg['as_token']}", text)
        self.assertIn(f"MRTC_APPSERVICE_HS_TOKEN={reg['hs_token']}", text)

    # -- calls --------------------------------------------------------------------------------
    def test_local_token_through_the_proxy(self):
        self.proxied(clear=True)
        for path in (UNSTABLE, V1):
            status, doc = self.call(self.c1, "tok_alice",
                                    body("!local:hs1.test", "wss://sfu.hs1.test", member="mA"),
                                    path=path,
                                    headers={"X-Matrix-User-Identifier": "@bob:hs1.test"})
            self.assertEqual(status, 200, doc)
            c = claims_of(doc["jwt"])
            # matrix-js-sdk 43's identity for the claimed device: what the client expects.
            self.assertEqual(c["sub"], self.identity("@alice:hs1.test", "ALICEDEV", "mA"))
            self.assertEqual(c["video"]["room"], lk_hash("!local:hs1.test", "m.call#ROOM"))
            self.assertIs(c["video"]["canPublish"], True)
            r = self.accepted("hs1.test", doc["jwt"])
            self.assertEqual(r["identity"], c["sub"])
        # What the daemon saw: the homeserver's identity header (the client's spoof dropped),
        # the hs_token, never the user's token.
        reqs = self.proxied()
        self.assertEqual(len(reqs), 2, reqs)
        for r in reqs:
            h = {k.lower(): v for k, v in r["headers"].items()}
            self.assertEqual(h["x-matrix-user-identifier"], "@alice:hs1.test")
            self.assertEqual(h["authorization"], f"Bearer {self.hs1.hs_token}")
            self.assertLessEqual(set(h), {"authorization", "x-matrix-user-identifier",
                                          "content-type", "accept", "accept-language"})
        # The membership came from MSC4502 with the as_token.
        calls = self.hs_state("hs1.test").get("is_joined_calls", [])
        self.assertIn({"path": "unstable/io.element.msc4502",
                       "query": {"mxid": "@alice:hs1.test"}}, calls)

    def test_not_joined_refused(self):
        status, doc = self.call(self.c1, "tok_bob",
                                body("!local:hs1.test", "wss://sfu.hs1.test", device="BOBDEV"))
        self.assertEqual((status, doc.get("errcode")), (403, "M_FORBIDDEN"), doc)

    def test_no_device_claimed(self):
        b = body("!local:hs1.test", "wss://sfu.hs1.test")
        del b["member"]["claimed_device_id"]
        status, doc = self.call(self.c1, "tok_alice", b)
        self.assertEqual((status, doc.get("errcode")), (400, "M_BAD_JSON"), doc)
        self.assertIn("claimed_device_id", doc["error"])

    def test_identity_without_the_device(self):
        """MRTC_IDENTITY=user-member: [user_id, member_id], what lk-jwt-service 0.7 mints in
        this mode; no claimed_device_id needed. A second daemon, called as Synapse calls."""
        from harness import Daemon
        env = self.tb.mrtc_env(self.hs1, MRTC_IDENTITY="user-member",
                               MRTC_APPSERVICE_TOKEN=self.hs1.as_token,
                               MRTC_APPSERVICE_HS_TOKEN=self.hs1.hs_token)
        d = Daemon(BINARY, env, name="mrtc-user-member", host=self.tb.svc).start()
        try:
            b = body("!local:hs1.test", "wss://sfu.hs1.test", member="mU")
            del b["member"]["claimed_device_id"]
            status, _, data = d.request("POST", UNSTABLE, body=json.dumps(b), headers={
                "Authorization": f"Bearer {self.hs1.hs_token}",
                "X-Matrix-User-Identifier": "@alice:hs1.test"})
            doc = json.loads(data)
            self.assertEqual(status, 200, doc)
            self.assertEqual(claims_of(doc["jwt"])["sub"], lk_hash("@alice:hs1.test", "mU"))
            self.accepted("hs1.test", doc["jwt"])
        finally:
            self.assertEqual(d.stop(), 0)
            d.close()

    def test_unknown_user_token_refused_by_homeserver(self):
        status, doc = self.call(self.c1, "tok_nobody",
                                body("!local:hs1.test", "wss://sfu.hs1.test"))
        self.assertEqual((status, doc.get("errcode")), (401, "M_UNKNOWN_TOKEN"), doc)

    def test_appservice_user_to_native_resident(self):
        """hs1 (application service) -> hs2 (native): signed by hs1's homeserver (fed_proxy),
        verified by hs2's daemon."""
        log = lambda: self.hs2.mrtc.logs().count("verified X-Matrix signature of hs1.test")  # noqa
        before = log()
        status, doc = self.call(self.c1, "tok_alice",
                                body("!call:hs2.test", "wss://sfu.hs2.test", member="mR",
                                     server_name="hs2.test"))
        self.assertEqual(status, 200, doc)
        self.accepted("hs2.test", doc["jwt"])
        self.refused("hs1.test", doc["jwt"])
        c = claims_of(doc["jwt"])
        self.assertIs(c["video"]["canPublish"], False)
        self.assertEqual(c["sub"], self.identity("@alice:hs1.test", "ALICEDEV", "mR"))
        time.sleep(0.2)
        self.assertEqual(log(), before + 1)
        # The homeserver's key signed it: hs1's daemon has none.
        self.assertNotIn("MRTC_SIGNING_KEY_FILE", self.hs1.mrtc.env)

    def test_native_user_to_appservice_resident(self):
        """hs2 (native) -> hs1 (application service): signed by hs2's daemon, verified by hs1's
        homeserver, answered by hs1's daemon from X-Matrix-Origin."""
        self.proxied(clear=True)
        status, doc = self.call(self.c2, "tok_carol",
                                body("!hs1room:hs1.test", "wss://sfu.hs1.test", member="mC",
                                     device="CAROLDEV", server_name="hs1.test"))
        self.assertEqual(status, 200, doc)
        self.accepted("hs1.test", doc["jwt"])
        c = claims_of(doc["jwt"])
        self.assertIs(c["video"]["canPublish"], False)
        self.assertEqual(c["sub"], self.identity("@carol:hs2.test", "CAROLDEV", "mC"))
        reqs = self.proxied()
        self.assertEqual([r["headers"].get("X-Matrix-Origin") for r in reqs], ["hs2.test"])
        calls = self.hs_state("hs1.test")["is_joined_calls"]
        self.assertIn({"path": "unstable/io.element.msc4502",
                       "query": {"mxid": "@carol:hs2.test"}}, calls)
        self.assertIn({"path": "unstable/io.element.msc4502",
                       "query": {"server_name": "hs1.test"}}, calls)

    def test_forged_federation_request_stopped_by_homeserver(self):
        f1 = HttpsTo(self.tb.ca, "hs1.test", self.hs1.address, 8448)
        b = {"user_id": "@carol:hs2.test", "url": "wss://sfu.hs1.test",
             "room_id": "!hs1room:hs1.test", "slot_id": "m.call#ROOM", "member_id": "m",
             "member": {"id": "m", "claimed_device_id": "D"}}
        auth = 'X-Matrix origin="hs2.test",destination="hs1.test",key="ed25519:a_hs2",sig="AAAA"'
        status, _, data = f1.request("POST", FED_UNSTABLE, body=json.dumps(b),
                                     headers={"Authorization": auth,
                                              "X-Matrix-Origin": "hs2.test"})
        self.assertEqual((status, json.loads(data)["errcode"]), (401, "M_UNAUTHORIZED"))

    # -- the way in: hs_token -----------------------------------------------------------------
    def test_hs_token_refusals(self):
        b = body("!local:hs1.test", "wss://sfu.hs1.test")
        user = {"X-Matrix-User-Identifier": "@alice:hs1.test"}
        for path in (UNSTABLE, FED_UNSTABLE, "/_matrix/app/v1/ping"):
            status, doc = self.direct(path, b, dict(user, **{"X-Matrix-Origin": "hs2.test"}))
            self.assertEqual((status, doc["errcode"]), (401, "M_MISSING_TOKEN"), path)
            for wrong in (self.hs1.as_token, self.hs1.hs_token + "x", self.hs1.hs_token[:-1],
                          "tok_alice"):
                status, doc = self.direct(path, b, dict(user, Authorization=f"Bearer {wrong}",
                                                        **{"X-Matrix-Origin": "hs2.test"}))
                self.assertEqual((status, doc["errcode"]), (401, "M_UNKNOWN_TOKEN"), path)
        auth = {"Authorization": f"Bearer {self.hs1.hs_token}"}
        status, doc = self.direct(UNSTABLE, b, auth)
        self.assertEqual((status, doc["errcode"]), (401, "M_UNAUTHORIZED"))
        status, doc = self.direct(UNSTABLE, b, dict(auth, **{"X-Matrix-User-Identifier": "x"}))
        self.assertEqual((status, doc["errcode"]), (400, "M_INVALID_PARAM"))
        status, doc = self.direct(UNSTABLE, b, dict(auth, **{
            "X-Matrix-User-Identifier": "@carol:hs2.test"}))
        self.assertEqual((status, doc["errcode"]), (403, "M_FORBIDDEN"))
        status, doc = self.direct(FED_UNSTABLE, b, auth)
        self.assertEqual((status, doc["errcode"]), (401, "M_UNAUTHORIZED"))
        status, doc = self.direct("/_matrix/app/v1/ping", {}, auth)
        self.assertEqual((status, doc), (200, {}))
        # The origin is trusted only with the hs_token: the same request with it works.
        fb = {"user_id": "@carol:hs2.test", "url": "wss://sfu.hs1.test",
              "room_id": "!hs1room:hs1.test", "slot_id": "m.call#ROOM", "member_id": "mD",
              "member": {"id": "mD", "claimed_device_id": "CAROLDEV"}}
        status, doc = self.direct(FED_UNSTABLE, fb, dict(auth, **{"X-Matrix-Origin": "hs2.test"}))
        self.assertEqual(status, 200, doc)
        status, doc = self.direct(FED_UNSTABLE, fb, dict(auth, **{"X-Matrix-Origin": "hs3.test"}))
        self.assertEqual((status, doc["errcode"]), (403, "M_FORBIDDEN"))

    # -- the way out: fed_proxy ---------------------------------------------------------------
    def fed_proxy(self, token, req):
        r = urllib.request.Request(self.hs1.proxy_url +
                                   "/_matrix/client/unstable/io.element.msc4512/appservice/"
                                   "fed_proxy", data=json.dumps(req).encode(), method="POST",
                                   headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(r) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_fed_proxy_rules_of_the_stand_in(self):
        """The Synapse stand-in's own answers, the shapes the daemon maps."""
        good = {"destination": "hs2.test", "method": "POST", "path": FED_UNSTABLE, "body": {}}
        p = "IO.ELEMENT.MSC4512."
        cases = [
            ("tok_alice", good, 403, "M_FORBIDDEN"),
            ("nobody", good, 401, "M_UNKNOWN_TOKEN"),
            (self.hs1.as_token, dict(good, path="/_matrix/federation/v1/send/txn"), 403,
             p + "M_FEDPROXY_PATH_NOT_ALLOWED"),
            (self.hs1.as_token, dict(good, path="/_matrix/federation/v1/rtc/livekit/../../x"),
             403, p + "M_FEDPROXY_PATH_NOT_ALLOWED"),
            (self.hs1.as_token, dict(good, path="/_matrix/client/v1/rtc/livekit/get_token"),
             403, p + "M_FEDPROXY_PATH_NOT_ALLOWED"),
            (self.hs1.as_token, dict(good, destination="hs1.test"), 403,
             p + "M_FEDPROXY_DESTINATION_DENIED"),
            (self.hs1.as_token, dict(good, destination="denied.test"), 403,
             p + "M_FEDPROXY_DESTINATION_DENIED"),
            (self.hs1.as_token, dict(good, destination="nowhere.test"), 502,
             p + "M_FEDPROXY_CONNECTION_FAILED"),
            (self.hs1.as_token, dict(good, method="PATCH"), 400, "M_INVALID_PARAM"),
            (self.hs1.as_token, {"method": "POST", "path": FED_UNSTABLE}, 400,
             "M_MISSING_PARAM"),
        ]
        for token, req, status, errcode in cases:
            got = self.fed_proxy(token, req)
            self.assertEqual((got[0], got[1].get("errcode")), (status, errcode), req)
        # Relayed: the destination's own refusal as {"status", "content"}.
        status, doc = self.fed_proxy(self.hs1.as_token, good)
        self.assertEqual(status, 200)
        self.assertEqual(doc["status"], 400)
        self.assertEqual(doc["content"]["errcode"], "M_BAD_JSON")

    def test_fed_proxy_refusals_reach_the_client_clearly(self):
        def ask(server, room):
            return self.call(self.c1, "tok_alice",
                             body(room, f"wss://sfu.{server}", server_name=server))
        status, doc = ask("denied.test", "!x:denied.test")
        self.assertEqual((status, doc["errcode"]), (403, "M_FORBIDDEN"), doc)
        self.assertIn("does not federate", doc["error"])
        status, doc = ask("nowhere.test", "!x:nowhere.test")
        self.assertEqual((status, doc["errcode"]), (502, "M_UNKNOWN"), doc)
        self.assertEqual(doc["error"], "Unable to reach the specified homeserver")
        # The destination's refusal is mapped as a direct call's is.
        status, doc = self.call(self.c1, "tok_alice",
                                body("!local:hs1.test", "wss://sfu.hs2.test",
                                     server_name="hs2.test"))
        self.assertEqual((status, doc["errcode"]), (403, "M_FORBIDDEN"), doc)
        self.assertIn("on the destination homeserver", doc["error"])
        log = self.hs1.mrtc.logs()
        self.assertIn("through fed_proxy failed: fed_proxy answered HTTP 403: destination denied",
                      log)
        self.assertIn("fed_proxy answered HTTP 502: connection failed", log)

    def test_slow_answer_cut_by_the_proxy_limit(self):
        """Synapse gives the application service a limited time (30 s; 6 s here): past it the
        client gets Synapse's 500, and the daemon, whose client went away, stops its work."""
        url = self.hs1.hs_url + "/_test/mode"
        post_json(url, {"mode": "normal", "delay": 7.5})
        try:
            t0 = time.monotonic()
            status, doc = self.call(self.c1, "tok_alice",
                                    body("!local:hs1.test", "wss://sfu.hs1.test", member="mT"))
            took = time.monotonic() - t0
        finally:
            post_json(url, {"mode": "normal", "delay": 0})
        self.assertEqual((status, doc.get("errcode")), (500, "M_UNKNOWN"), doc)
        self.assertGreater(took, 7.5 + 5.5)  # whoami's delay, then the proxy's limit
        deadline = time.monotonic() + 10
        while "client went away" not in self.hs1.mrtc.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertIn("client went away", self.hs1.mrtc.logs())

    # -- the OpenID endpoints ----------------------------------------------------------------
    def test_openid_flow_membership_through_is_joined(self):
        """lk-jwt-service's /get_token works in this mode too (no hs_token: clients reach it
        through the reverse proxy), its membership asked with is_joined."""
        def ask(oid, user, device):
            b = {"room_id": "!local:hs1.test", "slot_id": "m.call#ROOM",
                 "openid_token": {"access_token": oid, "token_type": "Bearer",
                                  "matrix_server_name": "hs1.test", "expires_in": 3600},
                 "member": {"id": "mO", "claimed_user_id": user, "claimed_device_id": device}}
            status, _, data = self.hs1.mrtc.request("POST", "/get_token", body=json.dumps(b))
            return status, json.loads(data)
        status, doc = ask("oid_alice", "@alice:hs1.test", "ALICEDEV")
        self.assertEqual(status, 200, doc)
        self.accepted("hs1.test", doc["jwt"])
        status, doc = ask("oid_bob", "@bob:hs1.test", "BOBDEV")
        self.assertEqual((status, doc.get("errcode")), (403, "M_FORBIDDEN"), doc)

    # -- delayed events as the user ------------------------------------------------------------
    def test_delegated_leave_managed_as_the_user(self):
        """MSC4140's authenticated management: the as_token with ?user_id= of the owner, the only
        credential this mode has (Synapse forwards no user token). alice is in the call on hs1's
        real LiveKit server (she joins with the daemon's token before she delegates, so that the
        job finds her there however long it takes to start); she leaves and the leave is sent."""
        hs = self.hs1.hs_url
        status, doc = self.call(self.c1, "tok_alice",
                                body("!local:hs1.test", "wss://sfu.hs1.test", member="mD"))
        self.assertEqual(status, 200, doc)
        alice = self.join("hs1.test", doc["jwt"], leave=False)
        self.assertTrue(alice["ok"], alice)
        self.assertEqual(alice["identity"], lk_hash("@alice:hs1.test", "ALICEDEV", "mD"))
        post_json(hs + "/_test/delayed", {"delay_id": "de_as", "user_id": "@alice:hs1.test",
                                          "delay": 2000, "room_id": "!local:hs1.test"})
        b = body("!local:hs1.test", "wss://sfu.hs1.test", member="mD", delay_id="de_as")
        status, doc = self.call(self.c1, "tok_alice", b, path=UNSTABLE.replace(
            "get_token", "delegate_delayed_leave"))
        self.assertEqual((status, doc), (200, {}))

        def event_until(cond):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ev = get_json(hs + "/_test/delayed").get("de_as", {})
                if cond(ev):
                    break
                time.sleep(0.1)
            return ev
        ev = event_until(lambda ev: any(a["action"] == "restart" for a in ev.get("actions", [])))
        self.assertTrue(any(a["action"] == "restart" for a in ev.get("actions", [])), ev)
        self.assertNotEqual(ev.get("state"), "sent", ev)
        self.lk(op="leave", id=alice["id"])
        ev = event_until(lambda ev: ev.get("state") == "sent")
        self.assertEqual(ev.get("state"), "sent", ev)
        self.assertTrue(ev["requests"])
        for r in ev["requests"]:
            self.assertEqual(r["query"].get("user_id"), ["@alice:hs1.test"])
        # Another user's delay_id is not found for alice (the lookup runs as alice).
        post_json(hs + "/_test/delayed", {"delay_id": "de_bob", "user_id": "@bob:hs1.test",
                                          "delay": 2000, "room_id": "!local:hs1.test"})
        status, doc = self.call(self.c1, "tok_alice", dict(b, delay_id="de_bob"),
                                path=UNSTABLE.replace("get_token", "delegate_delayed_leave"))
        self.assertEqual(status, 400, doc)

    # -- /versions, /readyz, stable is_joined -------------------------------------------------
    def test_readyz_and_features(self):
        doc = self.wait_ready(200)
        self.assertEqual({k: doc["checks"][k] for k in ("msc4195", "msc4502", "msc4512")},
                         {"msc4195": True, "msc4502": True, "msc4512": True})
        self.assertNotIn("signing_key", doc["checks"])
        st = self.hs_state("hs1.test")
        orig = json.loads(json.dumps(st))
        try:
            st["unstable_features"]["io.element.msc4512"] = False
            self.set_hs_state("hs1.test", st)
            doc = self.wait_ready(503)
            self.assertIs(doc["checks"]["msc4512"], False)
            self.assertIn("does not offer io.element.msc4512", self.hs1.mrtc.logs())
            # A homeserver with only the stable is_joined: the daemon follows /versions.
            st["unstable_features"].update({"io.element.msc4512": True,
                                            "io.element.msc4502": False,
                                            "io.element.msc4502.stable": True})
            st["is_joined_unstable"], st["is_joined_stable"] = False, True
            st["is_joined_calls"] = []
            self.set_hs_state("hs1.test", st)
            self.wait_ready(200)
            status, doc = self.call(self.c1, "tok_alice",
                                    body("!local:hs1.test", "wss://sfu.hs1.test", member="mS"))
            self.assertEqual(status, 200, doc)
            self.assertEqual([c["path"] for c in self.hs_state("hs1.test")["is_joined_calls"]],
                             ["v3"])
        finally:
            orig["is_joined_calls"] = []
            self.set_hs_state("hs1.test", orig)
            self.wait_ready(200)

    # -- configuration ------------------------------------------------------------------------
    def test_check_config(self):
        base = {"MRTC_SERVER_NAME": "hs1.test", "MRTC_HOMESERVER_URL": "http://127.0.0.1:1",
                "LIVEKIT_URL": "wss://sfu.hs1.test", "LIVEKIT_KEY": "k", "LIVEKIT_SECRET": "s",
                "MRTC_PUBLIC_BASE_URL": "https://hs1.test", "MRTC_APPSERVICE_TOKEN": "a" * 20,
                "MRTC_APPSERVICE_HS_TOKEN": "b" * 20}

        def check(**env):
            e = dict(base, **env)
            e = {k: v for k, v in e.items() if v is not None}
            r = subprocess.run([BINARY, "--check-config"], env=e, capture_output=True,
                               text=True)
            return r.returncode, r.stdout + r.stderr
        rc, out = check()
        self.assertEqual(rc, 0, out)
        self.assertIn("application service mode", out)
        rc, out = check(MRTC_SIGNING_KEY_FILE=self.hs1.signing_key_file)
        self.assertIn("MRTC_SIGNING_KEY_FILE: not used in application-service mode", out)
        rc, out = check(MRTC_APPSERVICE_TOKEN=None)
        self.assertIn("MRTC_APPSERVICE_TOKEN: required in application-service mode", out)
        rc, out = check(MRTC_APPSERVICE_TOKEN="b" * 20)
        self.assertIn("MRTC_APPSERVICE_HS_TOKEN: must differ", out)
        rc, out = check(MRTC_MEMBERSHIP_BACKEND="synapse-admin", MRTC_HOMESERVER_URL=None)
        self.assertNotEqual(rc, 0)
        self.assertIn("MRTC_MEMBERSHIP_BACKEND: application-service mode", out)
        self.assertIn("MRTC_HOMESERVER_URL: required in application-service mode", out)
        self.assertNotIn("a" * 20, out)
        self.assertNotIn("b" * 20, out)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
