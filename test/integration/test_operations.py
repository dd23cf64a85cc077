# SPDX-License-Identifier: Apache-2.0
"""Operations on the testbed: /readyz flips to 503 (naming what is not ready) when the
homeserver or the SFU goes down and back to 200 when it returns; /metrics parses with
python3-prometheus-client's parser and its counters move with requests; SIGHUP reloads the CA
file without dropping requests; JSON logs carry the request id returned to the client.

SFU: the stand-in (sfu.mjs), for every test here, because /readyz must see the SFU go down and
come back (a real server is not taken down on demand), and because the exact grants of the
service token the daemon signs for CreateRoom are seen only by the SFU that receives it: the
stand-in records them (test_service_token_grants). That LiveKit's own server accepts the
daemon's calls is shown by integration-livekit-real, -legacy and -token-flow.

Usage: test_operations.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import signal
import sys
import time
import unittest


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import HttpsTo, metric_samples, post_json as post  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
STATE = {
    "hs1.test": {"users": {"tok_a": {"user_id": "@a:hs1.test", "device_id": "DA"}},
                 "rooms": {"!r:hs1.test": {"members": {"@a:hs1.test": "join"}},
                           "!r:hs2.test": {"members": {"@a:hs1.test": "join"}}}},
    "hs2.test": {"rooms": {"!r:hs2.test": {"members": {"@a:hs1.test": "join",
                                                       "@c:hs2.test": "join"}}}},
}


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


class Operations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=STATE).start(
            with_daemons=True, MRTC_READINESS_INTERVAL="1", MRTC_LOG_FORMAT="json",
            MRTC_HOMESERVER_TIMEOUT="1", MRTC_LIVEKIT_TIMEOUT="1")
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", cls.tb.hs("hs1.test").address, 443)

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop()

    def readyz(self, name="hs1.test"):
        status, _, body = self.tb.hs(name).mrtc.request("GET", "/readyz", admin=True)
        return status, json.loads(body)

    def wait_ready(self, want, name="hs1.test", timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            status, doc = self.readyz(name)
            if (status == 200) == want or time.monotonic() > deadline:
                return status, doc
            time.sleep(0.2)

    def metrics(self, name="hs1.test"):
        status, h, body = self.tb.hs(name).mrtc.request("GET", "/metrics", admin=True)
        self.assertEqual(status, 200)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        return metric_samples(body.decode())

    def token(self, body):
        status, _, data = self.c1.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                                          body=body, headers={"Authorization": "Bearer tok_a"})
        return status, json.loads(data)

    def test_readyz_follows_homeserver_and_sfu(self):
        status, doc = self.wait_ready(True)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc, {"status": "ready", "checks": {
            "sfu": True, "signing_key": True, "homeserver": True, "membership_token": True,
            "store": True},
            "sfus": [{"sfu": 1, "url": "wss://sfu.hs1.test", "ready": True}],
            "store": {
                "kind": "sqlite", "state": "open",
                "spec": "sqlite:" + self.tb.path("state-mrtc-hs1.test", "store.db")}})
        hs = self.tb.hs("hs1.test")
        post(hs.hs_url + "/_test/mode", {"mode": "down"})
        try:
            status, doc = self.wait_ready(False)
            self.assertEqual(status, 503)
            self.assertEqual(doc["status"], "not ready")
            self.assertIs(doc["checks"]["homeserver"], False)
            self.assertIs(doc["checks"]["sfu"], True)
        finally:
            post(hs.hs_url + "/_test/mode", {"mode": "normal"})
        self.assertEqual(self.wait_ready(True)[0], 200)
        post(hs.sfu_url + "/_test/mode", {"mode": "down"})
        try:
            status, doc = self.wait_ready(False)
            self.assertEqual(status, 503)
            self.assertIs(doc["checks"]["sfu"], False)
        finally:
            post(hs.sfu_url + "/_test/mode", {"mode": "normal"})
        self.assertEqual(self.wait_ready(True)[0], 200)

    def test_service_token_grants(self):
        """The service token of the daemon's CreateRoom carries only roomCreate and lives at
        most 10 minutes. Its point is the exact grants, which only the SFU receiving the token
        sees: so it reads the stand-in's record of the call."""
        hs = self.tb.hs("hs1.test")
        post(hs.sfu_url + "/_test/calls", {})
        body = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test", "slot_id": "grants",
                "member": {"id": "m1"}}
        self.assertEqual(self.token(body)[0], 200)
        calls = [c for c in post(hs.sfu_url + "/_test/calls", {})["calls"]
                 if c["method"] == "CreateRoom"]
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0]["status"], 200)
        self.assertEqual(calls[0]["body"], {"name": lk_hash("!r:hs1.test", "grants"),
                                            "empty_timeout": 300, "departure_timeout": 20})
        self.assertEqual(calls[0]["grant"], {"roomCreate": True})
        self.assertLessEqual(calls[0]["exp"] - calls[0]["nbf"], 600)

    def test_metrics_parse_and_move(self):
        before = self.metrics()
        body = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test", "slot_id": "m.call#ROOM",
                "member_id": "m1"}
        self.assertEqual(self.token(body)[0], 200)
        remote = dict(body, room_id="!r:hs2.test", url="wss://sfu.hs2.test",
                      server_name="hs2.test")
        self.assertEqual(self.token(remote)[0], 200)
        self.assertEqual(self.token(dict(body, url="wss://wrong.example"))[0], 400)
        after = self.metrics()

        def delta(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0) - before.get(key, 0)

        self.assertEqual(delta("mrtc_tokens_minted_total", kind="local"), 1)
        self.assertEqual(delta("mrtc_http_requests_total", endpoint="client_get_token",
                               status="200"), 2)
        self.assertEqual(delta("mrtc_http_requests_total", endpoint="client_get_token",
                               status="400"), 1)
        self.assertEqual(delta("mrtc_http_request_duration_seconds_count",
                               endpoint="client_get_token"), 3)
        self.assertEqual(delta("mrtc_federation_requests_out_total", result="ok"), 1)
        self.assertGreaterEqual(after[("mrtc_cache_entries", (("cache", "auth"),))], 1)
        self.assertGreaterEqual(after[("mrtc_tls_handshakes_total", ())], 1)
        self.assertEqual(after[("mrtc_build_info", (("version", "0.1.0"),))], 1)
        m2 = self.metrics("hs2.test")
        self.assertGreaterEqual(m2[("mrtc_signature_verifications_total", (("result", "ok"),))], 1)
        self.assertGreaterEqual(m2[("mrtc_tokens_minted_total", (("kind", "federated"),))], 1)
        self.assertGreaterEqual(m2[("mrtc_key_fetches_total", (("result", "ok"),))], 1)

    def test_sighup_reloads_ca_and_keeps_serving(self):
        d = self.tb.hs("hs1.test").mrtc
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10  # under ASan a reload takes about half a second
        while "reloaded the CA file" not in d.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn("reloaded the CA file", d.logs())
        self.assertIsNone(d.proc.poll())
        body = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test", "slot_id": "s2",
                "member_id": "m2"}
        self.assertEqual(self.token(body)[0], 200)

    def test_json_logs_carry_request_id(self):
        status, h, _ = self.c1.request("GET", "/_matrix/client/v1/rtc/transports",
                                       headers={"Authorization": "Bearer tok_a"})
        self.assertEqual(status, 200)
        rid = h["x-request-id"]
        time.sleep(0.2)
        lines = [json.loads(l) for l in self.tb.hs("hs1.test").mrtc.logs().splitlines()
                 if l.startswith("{")]
        self.assertTrue(lines)
        mine = [l for l in lines if l.get("request_id") == rid]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["component"], "http")
        self.assertIn("/rtc/transports", mine[0]["msg"])
        self.assertNotIn("tok_a", self.tb.hs("hs1.test").mrtc.logs())


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
